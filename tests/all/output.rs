//! A plugin's stdout and stderr, and the load errors an author of a Python or JavaScript plugin meets, under every
//! command: `plugin check`, `plugin test`, `run` and `serve`. What a plugin prints must never crash a command, never
//! reach the host's own stdout (a `--json` output stays JSON), lands in the plugin's log marked as `stdout` or
//! `stderr`, and the last lines of stderr (a Python traceback, a panic message) are in the error of a call that failed.
//!
//! The plugins: `printer` (prints in `info`, `begin`, `observe` and `decide`; `raise_in` makes it print a traceback
//! and trap, `flood_mib` makes it flood both streams), `foreign-import` (imports a WASI interface the host does not
//! provide) and `big-start` (its memory starts at 80 MiB, more than the default cap).

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::service::{Setup, TOKEN, wait_for};
use common::{plugin, plugin_dir, retention, run};
use serde_json::Value;

const NOW: &str = "2026-03-01T12:00:00Z";

fn fixture(dir: &Path) -> PathBuf {
    let p = dir.join("fixture.json");
    let segs: Vec<Value> = (0..6)
        .map(|i| serde_json::json!({"name": format!("app-{i}.log"), "time": format!("2026-02-0{}T00:00:00Z", i + 1)}))
        .collect();
    std::fs::write(&p, serde_json::to_string(&segs).unwrap()).unwrap();
    p
}

/// `retention plugin test printer.wasm --json` with the given parameters: exit code, stdout, stderr.
fn plugin_test(params: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = retention();
    cmd.args(["plugin", "test", "--json", "--now", NOW, "--segments"])
        .arg(fixture(dir.path()))
        .arg(plugin("printer"));
    for p in params {
        cmd.args(["--param", p]);
    }
    let (out, stdout, stderr) = run(&mut cmd);
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

fn lines_of<'a>(log: &'a Value, stream: &str) -> Vec<&'a str> {
    log.as_array()
        .unwrap()
        .iter()
        .filter(|l| l["level"] == stream)
        .map(|l| l["message"].as_str().unwrap())
        .collect()
}

#[test]
fn a_plugin_printing_in_every_call_passes_check_and_test_with_its_output_in_its_log() {
    let (out, stdout, stderr) = run(retention().args(["plugin", "check", "--json"]).arg(plugin("printer")));
    assert!(out.status.success(), "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(v["name"], "printer");

    let (code, stdout, stderr) = plugin_test(&[]);
    assert_eq!(code, 0, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    assert_eq!(v["decisions"].as_array().unwrap().len(), 6);
    assert_eq!(
        lines_of(&v["log"], "stdout"),
        [
            "printer: begin on stdout (0 params)",
            "printer: observe 6 segments",
            "printer: decide 6 segments"
        ]
    );
    assert_eq!(
        lines_of(&v["log"], "stderr"),
        ["printer: begin on stderr", "printer: decide on stderr, in two writes"]
    );
    assert!(
        !stdout.contains("printer: info"),
        "the plugin's own output never reaches ours: {stdout}"
    );
}

#[test]
fn an_exception_in_begin_observe_or_decide_fails_with_the_plugins_traceback_in_the_error() {
    for (call, named) in [
        ("begin", "begin"),
        ("observe", "observe (batch 0)"),
        ("decide", "decide (batch 0)"),
    ] {
        let (code, stdout, stderr) = plugin_test(&[&format!("raise_in={call}")]);
        assert_eq!(code, 1, "{call}: {stderr}");
        assert!(stderr.contains(&format!("failed in {named}: trap")), "{call}: {stderr}");
        assert!(stderr.contains("the plugin's stderr ended with:"), "{stderr}");
        assert!(
            stderr.contains(&format!("ValueError: printer raises in {call}")),
            "{stderr}"
        );
        assert!(
            stderr.contains(&format!("printer: deliberate failure in {call}")),
            "{stderr}"
        );
        // `--json` prints the error as JSON, traceback included.
        let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
        assert_eq!(v["error"]["kind"], "trap", "{v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("ValueError: printer raises in {call}")),
            "{message}"
        );
    }
}

#[test]
fn decide_batches_are_numbered_apart_from_observe_batches() {
    // One batch, observed first: the failing decide is its batch 0, not batch 1.
    let (_, _, stderr) = plugin_test(&["raise_in=decide"]);
    assert!(stderr.contains("decide (batch 0)"), "{stderr}");
}

#[test]
fn a_plugin_flooding_stdout_and_stderr_costs_a_bounded_log_and_never_blocks() {
    let (code, stdout, stderr) = plugin_test(&["flood_mib=8"]);
    assert_eq!(code, 0, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let log = v["log"].as_array().unwrap();
    assert!(log.len() <= 1_000, "{} lines kept", log.len());
    assert!(log.iter().all(|l| l["message"].as_str().unwrap().len() <= 2 << 10));
    // 8 MiB without a newline on stdout: one line, cut.
    let long: Vec<_> = lines_of(&v["log"], "stdout")
        .into_iter()
        .filter(|l| l.starts_with("xxx"))
        .collect();
    assert_eq!(long.len(), 1);
    assert_eq!(long[0].len(), 2 << 10);
}

/// A directory dataset of six files and a config using `printer` with `params`.
fn run_setup(params: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    for i in 0..6 {
        std::fs::write(logs.join(format!("app-{i}.log")), "line\n".repeat(100)).unwrap();
    }
    let config = dir.path().join("retention.toml");
    std::fs::write(
        &config,
        format!(
            "plugin_dir = \"{}\"\n[[dataset]]\nname = \"logs\"\nplugin = \"printer\"\nparams = {{ {params} }}\n\
             [dataset.directory]\nroot = \"logs\"\n",
            plugin_dir().display()
        ),
    )
    .unwrap();
    (dir, config)
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    common::files_under(&dir.join("logs"))
        .into_iter()
        .filter(|(k, _)| !common::is_engine_file(k))
        .collect()
}

#[test]
fn retention_run_with_a_printing_plugin_keeps_its_json_clean_and_the_output_in_the_report() {
    let (dir, config) = run_setup("");
    let (out, stdout, stderr) = run(retention()
        .args(["run", "--json", "--now", NOW, "--config"])
        .arg(&config));
    assert!(out.status.success(), "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    assert_eq!(v[0]["status"], "ok", "{v}");
    let log = &v[0]["plugin_log"];
    assert!(lines_of(log, "stdout").contains(&"printer: decide 6 segments"), "{log}");
    assert!(lines_of(log, "stderr").contains(&"printer: begin on stderr"), "{log}");

    let (dir2, config) = run_setup("raise_in = \"decide\"");
    let before = files(dir2.path());
    let (out, stdout, _) = run(retention()
        .args(["run", "--json", "--now", NOW, "--config"])
        .arg(&config));
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v[0]["status"], "failed", "{v}");
    let error = v[0]["error"].as_str().unwrap();
    assert!(error.contains("ValueError: printer raises in decide"), "{error}");
    assert_eq!(files(dir2.path()), before, "a failed plan applies nothing");
    drop(dir);
}

#[test]
fn retention_run_json_reports_a_plugin_that_cannot_load_as_a_failed_pass() {
    let (dir, config) = run_setup("");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("plugin = \"printer\"", "plugin = \"big_start\"");
    std::fs::write(&config, text).unwrap();
    let (out, stdout, stderr) = run(retention()
        .args(["run", "--json", "--now", NOW, "--config"])
        .arg(&config));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["dataset"], "logs");
    assert_eq!(v[0]["status"], "failed");
    assert!(
        v[0]["error"].as_str().unwrap().contains("MiB of memory to start"),
        "{v}"
    );
    drop(dir);
}

#[test]
fn the_service_runs_a_printing_plugin_and_rejects_one_whose_trial_raises_with_its_traceback() {
    let s = Setup::new("printer", 6);
    let config = s.config("", "");
    let svc = s.start(&config, Some(TOKEN));
    let (status, report) = svc.post("/v1/datasets/logs/passes?dry_run=true", Some(TOKEN));
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["status"], "ok", "{report}");
    assert!(
        lines_of(&report["plugin_log"], "stdout").contains(&"printer: decide 6 segments"),
        "{report}"
    );
    let (status, _) = svc.stop();
    assert!(status.success());

    // The same plugin, now with parameters that make its trial batch raise: rejected, with the traceback, and the
    // service keeps answering.
    let config = s.config("params = { raise_in = \"decide\" }", "");
    let svc = s.start(&config, Some(TOKEN));
    let rejection = wait_for("the rejection", || {
        let p = svc.plugin("policy");
        p["plugin"]["last_rejection"]["reason"].as_str().map(String::from)
    });
    assert!(
        rejection.contains("ValueError: printer raises in decide"),
        "{rejection}"
    );
    assert_eq!(svc.get("/healthz").0, 200);
    let (status, log) = svc.stop();
    assert!(status.success(), "{log}");
}

fn check(path: &Path, extra: &[&str], cache: &Path) -> (i32, String, String) {
    let (out, stdout, stderr) = run(retention()
        .env("XDG_CACHE_HOME", cache)
        .args(["plugin", "check"])
        .args(extra)
        .arg(path));
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

#[test]
fn an_import_the_host_does_not_provide_is_named_with_what_to_do() {
    let cache = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = check(&plugin("foreign_import"), &["--json"], cache.path());
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("imports wasi:keyvalue/store@0.2.0-draft, which this host does not provide"),
        "{stderr}"
    );
    assert!(stderr.contains("remove the use of wasi:keyvalue"), "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    assert!(v["error"]["message"].as_str().unwrap().contains("wasi:keyvalue"), "{v}");
}

#[test]
fn a_plugin_needing_more_memory_to_start_than_the_cap_says_so_without_compiling_or_losing_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let entries = || {
        std::fs::read_dir(cache.path().join("retention"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let big = plugin("big_start");
    let (code, stdout, stderr) = check(&big, &["--json"], cache.path());
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("needs 82 MiB of memory to start, more than `runtime.memory_limit_mib = 64`"),
        "{stderr}"
    );
    assert!(stderr.contains("--memory-limit-mib"), "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("needs 82 MiB"), "{v}");
    assert_eq!(entries(), 0, "nothing was compiled");

    // With the cap raised it loads and is cached; under the default cap again it is refused, and the entry stays.
    let (code, stdout, stderr) = check(&big, &["--json", "--memory-limit-mib", "128"], cache.path());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(serde_json::from_str::<Value>(&stdout).unwrap()["cached"], false);
    assert_eq!(entries(), 1);
    let (code, _, stderr) = check(&big, &[], cache.path());
    assert_eq!(code, 1);
    assert!(stderr.contains("needs 82 MiB"), "{stderr}");
    assert_eq!(entries(), 1, "a valid cache entry is never discarded");
}

#[test]
fn plugin_test_json_prints_a_bad_fixture_as_a_json_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "[{\"name\": \"a\"}]").unwrap();
    let (out, stdout, stderr) = run(retention()
        .args(["plugin", "test", "--json", "--segments"])
        .arg(&bad)
        .arg(plugin("printer")));
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid segments file"),
        "{v}"
    );
}

/// A plugin made large (a custom section of 1.5 MiB appended: same code, another digest), as an interpreter is.
fn large(stem: &str, dir: &Path) -> PathBuf {
    let mut bytes = std::fs::read(plugin(stem)).unwrap();
    let name = b"retention-test-padding";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.resize(payload.len() + (3 << 19), 0);
    bytes.push(0);
    let mut n = payload.len();
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            bytes.push(b);
            break;
        }
        bytes.push(b | 0x80);
    }
    bytes.extend_from_slice(&payload);
    let p = dir.join(format!("{stem}-large.wasm"));
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn a_large_plugin_is_checked_on_baseline_code_with_the_same_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = check(&large("gfs", dir.path()), &["--json"], cache.path());
    assert_eq!(code, 0, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["compiler"], "winch", "{v}");
    // The deadline and the memory cap hold on baseline code too.
    let looping = large("misbehave", dir.path());
    for (params, kind) in [("mode=loop", "timeout"), ("mode=oom", "memory")] {
        let (out, stdout, stderr) = run(retention()
            .env("XDG_CACHE_HOME", cache.path())
            .args(["plugin", "test", "--json", "--param", params, "--segments"])
            .arg(fixture(dir.path()))
            .arg(&looping));
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        let v: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(v["error"]["kind"], kind, "{v}");
    }
}

#[test]
fn a_new_large_plugin_serves_on_baseline_code_at_once_then_on_cranelifts() {
    let s = Setup::new("age_tiering", 4);
    let dir = tempfile::tempdir().unwrap();
    s.put_plugin("policy", std::fs::read(large("age_tiering", dir.path())).unwrap());
    let config = s.config("", "");
    let svc = s.start(&config, Some(TOKEN));
    // Served at once (on Winch's code: the file is over the size where the baseline compiler pays off), and Cranelift's
    // code replaces it within seconds: the same version.
    let first = svc.plugin("policy")["plugin"]["active"].clone();
    let optimised = wait_for("the optimised code", || {
        let active = svc.plugin("policy")["plugin"]["active"].clone();
        (active["compiler"] == "cranelift").then_some(active)
    });
    assert_eq!(first["digest"], optimised["digest"]);
    let (status, report) = svc.post("/v1/datasets/logs/passes?dry_run=true", Some(TOKEN));
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["plugin"]["digest"], first["digest"]);
    let (_, metrics) = common::service::http(svc.port, "GET", "/metrics", None);
    assert!(
        metrics.contains("retention_plugin_loads_total{plugin=\"policy\",outcome=\"optimized\"} 1"),
        "{metrics}"
    );
    let (status, log) = svc.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("plugin optimised"), "{log}");
}
