//! `retention plugin new` and `retention plugin wit`: a new author goes from nothing to a plugin that passes
//! `retention plugin test`, in each language, with exactly the commands the project's README (and `plugin new`
//! itself) gives. Each test makes a project in a temp dir, runs its own test command, builds it, and runs the built
//! component through the real binary on the project's fixture.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::{retention, run};
use serde_json::Value;

/// Creates a project; returns the commands `plugin new` printed (after `cd`).
fn new_project(lang: &str, dir: &Path) -> Vec<String> {
    let (out, stdout, stderr) = run(retention()
        .args(["plugin", "new", "keep-audit", "--lang", lang, "--dir"])
        .arg(dir));
    assert!(out.status.success(), "{stderr}");
    assert!(dir.join("wit/retention.wit").is_file());
    stdout.lines().skip(2).map(|l| l.trim().to_string()).collect()
}

/// Runs one of the printed commands in the project (`retention` is the binary under test).
fn step(dir: &Path, command: &str, env: &[(&str, &Path)]) -> String {
    let words: Vec<&str> = command.split_whitespace().collect();
    let mut cmd = if words[0] == "retention" {
        let mut c = retention();
        c.args(&words[1..]);
        c
    } else {
        let mut c = Command::new(words[0]);
        c.args(&words[1..]);
        c
    };
    cmd.current_dir(dir)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let (out, stdout, stderr) = run(&mut cmd);
    assert!(
        out.status.success(),
        "`{command}` failed in {}:\n{stdout}\n{stderr}",
        dir.display()
    );
    stdout
}

/// Runs every printed step; the last one is `retention plugin test ...`: checks its decisions with `--json`.
fn builds_and_passes_plugin_test(lang: &str, env: &[(&str, &Path)]) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("keep-audit");
    let steps = new_project(lang, &dir);
    let (test, build) = steps.split_last().unwrap();
    assert!(test.starts_with("retention plugin test "), "{steps:?}");
    for s in build {
        step(&dir, s, env);
    }
    let out = step(&dir, &format!("{test} --json"), env);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["plugin"]["name"], "keep-audit", "{v}");
    let actions: Vec<(&str, &str)> = v["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["name"].as_str().unwrap(), d["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [
            ("app-2026-01-01.log", "drop"),
            ("app-2026-01-20.log", "compress"),
            ("app-2026-01-28.log", "compress"),
            ("app-2026-01-25.log.zst", "keep"),
            ("audit-2025-06-01.log", "compress"),
        ],
        "{lang}"
    );
}

#[test]
fn a_new_rust_plugin_builds_and_passes_plugin_test_with_the_printed_commands() {
    builds_and_passes_plugin_test("rust", &[]);
}

#[test]
fn a_new_python_plugin_builds_and_passes_plugin_test_with_the_printed_commands() {
    builds_and_passes_plugin_test("python", &[]);
}

#[test]
fn a_new_typescript_plugin_builds_and_passes_plugin_test_with_the_printed_commands() {
    builds_and_passes_plugin_test("ts", &[]);
}

#[test]
fn plugin_new_refuses_a_bad_name_and_a_directory_that_is_not_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, _, stderr) = run(retention()
        .args(["plugin", "new", "Keep_Audit", "--lang", "rust", "--dir"])
        .arg(tmp.path().join("x")));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("invalid plugin name \"Keep_Audit\""), "{stderr}");
    std::fs::write(tmp.path().join("precious.txt"), "mine").unwrap();
    let (out, _, stderr) = run(retention()
        .args(["plugin", "new", "keep-audit", "--lang", "python", "--dir"])
        .arg(tmp.path()));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("is not empty"), "{stderr}");
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1, "nothing written");
}

#[test]
fn plugin_wit_writes_the_wit_the_host_accepts() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, stdout, stderr) = run(retention().args(["plugin", "wit"]).arg(tmp.path()));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("retention:policy@0.1.0"), "{stdout}");
    let written = std::fs::read_to_string(tmp.path().join("retention.wit")).unwrap();
    let ours = std::fs::read_to_string(common::repo_root().join("wit/retention.wit")).unwrap();
    assert_eq!(written, ours);
    let (_, stdout, _) = run(retention().args(["plugin", "wit"]).arg(tmp.path()));
    assert!(stdout.contains("is up to date"), "{stdout}");
    let (_, stdout, _) = run(retention().args(["plugin", "wit", "-"]));
    assert_eq!(stdout, ours);
}
