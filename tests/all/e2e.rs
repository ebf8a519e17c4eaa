//! End-to-end: the real `retention` binary, real compiled plugins, real files in temp dirs.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{plugin, plugin_dir, retention, run};
use serde_json::Value;

const NOW: &str = "2026-03-01T12:00:00Z";

/// A log tree `<service>/<level>-<date>.log`, dates relative to NOW; returns the tree root's parent.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new(files: &[(&str, usize)]) -> Tree {
        let dir = tempfile::tempdir().unwrap();
        for (name, size) in files {
            let p = dir.path().join("logs").join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            let line = format!("{name} some log line with a little entropy\n");
            let body: String = line.repeat(size / line.len() + 1)[..*size].to_string();
            std::fs::write(p, body).unwrap();
        }
        std::fs::create_dir(dir.path().join("archive")).unwrap();
        Tree { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn archive(&self) -> PathBuf {
        self.dir.path().join("archive")
    }

    /// Writes a config using `plugin` with `params` (TOML inline table body) and returns its path.
    fn config(&self, plugin: &str, params: &str, extra_dataset: &str) -> PathBuf {
        let text = format!(
            r#"plugin_dir = "{plugins}"
[[dataset]]
name = "logs"
plugin = "{plugin}"
params = {{ {params} }}
{extra_dataset}
[dataset.directory]
root = "logs"
labels = '^(?P<service>[^/]+)/(?P<level>\w+)-(?P<date>\d{{4}}-\d{{2}}-\d{{2}})\.log$'
time = "label:date"
archive_url = "file://{archive}"
"#,
            plugins = plugin_dir().display(),
            archive = self.archive().display()
        );
        let p = self.path().join("retention.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Every data file under the temp dir (relative path -> sha256 of its bytes), excluding the config and the state
    /// directory (pass history and audit trail: written by every run, a record, not data).
    fn snapshot(&self) -> BTreeMap<String, String> {
        common::files_under(self.path())
            .into_iter()
            .filter(|(rel, _)| rel != "retention.toml" && !rel.starts_with("retention-state/"))
            .map(|(rel, bytes)| (rel, sha256(&bytes)))
            .collect()
    }
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

fn read(tree: &Tree, rel: &str) -> Vec<u8> {
    std::fs::read(tree.path().join(rel)).unwrap()
}

fn files(names: &[&str]) -> Vec<(String, usize)> {
    names.iter().map(|n| (n.to_string(), 20_000)).collect()
}

fn tree_of(names: &[&str]) -> Tree {
    let f = files(names);
    let refs: Vec<(&str, usize)> = f.iter().map(|(n, s)| (n.as_str(), *s)).collect();
    Tree::new(&refs)
}

const TIERING: &str = r#"compress_after_days = 1, archive_after_days = 10, drop_after_days = 30"#;

/// Ages relative to NOW (2026-03-01): 0 days, 5 days, 15 days, 40 days.
const FILES: [&str; 4] = [
    "api/info-2026-03-01.log",
    "api/info-2026-02-24.log",
    "api/info-2026-02-14.log",
    "api/info-2026-01-20.log",
];

fn run_json(config: &Path, extra: &[&str]) -> (i32, Value, String) {
    let (out, stdout, stderr) = run(retention()
        .args(["run", "--config"])
        .arg(config)
        .args(["--json", "--now", NOW])
        .args(extra));
    let v = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), v, stderr)
}

fn decisions(report: &Value) -> BTreeMap<String, String> {
    common::segment_actions(&report[0]).into_iter().collect()
}

#[test]
fn a_dry_run_prints_the_plan_and_changes_nothing() {
    let tree = tree_of(&FILES);
    let config = tree.config("age_tiering", TIERING, "");
    let before = tree.snapshot();
    let (code, report, stderr) = run_json(&config, &["--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(tree.snapshot(), before, "a dry run must not touch a byte");
    let d = decisions(&report);
    assert_eq!(d["api/info-2026-03-01.log"], "keep");
    assert_eq!(d["api/info-2026-02-24.log"], "compress");
    assert_eq!(d["api/info-2026-02-14.log"], "archive");
    assert_eq!(d["api/info-2026-01-20.log"], "drop");
    assert_eq!(report[0]["dry_run"], true);
    assert_eq!(report[0]["status"], "ok");
    assert_eq!(report[0]["stats"]["dropped"]["segments"], 1);
    assert_eq!(
        report[0]["stats"]["freed_bytes"], 40_000,
        "a dry run counts drops and archives as freed"
    );
    let oldest = &report[0]["segments"][0];
    assert_eq!(
        oldest["name"], "api/info-2026-01-20.log",
        "segments are reported oldest first"
    );
    assert!(oldest["reason"].as_str().unwrap().contains("drop"), "{oldest}");

    // The text form lists every segment with its reason and the totals.
    let (out, stdout, _) = run(retention()
        .args(["run", "--dry-run", "--now", NOW, "--config"])
        .arg(&config));
    assert!(out.status.success());
    assert!(stdout.contains("dry run"), "{stdout}");
    assert!(stdout.contains("api/info-2026-01-20.log"), "{stdout}");
    assert!(stdout.contains("would free 39.1 KiB"), "{stdout}");
    assert_eq!(tree.snapshot(), before);
}

#[test]
fn a_real_pass_leaves_exactly_the_expected_files_and_counts_them() {
    let tree = tree_of(&FILES);
    let original: BTreeMap<&str, Vec<u8>> = FILES.iter().map(|f| (*f, read(&tree, &format!("logs/{f}")))).collect();
    let config = tree.config("age_tiering", TIERING, "");
    let (code, report, stderr) = run_json(&config, &[]);
    assert_eq!(code, 0, "{stderr}\n{report:#}");
    let after = tree.snapshot();
    // The dropped file waits in the dataset's trash for its grace period (a day by default), with its bytes.
    let (trashed, names): (Vec<&str>, Vec<&str>) = after
        .keys()
        .map(String::as_str)
        .filter(|n| !common::is_engine_file(n))
        .partition(|n| n.starts_with("logs/.retention-trash/"));
    assert_eq!(
        names,
        [
            "archive/api/info-2026-02-14.log",
            "logs/api/info-2026-02-24.log.zst",
            "logs/api/info-2026-03-01.log",
        ]
    );
    assert_eq!(trashed.len(), 1, "{trashed:?}");
    assert!(trashed[0].ends_with("/api/info-2026-01-20.log"), "{trashed:?}");
    assert_eq!(read(&tree, trashed[0]), original["api/info-2026-01-20.log"]);
    // Every surviving copy holds exactly the original bytes.
    assert_eq!(
        read(&tree, "archive/api/info-2026-02-14.log"),
        original["api/info-2026-02-14.log"]
    );
    let zst = read(&tree, "logs/api/info-2026-02-24.log.zst");
    assert_eq!(zstd::decode_all(&zst[..]).unwrap(), original["api/info-2026-02-24.log"]);
    assert_eq!(
        read(&tree, "logs/api/info-2026-03-01.log"),
        original["api/info-2026-03-01.log"]
    );

    let stats = &report[0]["stats"];
    assert_eq!(stats["kept"]["segments"], 1);
    assert_eq!(stats["compressed"]["segments"], 1);
    assert_eq!(stats["archived"]["segments"], 1);
    assert_eq!(stats["dropped"]["segments"], 1);
    assert_eq!(stats["dropped"]["bytes"], 20_000);
    assert_eq!(stats["trashed"]["segments"], 1, "the drop went to the trash");
    assert_eq!(stats["trashed"]["bytes"], 20_000);
    assert_eq!(stats["purged"]["segments"], 0);
    assert_eq!(stats["failed"], 0);
    assert_eq!(stats["freed_bytes"], 40_000 + 20_000 - zst.len() as u64);
    assert_eq!(report[0]["plugin"]["name"], "age-tiering");

    // A second pass sees the new tiers: the archived segment is now 15 days old and stays; nothing more to do.
    let (code, report, stderr) = run_json(&config, &["--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    let tiers: BTreeMap<String, String> = report[0]["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["tier"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(tiers["api/info-2026-02-14.log"], "archived");
    assert_eq!(tiers["api/info-2026-02-24.log"], "compressed");
    assert_eq!(report[0]["stats"]["kept"]["segments"], 3);
}

#[test]
fn a_plan_over_the_drop_guard_applies_nothing_and_says_why() {
    let tree = tree_of(&FILES);
    let config = tree.config(
        "age_tiering",
        "drop_after_days = 3",
        "[dataset.guard]\nmax_drop_bytes_fraction = 0.5",
    );
    let before = tree.snapshot();
    let (code, report, _) = run_json(&config, &[]);
    assert_eq!(code, 1);
    assert_eq!(tree.snapshot(), before);
    assert_eq!(report[0]["status"], "refused");
    let e = report[0]["error"].as_str().unwrap();
    assert!(
        e.contains("max_drop_bytes_fraction") && e.contains("75.0%") && e.contains("50.0%"),
        "{e}"
    );
}

#[test]
fn a_plugin_that_refuses_its_parameters_fails_the_pass_and_touches_nothing() {
    let tree = tree_of(&FILES);
    let config = tree.config("age_tiering", r#"drop_after_days = "soon""#, "");
    let before = tree.snapshot();
    let (code, report, _) = run_json(&config, &[]);
    assert_eq!(code, 1);
    assert_eq!(tree.snapshot(), before);
    assert_eq!(report[0]["status"], "failed");
    let e = report[0]["error"].as_str().unwrap();
    assert!(
        e.contains("age-tiering") && e.contains("begin") && e.contains("drop_after_days"),
        "{e}"
    );
}

#[test]
fn archiving_without_an_archive_destination_applies_nothing() {
    let tree = tree_of(&FILES);
    let config = tree.config("age_tiering", TIERING, "");
    let text = std::fs::read_to_string(&config).unwrap();
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("archive_url"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&config, text).unwrap();
    let before = tree.snapshot();
    let (code, report, _) = run_json(&config, &[]);
    assert_eq!(code, 1);
    assert_eq!(tree.snapshot(), before);
    assert!(report[0]["error"].as_str().unwrap().contains("no archive destination"));
}

#[test]
fn a_pass_of_a_dataset_another_process_is_passing_over_applies_nothing_and_says_so() {
    let tree = tree_of(&FILES);
    let config = tree.config("age_tiering", TIERING, "");
    let before = tree.snapshot();
    // As `retention serve` (or another `retention run`) does during a real pass of the dataset.
    let held = retention::lock::try_lock(&tree.path().join("retention-state"), "logs").unwrap();
    let (code, _, stderr) = run_json(&config, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("dataset logs is busy") && stderr.contains("no action was applied"),
        "{stderr}"
    );
    assert_eq!(tree.snapshot(), before);
    // A dry run only reads: it needs no lock.
    let (code, report, stderr) = run_json(&config, &["--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report[0]["status"], "ok");
    drop(held);
    let (code, _, stderr) = run_json(&config, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_ne!(tree.snapshot(), before);
}

fn config_error(text: &str) -> String {
    let tree = tree_of(&FILES[..1]);
    let p = tree.path().join("bad.toml");
    std::fs::write(&p, text.replace("{plugins}", &plugin_dir().display().to_string())).unwrap();
    let (out, _, stderr) = run(retention().args(["run", "--config"]).arg(&p));
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    stderr
}

const GOOD: &str = "plugin_dir = \"{plugins}\"\n[[dataset]]\nname = \"l\"\nplugin = \"age_tiering\"\n\
                    [dataset.directory]\nroot = \"logs\"\n";

#[test]
fn bad_configs_are_refused_naming_the_field_and_value() {
    let e = config_error(&format!("{GOOD}colour = \"red\"\n"));
    assert!(e.contains("unknown field `colour`"), "{e}");
    let e = config_error(&GOOD.replace("age_tiering", "missing_plugin"));
    assert!(
        e.contains("dataset[0].plugin") && e.contains("missing_plugin.wasm"),
        "{e}"
    );
    let e = config_error(&format!("{GOOD}labels = '(?P<oops'\n"));
    assert!(
        e.contains("dataset[0].directory.labels") && e.contains("(?P<oops"),
        "{e}"
    );
    let e = config_error(&format!("{GOOD}include = ['**/[x']\n"));
    assert!(e.contains("dataset[0].directory.include[0]"), "{e}");
    let e = config_error(&format!("{GOOD}archive_url = \"file:///no/such/archive\"\n"));
    assert!(e.contains("archive_url") && e.contains("/no/such/archive"), "{e}");
    let e = config_error(&format!("{GOOD}compression_level = 99\n"));
    assert!(e.contains("compression_level") && e.contains("99"), "{e}");
    let e = config_error("this is not toml");
    assert!(e.contains("invalid config file"), "{e}");
}

#[test]
fn plugin_check_describes_a_good_plugin() {
    let (out, stdout, stderr) = run(retention().args(["plugin", "check"]).arg(plugin("age_tiering")));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("name:        age-tiering"), "{stdout}");
    assert!(stdout.contains("digest:      sha256:"), "{stdout}");
    assert!(stdout.contains("retention:policy/types@0.1.0"), "{stdout}");
    assert!(stdout.contains("compile:"), "{stdout}");
}

#[test]
fn a_plugin_compiled_once_is_loaded_from_the_cache_afterwards() {
    let cache = tempfile::tempdir().unwrap();
    let check = || {
        let (out, stdout, stderr) = run(retention()
            .env("XDG_CACHE_HOME", cache.path())
            .args(["plugin", "check", "--json"])
            .arg(plugin("gfs")));
        assert!(out.status.success(), "{stderr}");
        serde_json::from_str::<Value>(&stdout).unwrap()
    };
    assert_eq!(check()["cached"], false);
    let entries: Vec<_> = std::fs::read_dir(cache.path().join("retention")).unwrap().collect();
    assert_eq!(entries.len(), 1, "one compiled entry, keyed by digest and engine");
    assert_eq!(check()["cached"], true);
    // A damaged entry is discarded and the plugin compiled again, never a failure.
    let entry = entries[0].as_ref().unwrap().path();
    std::fs::write(&entry, b"not compiled code").unwrap();
    assert_eq!(check()["cached"], false);
    assert_eq!(check()["cached"], true);
}

fn check_error(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.wasm");
    std::fs::write(&p, bytes).unwrap();
    let (out, _, stderr) = run(retention().args(["plugin", "check"]).arg(&p));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    stderr
}

#[test]
fn plugin_check_tells_garbage_a_core_module_and_another_world_apart() {
    let e = check_error(b"#!/bin/sh\necho hello\n");
    assert!(e.contains("not a WebAssembly file (garbage bytes"), "{e}");
    // The smallest valid core module.
    let e = check_error(b"\0asm\x01\0\0\0");
    assert!(e.contains("a core WebAssembly module, not a component"), "{e}");
    // The smallest valid component: it exports nothing, so it is of another world.
    let e = check_error(b"\0asm\x0d\0\x01\0");
    assert!(
        e.contains("component of another world") && e.contains("does not export"),
        "{e}"
    );
}
