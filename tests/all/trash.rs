//! Soft delete end to end, with the real binary: a pass drops into the dataset's trash, `retention trash list` shows
//! it, `retention trash restore` brings it back byte for byte, a pass past the grace period purges it, and a grace of
//! zero deletes at once.

use crate::common;

use std::path::{Path, PathBuf};

use common::{plugin_dir, retention, run};
use serde_json::Value;

/// The pass's "now" for planning: the old file is 40 days old, the new one a day.
const NOW: &str = "2026-03-01T12:00:00Z";
const OLD: &str = "api/info-2026-01-20.log";
const NEW: &str = "api/info-2026-02-28.log";

struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    /// Two log files, and a config dropping after 30 days with `dir_extra` in `[dataset.directory]`.
    fn new(dir_extra: &str) -> Tree {
        let dir = tempfile::tempdir().unwrap();
        for name in [OLD, NEW] {
            let p = dir.path().join("logs").join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, format!("{name}: a log line\n").repeat(500)).unwrap();
        }
        let t = Tree { dir };
        t.config("30", dir_extra);
        t
    }

    /// Writes the config: `drop_after_days` is a number of days or `never`.
    fn config(&self, drop_after_days: &str, dir_extra: &str) {
        let text = format!(
            r#"plugin_dir = "{plugins}"
[[dataset]]
name = "logs"
plugin = "age_tiering"
params = {{ drop_after_days = "{drop_after_days}" }}
[dataset.guard]
max_drop_bytes_fraction = 1.0
[dataset.directory]
root = "logs"
labels = '^(?P<service>[^/]+)/(?P<level>\w+)-(?P<date>\d{{4}}-\d{{2}}-\d{{2}})\.log$'
time = "label:date"
{dir_extra}
"#,
            plugins = plugin_dir().display(),
        );
        std::fs::write(self.config_path(), text).unwrap();
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("retention.toml")
    }

    fn logs(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    /// Runs a pass at `now`; returns the exit code and the report.
    fn pass(&self, now: &str) -> (i32, Value) {
        let (out, stdout, stderr) = run(retention()
            .args(["run", "--json", "--now", now, "--config"])
            .arg(self.config_path()));
        let report: Value = serde_json::from_str(&stdout).unwrap_or(Value::Null);
        assert!(report.is_array(), "{stderr}");
        (out.status.code().unwrap_or(-1), report[0].clone())
    }

    /// Runs `retention trash ARGS --config <config>`; returns exit code, stdout and stderr.
    fn trash(&self, args: &[&str]) -> (i32, String, String) {
        let (out, stdout, stderr) = run(retention()
            .arg("trash")
            .args(args)
            .arg("--config")
            .arg(self.config_path()));
        (out.status.code().unwrap_or(-1), stdout, stderr)
    }

    fn list(&self) -> Vec<Value> {
        let (code, stdout, stderr) = self.trash(&["list", "--dataset", "logs", "--json"]);
        assert_eq!(code, 0, "{stderr}");
        // The API's shape: `{"trash": [...]}`.
        serde_json::from_str::<Value>(&stdout).unwrap()["trash"]
            .as_array()
            .unwrap()
            .clone()
    }
}

fn mtime(p: &Path) -> std::time::SystemTime {
    std::fs::metadata(p).unwrap().modified().unwrap()
}

fn at(rfc3339: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap().to_utc()
}

fn now_ms(rfc3339: &str) -> i64 {
    at(rfc3339).timestamp_millis()
}

/// Whether the root's trash holds no batch of dropped files (it may hold the engine's own files: the state marker).
fn no_batches(root: &Path) -> bool {
    match std::fs::read_dir(root.join(".retention-trash")) {
        Err(_) => true,
        Ok(entries) => !entries.flatten().any(|e| e.file_type().unwrap().is_dir()),
    }
}

#[test]
fn a_dropped_file_waits_in_the_trash_is_restored_exactly_and_purged_after_its_grace() {
    let t = Tree::new("");
    let old = t.logs().join(OLD);
    let (bytes, modified) = (std::fs::read(&old).unwrap(), mtime(&old));

    // The pass drops the old file into the trash.
    let (code, report) = t.pass(NOW);
    assert_eq!(code, 0, "{report:#}");
    assert!(!old.exists());
    let stats = &report["stats"];
    assert_eq!(stats["dropped"]["segments"], 1, "{stats}");
    assert_eq!(stats["trashed"]["segments"], 1, "{stats}");
    assert_eq!(stats["trashed"]["bytes"], bytes.len(), "{stats}");
    assert_eq!(stats["purged"]["segments"], 0, "{stats}");
    assert_eq!(report["purged"], Value::Array(vec![]));

    // `trash list` shows it, with a day of grace.
    let entries = t.list();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let e = &entries[0];
    assert_eq!((e["name"].as_str(), e["tier"].as_str()), (Some(OLD), Some("hot")));
    assert_eq!(e["bytes"], bytes.len());
    let (trashed_at, expires_at) = (
        e["trashed_at_ms"].as_i64().unwrap(),
        e["expires_at_ms"].as_i64().unwrap(),
    );
    assert_eq!(expires_at - trashed_at, 86_400_000);
    let (code, stdout, _) = t.trash(&["list", "--dataset", "logs"]);
    assert_eq!(code, 0);
    assert!(stdout.contains(OLD) && stdout.contains("hot"), "{stdout}");

    // A new file in its place blocks the restore, which names that path and leaves both alone.
    std::fs::write(&old, b"a newer file of the same name").unwrap();
    let (code, _, stderr) = t.trash(&["restore", "--dataset", "logs", OLD]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains(&old.display().to_string()), "{stderr}");
    assert_eq!(t.list().len(), 1);
    std::fs::remove_file(&old).unwrap();

    // Restored: same name, bytes and mtime; scanned again as a hot segment.
    let (code, stdout, stderr) = t.trash(&["restore", "--dataset", "logs", OLD]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(&format!("restored {OLD}")), "{stdout}");
    assert!(
        std::fs::read(&old).unwrap() == bytes,
        "the restored file differs from the dropped one"
    );
    assert_eq!(mtime(&old), modified);
    assert!(t.list().is_empty());
    assert!(no_batches(&t.logs()), "nothing left in the trash");
    let (code, _, stderr) = t.trash(&["restore", "--dataset", "logs", OLD]);
    assert_eq!(code, 1, "nothing left to restore");
    assert!(stderr.contains("no segment") && stderr.contains(OLD), "{stderr}");

    // Dropped again; a pass once the grace has ended (and keeping everything else) purges it for good. One clock: the
    // drop is trashed at the pass's now, and the grace runs from there.
    let (code, _) = t.pass(NOW);
    assert_eq!(code, 0);
    assert_eq!(t.list().len(), 1);
    assert_eq!(t.list()[0]["trashed_at_ms"], now_ms(NOW));
    t.config("never", "");
    let before_grace = at(NOW) + chrono::Duration::hours(23);
    let (code, report) = t.pass(&before_grace.to_rfc3339());
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["stats"]["purged"]["segments"], 0, "within its grace");
    let past_grace = at(NOW) + chrono::Duration::days(2);
    let (code, report) = t.pass(&past_grace.to_rfc3339());
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["stats"]["purged"]["segments"], 1, "{report:#}");
    assert_eq!(report["stats"]["purged"]["bytes"], bytes.len());
    assert_eq!(report["stats"]["dropped"]["segments"], 0);
    assert_eq!(report["purged"][0]["name"], OLD);
    assert!(t.list().is_empty());
    assert!(!old.exists());
    assert!(t.logs().join(NEW).exists(), "the kept file is untouched");
}

#[test]
fn a_dry_run_shows_what_a_pass_would_purge_and_purges_nothing() {
    let t = Tree::new("");
    let (code, _) = t.pass(NOW);
    assert_eq!(code, 0);
    t.config("never", "");
    let past_grace = (at(NOW) + chrono::Duration::days(2)).to_rfc3339();
    let (out, stdout, stderr) = run(retention()
        .args(["run", "--dry-run", "--now", &past_grace, "--config"])
        .arg(t.config_path()));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains(&format!("trash: would purge {OLD}")), "{stdout}");
    assert_eq!(t.list().len(), 1, "a dry run touches nothing");
}

#[test]
fn a_grace_of_zero_deletes_at_once() {
    let t = Tree::new("trash_grace_secs = 0");
    let (code, report) = t.pass(NOW);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["stats"]["dropped"]["segments"], 1);
    assert_eq!(report["stats"]["trashed"]["segments"], 0);
    assert!(!t.logs().join(OLD).exists());
    assert!(no_batches(&t.logs()), "nothing in the trash");
    assert!(t.list().is_empty());
}

#[test]
fn trash_commands_refuse_an_unknown_dataset_or_a_missing_name_as_usage_errors() {
    let t = Tree::new("");
    let (code, _, stderr) = t.trash(&["list", "--dataset", "nope"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no dataset \"nope\""), "{stderr}");
    let (code, _, stderr) = t.trash(&["restore", "--dataset", "logs"]);
    assert_eq!(code, 2, "{stderr}");
}

#[tokio::test]
async fn a_plan_that_cannot_be_recorded_as_pending_first_applies_nothing() {
    let t = Tree::new("trash_grace_secs = 0");
    let config = retention::config::Config::load(&t.config_path()).unwrap();
    let ds = &config.datasets[0];
    let runtime = retention::plugin::Runtime::new(config.runtime.clone()).unwrap();
    let plugin = runtime.load_file(&ds.plugin_path).unwrap();
    let store = retention::store::open(&ds.store).await.unwrap();
    let opts = retention::pass::PassOptions {
        dry_run: false,
        now: chrono::DateTime::parse_from_rfc3339(NOW).unwrap().to_utc(),
        cancel: None,
        force: false,
        holds: Vec::new(),
        before_purge: None,
        before_apply: Some(std::sync::Arc::new(|_, actions| {
            assert_eq!(actions.len(), 1);
            assert_eq!(actions[0].segment, OLD);
            Err("the disk is full".to_string())
        })),
        shadow: None,
        state_id: None,
        purge_by_now: false,
    };
    let report = retention::pass::run(ds, store, plugin, &opts, &|_| {}).await;
    assert_eq!(report.status, retention::pass::report::PassStatus::Failed);
    let error = report.error.unwrap();
    assert!(
        error.contains("could not be recorded in the state database first, so nothing was applied")
            && error.contains("the disk is full"),
        "{error}"
    );
    assert!(t.logs().join(OLD).exists(), "the file was not dropped");
    // As for a plan a guard refuses: the report shows the plan, each action `planned`, none applied.
    let row = report.segments.iter().find(|r| r.name == OLD).unwrap();
    assert_eq!(row.outcome, retention::pass::report::Outcome::Planned);
}
