//! The sandbox, end to end: a plugin that loops, hoards memory, traps or answers nonsense costs its pass and nothing
//! else. Every test runs the real binary on real files with the real `misbehave` plugin and checks that not a byte
//! changed, even when the plugin's earlier batches made valid decisions (`good_batches`).

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{plugin_dir, retention, run};
use serde_json::Value;

const NOW: &str = "2026-03-01T12:00:00Z";

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    /// Four hot log files and one compressed one; batches of one segment so that a plan spans five `decide` calls.
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        for day in 1..=4 {
            std::fs::write(
                logs.join(format!("app-2026-02-0{day}.log")),
                format!("day {day}\n").repeat(500),
            )
            .unwrap();
        }
        let zst = zstd::encode_all(&b"old data\n".repeat(100)[..], 3).unwrap();
        let old = logs.join("app-2026-01-01.log.zst");
        std::fs::write(&old, zst).unwrap();
        // Segments' times come from mtime: make the compressed one the oldest for certain, not by a tie on the
        // file system's timestamp granularity (which sorts by name and made its batch index vary).
        let jan = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_767_225_600);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(jan)
            .unwrap();
        Setup { dir }
    }

    fn config(&self, params: &str, runtime: &str) -> std::path::PathBuf {
        let text = format!(
            r#"plugin_dir = "{plugins}"
[runtime]
batch_size = 1
{runtime}
[[dataset]]
name = "logs"
plugin = "misbehave"
params = {{ {params} }}
[dataset.directory]
root = "logs"
"#,
            plugins = plugin_dir().display()
        );
        let p = self.dir.path().join("retention.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        let logs = self.dir.path().join("logs");
        std::fs::read_dir(&logs)
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect()
    }

    /// Runs a real pass; returns the exit code and the dataset's report.
    fn pass(&self, config: &Path) -> (i32, Value) {
        let (out, stdout, stderr) = run(retention()
            .args(["run", "--json", "--now", NOW, "--config"])
            .arg(config));
        let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
        (out.status.code().unwrap(), v[0].clone())
    }
}

/// Runs `params` and asserts: the pass failed, nothing changed, and the error names the plugin, the call and `kind`.
fn fails_touching_nothing(params: &str, runtime: &str, call: &str, kind: &str) -> String {
    let s = Setup::new();
    let before = s.snapshot();
    let config = s.config(params, runtime);
    let (code, report) = s.pass(&config);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["status"], "failed", "{report:#}");
    assert_eq!(s.snapshot(), before, "a failed plan must apply nothing");
    let e = report["error"].as_str().unwrap().to_string();
    assert!(e.contains("plugin misbehave 0.1.0"), "the error names the plugin: {e}");
    assert!(e.contains(call), "the error names the call {call:?}: {e}");
    assert!(e.contains(kind), "the error says why ({kind}): {e}");
    e
}

#[test]
fn an_endless_loop_in_decide_is_stopped_by_the_deadline_and_nothing_is_applied() {
    let e = fails_touching_nothing(
        r#"mode = "loop", good_batches = 2"#,
        "call_timeout_ms = 300",
        "decide (batch 2)",
        "timeout",
    );
    assert!(e.contains("300 ms"), "{e}");
}

#[test]
fn an_endless_loop_in_begin_is_stopped_by_the_deadline() {
    fails_touching_nothing(r#"mode = "loop-begin""#, "call_timeout_ms = 300", "begin", "timeout");
}

#[test]
fn a_plugin_growing_past_the_memory_cap_fails_its_pass() {
    let e = fails_touching_nothing(
        r#"mode = "oom", good_batches = 1"#,
        "memory_limit_mib = 16",
        "decide (batch 1)",
        "memory",
    );
    assert!(e.contains("memory limit of 16 MiB exceeded"), "{e}");
}

#[test]
fn a_panicking_plugin_fails_its_pass() {
    fails_touching_nothing(r#"mode = "trap", good_batches = 3"#, "", "decide (batch 3)", "trap");
}

#[test]
fn the_wrong_number_of_decisions_is_invalid_output() {
    let e = fails_touching_nothing(
        r#"mode = "wrong-count", good_batches = 1"#,
        "",
        "decide (batch 1)",
        "invalid-output",
    );
    assert!(e.contains("returned 0 actions for a batch of 1 segments"), "{e}");
}

#[test]
fn compressing_an_already_compressed_segment_is_invalid_output() {
    // The compressed segment is the oldest, so it is batch 0.
    let e = fails_touching_nothing(r#"mode = "compress-all""#, "", "decide (batch 0)", "invalid-output");
    assert!(
        e.contains("compress for compressed segment \"app-2026-01-01.log\""),
        "{e}"
    );
}

#[test]
fn a_reason_index_past_the_texts_is_invalid_output() {
    fails_touching_nothing(
        r#"mode = "bad-reason", good_batches = 4"#,
        "",
        "decide (batch 4)",
        "invalid-output",
    );
}

#[test]
fn an_error_returned_by_the_plugin_fails_the_pass_with_its_message() {
    let e = fails_touching_nothing(
        r#"mode = "refuse", good_batches = 2"#,
        "",
        "decide (batch 2)",
        "refused",
    );
    assert!(e.contains("misbehave refuses to decide"), "{e}");
}

#[test]
fn a_slow_plugin_within_its_deadline_succeeds() {
    let s = Setup::new();
    let config = s.config(r#"mode = "slow", slow_ms = 100"#, "call_timeout_ms = 1000");
    let (code, report) = s.pass(&config);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["stats"]["kept"]["segments"], 5);
    assert_eq!(report["segments"][0]["reason"], "slow but in time");
}

#[test]
fn a_log_flood_is_bounded_and_counted() {
    let s = Setup::new();
    let config = s.config(r#"mode = "log-flood""#, "");
    let (code, report) = s.pass(&config);
    assert_eq!(code, 0, "{report:#}");
    let kept = report["plugin_log"].as_array().unwrap().len() as u64;
    assert_eq!(kept, 1_000, "the host keeps at most 1,000 lines per pass");
    assert_eq!(report["plugin_log_dropped"].as_u64().unwrap(), 5 * 100_000 - kept);
}

#[test]
fn a_huge_reason_is_cut_to_512_bytes() {
    let s = Setup::new();
    let config = s.config(r#"mode = "huge-reason""#, "");
    let (code, report) = s.pass(&config);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["segments"][0]["reason"].as_str().unwrap().len(), 512);
}

#[test]
fn the_plugin_cannot_read_host_files_the_environment_or_open_sockets() {
    let s = Setup::new();
    let config = s.config(r#"mode = "snoop""#, "");
    let (code, report) = s.pass(&config);
    assert_eq!(code, 0, "{report:#}");
    let what = report["segments"][0]["reason"].as_str().unwrap();
    assert!(what.contains("file=Err("), "{what}");
    assert!(what.contains("env=0 args=0"), "{what}");
    assert!(what.contains("socket=Err("), "{what}");
}
