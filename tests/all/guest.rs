//! The guest side's own tests, run by the README's test command: the SDK's unit tests (its `testing` module among
//! them) and the example plugins' native tests, with the command `guest-plugins/README.md` gives a plugin author.

use std::process::Command;

use crate::common;

#[test]
fn the_sdk_and_the_example_plugins_pass_their_native_tests() {
    let guest = common::repo_root().join("guest-plugins");
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(common::repo_root())
        .args(["test", "--manifest-path"])
        .arg(guest.join("Cargo.toml"))
        .args(["--target", "host-tuple", "--workspace", "--target-dir"])
        .arg(guest.join("target"))
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .output()
        .expect("run cargo test for the guest workspace");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the guest tests failed:\n{stdout}\n{stderr}");
    let passed: usize = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .filter_map(|l| l.split(' ').next()?.parse::<usize>().ok())
        .sum();
    assert!(passed >= 50, "the guest tests ran only {passed} tests:\n{stdout}");
}

/// Runs a script of the guest side (`guest-plugins/<path>`), asserting it succeeds; returns its stdout.
fn script(path: &str) -> String {
    let out = Command::new("bash")
        .arg(common::repo_root().join("guest-plugins").join(path))
        .output()
        .unwrap_or_else(|e| panic!("run {path}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{path} failed:\n{stdout}\n{stderr}");
    stdout
}

/// Builds the Python and TypeScript examples once per test process (their scripts install the pinned toolchains
/// from the lock files) and returns `guest-plugins/`.
fn other_languages_built() -> std::path::PathBuf {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        script("python/build.sh");
        script("ts/build.sh");
    });
    common::repo_root().join("guest-plugins")
}

#[test]
fn the_python_sdk_its_example_and_template_pass_their_native_tests_under_pytest() {
    let out = script("python/test.sh");
    let passed: usize = out
        .lines()
        .filter_map(|l| l[..l.find(" passed")?].rsplit(' ').next()?.parse::<usize>().ok())
        .sum();
    assert!(passed >= 50, "pytest ran only {passed} tests:\n{out}");
    assert!(!out.contains("failed"), "{out}");
}

#[test]
fn the_typescript_sdk_its_example_and_template_pass_their_native_tests_under_node() {
    // The tools come from the lock file: install them the way ts/build.sh does.
    other_languages_built();
    let out = script("ts/test.sh");
    let count = |what: &str| -> usize {
        out.lines()
            .filter_map(|l| l.strip_prefix(&format!("# {what} "))?.trim().parse::<usize>().ok())
            .sum()
    };
    assert!(count("pass") >= 30, "node ran only {} tests:\n{out}", count("pass"));
    assert_eq!(count("fail"), 0, "{out}");
}

/// `retention plugin test --json` of `wasm` on `fixture` with `params`: each decision as (name, action, reason).
fn decisions(
    wasm: &std::path::Path,
    fixture: &std::path::Path,
    params: &[&str],
    now: &str,
) -> Vec<(String, String, String)> {
    let mut cmd = common::retention();
    cmd.args(["plugin", "test", "--json", "--now", now, "--segments"])
        .arg(fixture)
        .arg(wasm);
    for p in params {
        cmd.args(["--param", p]);
    }
    let (out, stdout, stderr) = common::run(&mut cmd);
    assert!(out.status.success(), "{}: {stderr}", wasm.display());
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    v["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let s = |k: &str| d[k].as_str().unwrap_or("-").to_string();
            (s("name"), s("action"), s("reason"))
        })
        .collect()
}

/// A real dry run (past the fraction guards: the rules here drop most of a small dataset) of `wasm` over a directory of log files named by day, with `params`: each segment's (name, action).
fn real_pass(wasm: &std::path::Path, params: &str) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    for (i, level) in ["debug", "info", "audit"].iter().enumerate() {
        std::fs::create_dir_all(logs.join(level)).unwrap();
        for day in 0..40u64 {
            let p = logs.join(level).join(format!("app-{day:02}.log"));
            std::fs::write(&p, format!("{level} {day}\n").repeat(10 + i)).unwrap();
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_767_225_600 + day * 86_400);
            std::fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
    }
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(wasm, plugins.join("rule.wasm")).unwrap();
    let config = dir.path().join("retention.toml");
    std::fs::write(
        &config,
        format!(
            "plugin_dir = \"plugins\"\n[[dataset]]\nname = \"logs\"\nplugin = \"rule\"\nparams = {{ {params} }}\n\
             [dataset.directory]\nroot = \"logs\"\nlabels = '^(?P<level>[a-z]+)/'\n"
        ),
    )
    .unwrap();
    let (out, stdout, stderr) = common::run(
        common::retention()
            .args([
                "run",
                "--dry-run",
                "--force",
                "--json",
                "--now",
                "2026-02-15T00:00:00Z",
                "--config",
            ])
            .arg(&config),
    );
    assert!(out.status.success(), "{}: {stderr}\n{stdout}", wasm.display());
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v[0]["status"], "ok", "{v}");
    common::segment_actions(&v[0])
}

#[test]
fn the_python_age_tiering_decides_exactly_as_the_rust_one_in_plugin_test_and_a_real_pass() {
    let guest = other_languages_built();
    let python = guest.join("python/target/age-tiering.wasm");
    let rust = common::plugin("age_tiering");
    let fixture = guest.join("python/examples/age-tiering/fixture.json");
    let params = [
        "compress_after_days=1",
        "archive_after_days=30",
        "drop_after_days=90",
        "override.level.debug.drop_after_days=7",
    ];
    let now = "2026-03-01T00:00:00Z";
    let ours = decisions(&python, &fixture, &params, now);
    assert!(
        ours.iter().any(|d| d.1 == "drop") && ours.iter().any(|d| d.1 == "compress"),
        "{ours:?}"
    );
    assert_eq!(ours, decisions(&rust, &fixture, &params, now));

    let params = "compress_after_days = \"3\", drop_after_days = \"30\", \"override.level.debug.drop_after_days\" = \"10\", \
                  \"override.level.audit.drop_after_days\" = \"never\"";
    let ours = real_pass(&python, params);
    assert_eq!(ours.len(), 120);
    assert_eq!(ours, real_pass(&rust, params));
}

#[test]
fn the_typescript_gfs_decides_exactly_as_the_rust_one_on_both_engines() {
    let guest = other_languages_built();
    let rust = common::plugin("gfs");
    let fixture = guest.join("ts/examples/gfs/fixture.json");
    let params = ["keep_daily=5", "keep_weekly=3", "group_by=service"];
    let now = "2026-03-01T00:00:00Z";
    let want = decisions(&rust, &fixture, &params, now);
    assert!(
        want.iter().any(|d| d.1 == "keep") && want.iter().any(|d| d.1 == "drop"),
        "{want:?}"
    );
    let want_pass = real_pass(&rust, "keep_daily = \"7\", keep_monthly = \"2\", group_by = \"level\"");
    for engine in ["quickjs", "starlingmonkey"] {
        let ts = guest.join(format!("ts/target/gfs.{engine}.wasm"));
        assert_eq!(decisions(&ts, &fixture, &params, now), want, "{engine}");
        assert_eq!(
            real_pass(&ts, "keep_daily = \"7\", keep_monthly = \"2\", group_by = \"level\""),
            want_pass,
            "{engine}"
        );
    }
}

#[test]
fn a_javascript_plugin_built_with_the_toolchains_defaults_is_refused_with_the_flags_that_fix_it() {
    // componentize-js's defaults add wasi:http (the fetch event); the host names it and says how to build without.
    let guest = other_languages_built();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("gfs-default.wasm");
    let script = format!(
        "import {{ componentize }} from '@bytecodealliance/componentize-js';\n\
         import {{ writeFile }} from 'node:fs/promises';\n\
         const {{ component }} = await componentize({{ sourcePath: 'target/gfs.js', witPath: '../../wit', \
         worldName: 'plugin' }});\n\
         await writeFile({:?}, component);",
        out.display().to_string()
    );
    let built = Command::new("node")
        .current_dir(guest.join("ts"))
        .args(["--input-type=module", "-e", &script])
        .output()
        .expect("run node");
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    let (res, _, stderr) = common::run(common::retention().args(["plugin", "check"]).arg(&out));
    assert_eq!(res.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("imports wasi:http/"), "{stderr}");
    assert!(stderr.contains("which this host does not provide"), "{stderr}");
    assert!(stderr.contains("jco componentize --disable all"), "{stderr}");
}
