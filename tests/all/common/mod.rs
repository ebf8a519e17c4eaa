//! Helpers shared by the end-to-end tests: the real `retention` binary and the real guest plugins, built once per
//! test binary with the same command the README documents.

#![allow(dead_code)]

pub mod census;
pub mod pg_server;
pub mod postgres;
pub mod service;
pub mod tsdb_server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Builds every guest plugin (once per test process) and returns the directory holding the `.wasm` files.
pub fn plugin_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let guest = repo_root().join("guest-plugins");
        // The same command as README's; cargo's own lock serialises concurrent test binaries.
        let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(&guest)
            .args(["build", "--release", "--target", "wasm32-wasip2", "--target-dir"])
            .arg(guest.join("target"))
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("RUSTFLAGS")
            .output()
            .expect("run cargo to build the guest plugins");
        assert!(
            out.status.success(),
            "building the guest plugins failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        guest.join("target/wasm32-wasip2/release")
    })
    .clone()
}

/// Path of a built plugin, by file stem (e.g. `age_tiering`).
pub fn plugin(stem: &str) -> PathBuf {
    let p = plugin_dir().join(format!("{stem}.wasm"));
    assert!(p.is_file(), "no plugin {}", p.display());
    p
}

/// A command running the real `retention` binary. Its compiled-plugin cache is under `target/`, shared by the tests
/// and never the user's own.
pub fn retention() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_retention"));
    c.env_remove("RETENTION_CRASH_AT")
        .env_remove("RETENTION_FAIL_AT")
        .env("XDG_CACHE_HOME", repo_root().join("target/test-cache"));
    c
}

/// Runs a command and returns its output, with stdout and stderr as strings.
pub fn run(cmd: &mut Command) -> (Output, String, String) {
    let out = cmd.output().expect("spawn retention");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

/// Every file under `dir`, recursively: path relative to `dir` (`/`-separated) -> bytes.
pub fn files_under(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("cannot list {}: {e}", d.display())) {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(dir).unwrap().to_str().unwrap().to_string();
                out.insert(rel, std::fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

/// Whether `rel` (a path under a data root or a temp dir) is one of the engine's own files in a root's engine area,
/// `.retention-trash/<file>` directly (the temporaries' key, state markers): no segment and no trash entry.
/// Every file under `dir`, relative, sorted.
pub fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

pub fn is_engine_file(rel: &str) -> bool {
    let after = match rel.strip_prefix(".retention-trash/") {
        Some(r) => r,
        None => match rel.split_once("/.retention-trash/") {
            Some((_, r)) => r,
            None => return false,
        },
    };
    !after.contains('/')
}

/// A pass report's segments as (name, action), in the report's order (oldest first).
pub fn segment_actions(report: &serde_json::Value) -> Vec<(String, String)> {
    report["segments"]
        .as_array()
        .unwrap_or_else(|| panic!("no segments in {report:#}"))
        .iter()
        .map(|s| {
            let field = |k: &str| s[k].as_str().unwrap_or_else(|| panic!("no {k} in {s}")).to_string();
            (field("name"), field("action"))
        })
        .collect()
}
