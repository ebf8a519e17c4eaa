//! Crash safety of the real binary: for every crash point of the directory store, a pass over a fresh tree is killed
//! there (`RETENTION_CRASH_AT`, an abort as sudden as `kill -9`), and then every file's content must still exist,
//! complete, in at least one visible place (hot, `.zst`, archive, or the trash for a dropped file until it is purged).
//! The next pass, which recovers first, must leave exactly one copy of each kept file, in its planned tier, and no
//! temporaries.
//!
//! The plan comes from the `age_tiering` plugin with per-label overrides: the first directory of a name (`compress/`,
//! `archive/`, `drop/`) picks the action, and the pass's `--now` is far enough ahead that every threshold is reached:
//! the pass moves dropped files to the trash (timed by that now). A second pass two days later (`--purge-by-now`, since
//! both times are ahead of the clock) purges them once their grace has ended; the purge points are reached by it. The
//! restore points are reached by `retention trash restore` after a pass that only trashed.

use crate::common;

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

use retention::store::dir::CRASH_POINTS;

const NOW: &str = "2100-01-01T00:00:00Z";

/// Two days after [`NOW`]: past the default day of grace of what a pass at `NOW` dropped.
const LATER: &str = "2100-01-03T00:00:00Z";

use common::census::Copy;

/// A fresh dataset: root, archive directory and config file.
struct Tree {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    archive: PathBuf,
    config: PathBuf,
    /// Original content of every segment, by name.
    originals: HashMap<String, Vec<u8>>,
}

fn write(path: &Path, content: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

impl Tree {
    /// A tree whose dataset has the default grace period, or `trash_grace_secs = grace`.
    fn new(grace: Option<u64>) -> Tree {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("data");
        let archive = tmp.path().join("archive");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&archive).unwrap();
        let mut originals = HashMap::new();
        let mut add = |name: String, path: PathBuf, content: Vec<u8>, compressed: bool| {
            let stored = if compressed {
                zstd::encode_all(&content[..], 3).unwrap()
            } else {
                content.clone()
            };
            write(&path, &stored);
            originals.insert(name, content);
        };
        for i in 0..5 {
            let content = format!("log line {i}\n").repeat(50 + 40 * i).into_bytes();
            add(
                format!("compress/{i}.log"),
                root.join(format!("compress/{i}.log")),
                content.clone(),
                false,
            );
            add(
                format!("archive/h{i}.log"),
                root.join(format!("archive/h{i}.log")),
                content.clone(),
                false,
            );
            add(
                format!("archive/z{i}.log"),
                root.join(format!("archive/z{i}.log.zst")),
                content.clone(),
                true,
            );
            add(
                format!("drop/h{i}.log"),
                root.join(format!("drop/h{i}.log")),
                content.clone(),
                false,
            );
            add(
                format!("drop/z{i}.log"),
                root.join(format!("drop/z{i}.log.zst")),
                content.clone(),
                true,
            );
            add(
                format!("drop/a{i}.log"),
                archive.join(format!("drop/a{i}.log")),
                content,
                false,
            );
        }
        // Larger than the store compresses from memory: exercises the streaming path.
        let big: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8 ^ (i >> 12) as u8).collect();
        add("compress/big.log".into(), root.join("compress/big.log"), big, false);

        let config = tmp.path().join("retention.toml");
        let text = format!(
            r#"plugin_dir = "{plugins}"

[[dataset]]
name = "crash"
plugin = "age_tiering"
apply_parallelism = 2

[dataset.params]
"override.act=compress.compress_after_days" = "0"
"override.act=archive.archive_after_days" = "0"
"override.act=drop.drop_after_days" = "0"

[dataset.guard]
max_drop_bytes_fraction = 1.0
max_drop_segments_fraction = 1.0
keep_newest = 0
min_drop_age_secs = 0

[dataset.directory]
root = "{root}"
labels = '^(?P<act>[a-z]+)/'
archive_url = "file://{archive}"
{grace}
"#,
            plugins = common::plugin_dir().display(),
            root = root.display(),
            archive = archive.display(),
            grace = grace.map_or_else(String::new, |g| format!("trash_grace_secs = {g}")),
        );
        std::fs::write(&config, text).unwrap();
        Tree {
            _tmp: tmp,
            root,
            archive,
            config,
            originals,
        }
    }

    /// Runs a pass at `NOW`, dying at `crash_at` if given. Returns the exit status and stderr.
    fn run(&self, crash_at: Option<&str>) -> (std::process::ExitStatus, String) {
        self.run_at(NOW, crash_at)
    }

    fn run_at(&self, now: &str, crash_at: Option<&str>) -> (std::process::ExitStatus, String) {
        let mut cmd = common::retention();
        cmd.args(["run", "--json", "--now", now, "--config"]).arg(&self.config);
        self.exec(cmd, crash_at)
    }

    /// Runs a pass at [`LATER`] that purges by its now what a pass at [`NOW`] trashed, dying at `crash_at` if given.
    fn settle(&self, crash_at: Option<&str>) -> (std::process::ExitStatus, String) {
        let mut cmd = common::retention();
        cmd.args(["run", "--json", "--purge-by-now", "--now", LATER, "--config"])
            .arg(&self.config);
        self.exec(cmd, crash_at)
    }

    /// Runs `retention trash restore` on every dropped segment (files and archived objects), dying at `crash_at` if
    /// given.
    fn restore(&self, crash_at: Option<&str>) -> (std::process::ExitStatus, String) {
        let mut cmd = common::retention();
        cmd.args(["trash", "restore", "--dataset", "crash", "--config"])
            .arg(&self.config);
        cmd.args(self.originals.keys().filter(|n| n.starts_with("drop/")));
        self.exec(cmd, crash_at)
    }

    fn exec(&self, mut cmd: std::process::Command, crash_at: Option<&str>) -> (std::process::ExitStatus, String) {
        if let Some(p) = crash_at {
            cmd.env("RETENTION_CRASH_AT", p);
        }
        let (out, _, stderr) = common::run(&mut cmd);
        (out.status, stderr)
    }

    /// Every visible copy and every temporary or staging file (see `common::census`).
    fn visible(&self) -> (Vec<Copy>, Vec<PathBuf>) {
        common::census::take(&self.root, &self.archive)
    }

    /// The invariant at any instant: each visible copy is complete and right; each segment not planned for a drop is
    /// visible somewhere; a dropped local file is in exactly one place (its own or the trash), a dropped archived
    /// object in one or, between the copy into the archive's trash and the deletion of the original, two; when
    /// `drops_may_be_gone` (no grace, or a purge started), perhaps in none.
    fn check_whole(&self, context: &str, drops_may_be_gone: bool) {
        let (copies, _) = self.visible();
        let mut count: HashMap<&str, usize> = HashMap::new();
        for (name, place, content) in &copies {
            let original = self
                .originals
                .get(name)
                .unwrap_or_else(|| panic!("{context}: unexpected visible file {name} ({place})"));
            assert!(
                content == original,
                "{context}: the {place} copy of {name} is not its original content"
            );
            *count.entry(name).or_default() += 1;
        }
        for name in self.originals.keys() {
            let n = count.get(name.as_str()).copied().unwrap_or(0);
            if !name.starts_with("drop/") || !drops_may_be_gone {
                assert!(n >= 1, "{context}: {name} is visible nowhere");
            }
            let most = if is_local_drop(name) { 1 } else { 2 };
            if name.starts_with("drop/") {
                assert!(n <= most, "{context}: {name} is in {n} places at once");
            }
        }
    }

    /// After a complete pass: no temporaries, each kept segment once and in its planned tier, dropped ones gone (the
    /// trash purged).
    fn check_settled(&self, context: &str) {
        self.check_whole(context, true);
        let (copies, temps) = self.visible();
        assert!(temps.is_empty(), "{context}: temporaries left: {temps:?}");
        let mut places: HashMap<&str, Vec<&str>> = HashMap::new();
        for (name, place, _) in &copies {
            places.entry(name).or_default().push(place);
        }
        for name in self.originals.keys() {
            let got = places.get(name.as_str()).cloned().unwrap_or_default();
            let want: &[&str] = match name.split('/').next().unwrap() {
                "compress" => &["compressed"],
                "archive" => &["archived"],
                _ => &[],
            };
            assert_eq!(got, want, "{context}: copies of {name}");
        }
    }
}

/// A dropped file of the dataset's directory (not of its archive): a rename takes it to the trash.
fn is_local_drop(name: &str) -> bool {
    name.starts_with("drop/h") || name.starts_with("drop/z")
}

fn assert_aborted(status: std::process::ExitStatus, stderr: &str, point: &str) {
    assert_eq!(
        status.signal(),
        Some(6),
        "{point}: the pass was expected to abort at the crash point, got {status}; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("crash point {point} reached")),
        "{point}: {stderr}"
    );
}

#[test]
fn a_pass_without_crash_tiers_every_file_as_planned() {
    for grace in [None, Some(0)] {
        let t = Tree::new(grace);
        let (status, stderr) = t.run(None);
        assert!(status.success(), "{status}: {stderr}");
        let (status, stderr) = t.settle(None);
        assert!(status.success(), "{status}: {stderr}");
        t.check_settled(&format!("uninterrupted pass, grace {grace:?}"));
    }
}

#[test]
fn every_crash_point_keeps_each_file_whole_and_the_next_pass_settles_it() {
    // Every point with the default grace, but the drop points, which only a drop without grace (deleting at once)
    // reaches.
    let cases = CRASH_POINTS.iter().map(|p| (*p, p.starts_with("drop:").then_some(0)));
    for (point, grace) in cases {
        let context = &format!("{point} (trash_grace_secs {grace:?})");
        let t = Tree::new(grace);
        let (status, stderr) = match point.split(':').next().unwrap() {
            "recover" => {
                // Recovery only has work after an interrupted pass: leave temporaries and duplicates behind first.
                let (status, stderr) = t.run(Some("compress:renamed"));
                assert_aborted(status, &stderr, "compress:renamed");
                t.run(Some(point))
            }
            "restore" => {
                // A pass only trashes (the grace has not ended); then undo its drops.
                let (status, stderr) = t.run(None);
                assert!(status.success(), "{context}: {stderr}");
                t.check_whole(context, false);
                t.restore(Some(point))
            }
            "purge" => {
                // A pass trashes; the one past the grace purges, and dies doing it.
                let (status, stderr) = t.run(None);
                assert!(status.success(), "{context}: {stderr}");
                t.settle(Some(point))
            }
            _ => t.run(Some(point)),
        };
        assert_aborted(status, &stderr, point);
        t.check_whole(context, grace == Some(0) || point.starts_with("purge:"));

        let (status, stderr) = t.run(None);
        assert!(
            status.success(),
            "{context}: the pass after the crash failed ({status}): {stderr}"
        );
        let (status, stderr) = t.settle(None);
        assert!(
            status.success(),
            "{context}: the settling pass failed ({status}): {stderr}"
        );
        t.check_settled(context);
        if !point.starts_with("restore:") {
            // The pass that died was applying its plan: the next one recorded its actions as interrupted. (One that
            // died purging had recorded the purge first.)
            let db = retention::state::StateDb::open(&t.config.parent().unwrap().join("retention-state")).unwrap();
            let outcome = if point.starts_with("purge:") {
                "purging"
            } else {
                "interrupted"
            };
            let filter = retention::state::AuditFilter {
                outcome: Some(outcome.into()),
                ..Default::default()
            };
            let interrupted = db.audit_after(&filter, 0, 1000).unwrap();
            assert!(
                !interrupted.is_empty(),
                "{context}: the actions of the pass that died are not in the audit trail"
            );
        }
    }
}
