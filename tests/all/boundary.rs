//! The dataset's boundary, end to end with the real binary: no action reaches outside a dataset's root (a trash that
//! is a symlink, a restore through a parent turned symlink), the engine never manages its own files nor another
//! dataset's, a state database that disappeared stops the passes, a file held open by a writer is skipped, a `now`
//! ahead of the clock purges nothing early, and text output escapes what file names carry.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{files_under, plugin, plugin_dir, retention, run};
use serde_json::Value;

/// Guards open: these tests drop fresh files on purpose.
const OPEN_GUARDS: &str =
    "max_drop_bytes_fraction = 1.0\nmax_drop_segments_fraction = 1.0\nkeep_newest = 0\nmin_drop_age_secs = 0";

/// A temp dir with `logs/` and a config whose datasets are written by [`Setup::config`].
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(files: &[&str]) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let s = Setup { dir };
        for f in files {
            s.write(
                &format!("logs/{f}"),
                format!("{f}: a log line\n").repeat(100).as_bytes(),
            );
        }
        s
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// Writes `retention.toml`: `top` before the datasets (e.g. `plugin_dir`), then one `age_tiering` dataset per
    /// `(name, params, [dataset.directory] lines)`, guards open.
    fn config_with(&self, top: &str, datasets: &[(&str, &str, &str)]) -> PathBuf {
        let mut text = top.to_string();
        for (name, params, dir) in datasets {
            text.push_str(&format!(
                "[[dataset]]\nname = \"{name}\"\nplugin = \"age_tiering\"\nparams = {{ {params} }}\n\
                 [dataset.guard]\n{OPEN_GUARDS}\n[dataset.directory]\n{dir}\n"
            ));
        }
        let p = self.path().join("retention.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    fn config(&self, datasets: &[(&str, &str, &str)]) -> PathBuf {
        self.config_with(&format!("plugin_dir = \"{}\"\n", plugin_dir().display()), datasets)
    }

    /// `retention run --json ARGS`: exit code, the reports, stderr.
    fn run_json(&self, config: &Path, args: &[&str]) -> (i32, Value, String) {
        let (out, stdout, stderr) = run(retention().args(["run", "--json", "--config"]).arg(config).args(args));
        let reports = serde_json::from_str(&stdout).unwrap_or(Value::Null);
        (out.status.code().unwrap_or(-1), reports, stderr)
    }
}

/// A row of a report by segment name.
fn row<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["segments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no row {name}: {report:#}"))
}

#[test]
fn a_trash_that_is_a_symlink_never_takes_a_drop_out_of_the_root_nor_purges_the_directory_it_points_to() {
    let s = Setup::new(&["a.log", "b.log"]);
    // The "trash" is a link to a directory of someone else's files, one of which looks like an expired entry.
    let elsewhere = s.path().join("elsewhere");
    s.write("elsewhere/1-2/a.log", b"someone else's file");
    std::os::unix::fs::symlink(&elsewhere, s.path().join("logs/.retention-trash")).unwrap();
    let before = files_under(&elsewhere);
    let cfg = s.config(&[("logs", "drop_after_days = 0", "root = \"logs\"")]);
    let (code, reports, stderr) = s.run_json(&cfg, &[]);
    assert_eq!(code, 1, "{stderr}");
    let error = reports.to_string();
    assert!(
        error.contains("symlink") && error.contains(".retention-trash"),
        "{reports:#}"
    );
    assert_eq!(
        files_under(&elsewhere),
        before,
        "nothing outside the root was moved, written or purged"
    );
    for f in ["a.log", "b.log"] {
        assert!(s.path().join("logs").join(f).is_file(), "{f} stayed");
    }
}

#[test]
fn what_is_swapped_in_while_a_long_compression_runs_is_refused_a_symlinked_directory_and_a_fifo_alike() {
    // One pass, applied in order: a large file to compress (the window), a file to compress that becomes a FIFO, a
    // file to drop whose directory becomes a symlink to a twin outside the root (same size and mtime).
    let s = Setup::new(&[]);
    // 2 MiB at level 19: a few seconds of compression, the window the swaps are made in.
    let mut big = Vec::with_capacity(2 << 20);
    let mut x: u64 = 1;
    while big.len() < 2 << 20 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        big.extend_from_slice(format!("{} request {:x} took {} ms\n", big.len(), x >> 40, x % 997).as_bytes());
    }
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    let at = |p: &Path, t: std::time::SystemTime| {
        std::fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(t)
            .unwrap();
    };
    at(&s.write("logs/compress/big.log", &big), old);
    let fifo = s.write("logs/compress/fifo.log", b"to compress");
    at(&fifo, old + std::time::Duration::from_secs(1));
    let dropped = s.write("logs/drop/x.log", b"to drop");
    let outside = s.path().join("outside");
    let twin = s.write("outside/x.log", b"TO DROP");
    let t = old + std::time::Duration::from_secs(2);
    at(&dropped, t);
    at(&twin, t);
    let cfg = s.config_with(
        &format!("plugin_dir = \"{}\"\n", plugin_dir().display()),
        &[(
            "logs",
            "\"override.act.compress.compress_after_days\" = 0, \"override.act.drop.drop_after_days\" = 0",
            "root = \"logs\"\nlabels = '^(?P<act>[a-z]+)/'\ncompression_level = 19\ntrash_grace_secs = 0",
        )],
    );
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("[[dataset]]", "[[dataset]]\napply_parallelism = 1");
    std::fs::write(&cfg, text).unwrap();
    let out_path = s.path().join("report.json");
    let mut child = retention()
        .args(["run", "--json", "--config"])
        .arg(&cfg)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The large file's temporary appears: the pass is compressing it. Now swap.
    let compress_dir = s.path().join("logs/compress");
    let started = std::time::Instant::now();
    loop {
        let compressing = std::fs::read_dir(&compress_dir)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".retention-tmp"));
        if compressing {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the pass ended before the swap could be made"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "the compression never started"
        );
        std::thread::yield_now();
    }
    std::fs::remove_file(&fifo).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    std::fs::rename(s.path().join("logs/drop"), s.path().join("logs/drop-moved")).unwrap();
    std::os::unix::fs::symlink(&outside, s.path().join("logs/drop")).unwrap();
    assert!(
        child.try_wait().unwrap().is_none(),
        "the swap came too late: the large file was compressed already"
    );
    // A pass that blocked on the FIFO would never end: give it a deadline.
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if started.elapsed() > std::time::Duration::from_secs(300) {
            child.kill().unwrap();
            panic!("the pass blocked on the FIFO swapped in");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let reports: Value = serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap();
    assert_eq!(status.code(), Some(1), "two actions failed: {reports:#}");
    let r = &reports[0];
    assert_eq!(row(r, "compress/big.log")["outcome"], "done", "{r:#}");
    assert!(
        row(r, "compress/fifo.log")["error"]
            .as_str()
            .unwrap()
            .contains("not a regular file"),
        "{r:#}"
    );
    assert!(
        row(r, "drop/x.log")["error"].as_str().unwrap().contains("symlink"),
        "{r:#}"
    );
    assert_eq!(
        std::fs::read(&twin).unwrap(),
        b"TO DROP",
        "the file outside the root is untouched"
    );
    assert_eq!(files_under(&outside).len(), 1);
}

#[test]
fn a_restore_through_a_parent_that_became_a_symlink_lands_nothing_outside_the_root() {
    let s = Setup::new(&["api/a.log", "b.log"]);
    let cfg = s.config(&[("logs", "drop_after_days = 0", "root = \"logs\"\ninclude = [\"api/**\"]")]);
    let (code, reports, stderr) = s.run_json(&cfg, &[]);
    assert_eq!(code, 0, "{stderr}{reports:#}");
    assert_eq!(reports[0]["stats"]["trashed"]["segments"], 1, "{reports:#}");
    let outside = s.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::remove_dir(s.path().join("logs/api")).unwrap();
    std::os::unix::fs::symlink(&outside, s.path().join("logs/api")).unwrap();
    let (out, _, stderr) = run(retention()
        .args(["trash", "restore", "--dataset", "logs", "api/a.log", "--config"])
        .arg(&cfg));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("symlink"), "{stderr}");
    assert!(files_under(&outside).is_empty(), "nothing landed outside the root");
    let (out, stdout, _) = run(retention()
        .args(["trash", "list", "--dataset", "logs", "--json", "--config"])
        .arg(&cfg));
    assert!(out.status.success());
    assert!(stdout.contains("api/a.log"), "still restorable: {stdout}");
}

#[test]
fn the_state_directory_plugins_and_config_inside_a_root_are_never_managed() {
    // The root is the directory holding everything: config, state directory, plugin directory, logs.
    let s = Setup::new(&["a.log", "b.log"]);
    std::fs::create_dir(s.path().join("plugins")).unwrap();
    std::fs::copy(plugin("age_tiering"), s.path().join("plugins/age_tiering.wasm")).unwrap();
    let cfg = s.config_with(
        "plugin_dir = \"plugins\"\n",
        &[("all", "compress_after_days = 0", "root = \".\"")],
    );
    for pass in 0..2 {
        let (code, reports, stderr) = s.run_json(&cfg, &[]);
        assert_eq!(code, 0, "pass {pass}: {stderr}{reports:#}");
        let names: Vec<&str> = reports[0]["segments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        for n in &names {
            assert!(
                !n.starts_with("retention-state") && !n.starts_with("plugins") && *n != "retention.toml",
                "pass {pass} saw the engine's own {n}"
            );
        }
    }
    assert!(s.path().join("logs/a.log.zst").is_file(), "the data was compressed");
    assert!(s.path().join("retention-state/state.sqlite3").is_file());
    assert!(s.path().join("plugins/age_tiering.wasm").is_file());
    assert!(s.path().join("retention.toml").is_file());
    assert!(
        !files_under(&s.path().join("retention-state"))
            .keys()
            .any(|k| k.ends_with(".zst")),
        "nothing of the state directory was compressed"
    );
}

#[test]
fn a_state_database_that_disappeared_makes_the_next_pass_refuse_to_run() {
    let s = Setup::new(&["a.log", "b.log"]);
    // A first pass applies something (a hold set through the API would bind the dataset the same way).
    let cfg = s.config(&[(
        "logs",
        "compress_after_days = 0, drop_after_days = \"never\"",
        "root = \"logs\"",
    )]);
    let (code, _, stderr) = s.run_json(&cfg, &[]);
    assert_eq!(code, 0, "{stderr}");
    // The database (and with it every legal hold) is lost; the next run would create an empty one.
    std::fs::remove_dir_all(s.path().join("retention-state")).unwrap();
    let cfg = s.config(&[("logs", "drop_after_days = 0", "root = \"logs\"")]);
    let (code, reports, stderr) = s.run_json(&cfg, &[]);
    assert_eq!(code, 1, "{stderr}");
    let r = &reports[0];
    assert_eq!(r["status"], "failed", "{r:#}");
    let e = r["error"].as_str().unwrap();
    assert!(
        e.contains("was last passed over with state database") && e.contains("no pass runs"),
        "{e}"
    );
    assert!(s.path().join("logs/a.log.zst").is_file() && s.path().join("logs/b.log.zst").is_file());
    // The documented way to accept the new database: delete the marker the error names.
    let marker = e.split("delete ").nth(1).unwrap().split(" to manage").next().unwrap();
    std::fs::remove_file(marker).unwrap();
    let (code, reports, stderr) = s.run_json(&cfg, &[]);
    assert_eq!(code, 0, "{stderr}{reports:#}");
    assert_eq!(reports[0]["stats"]["dropped"]["segments"], 2);
}

#[test]
fn nested_roots_never_see_each_others_files_or_trash() {
    let s = Setup::new(&["outer.log", "inner/x.log", "inner/y.log"]);
    let cfg = s.config(&[
        (
            "inner",
            "drop_after_days = 0",
            "root = \"logs/inner\"\ninclude = [\"x.log\"]",
        ),
        (
            "outer",
            "compress_after_days = 0",
            "root = \"logs\"\ntrash_grace_secs = 0",
        ),
    ]);
    let (code, reports, stderr) = s.run_json(&cfg, &["--dataset", "inner"]);
    assert_eq!(code, 0, "{stderr}{reports:#}");
    assert_eq!(reports[0]["stats"]["trashed"]["segments"], 1);
    let (code, reports, stderr) = s.run_json(&cfg, &["--dataset", "outer"]);
    assert_eq!(code, 0, "{stderr}{reports:#}");
    let outer = &reports[0];
    assert_eq!(
        outer["segments"].as_array().unwrap().len(),
        1,
        "only its own file: {outer:#}"
    );
    assert_eq!(row(outer, "outer.log")["action"], "compress");
    assert!(
        s.path().join("logs/inner/y.log").is_file(),
        "the inner root's files are not the outer's"
    );
    let trash = files_under(&s.path().join("logs/inner/.retention-trash"));
    assert!(
        trash.keys().any(|k| k.ends_with("/x.log")),
        "the inner trash is intact: {:?}",
        trash.keys()
    );
}

#[test]
fn two_datasets_sharing_an_archive_location_are_refused_before_anything_runs() {
    let s = Setup::new(&["a/x.log", "b/y.log"]);
    std::fs::create_dir(s.path().join("archive")).unwrap();
    let archive = format!("archive_url = \"file://{}\"", s.path().join("archive").display());
    let cfg = s.config(&[
        ("a", "archive_after_days = 0", &format!("root = \"logs/a\"\n{archive}")),
        ("b", "archive_after_days = 0", &format!("root = \"logs/b\"\n{archive}")),
    ]);
    let (code, _, stderr) = s.run_json(&cfg, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("dataset[1].directory.archive_url") && stderr.contains("overlaps the archive of dataset \"a\""),
        "{stderr}"
    );
    assert!(files_under(&s.path().join("archive")).is_empty());
}

#[test]
fn a_file_named_like_a_temporary_that_the_engine_did_not_write_is_left_alone_and_reported() {
    let s = Setup::new(&["a.log"]);
    let lookalike = s.write("logs/.b.log.zst.retention-tmp", b"a complete file of the user's");
    let cfg = s.config(&[("logs", "compress_after_days = 0", "root = \"logs\"")]);
    let (out, stdout, stderr) = run(retention().args(["run", "--config"]).arg(&cfg));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains(".b.log.zst.retention-tmp") && stdout.contains("left alone"),
        "{stdout}"
    );
    assert_eq!(std::fs::read(&lookalike).unwrap(), b"a complete file of the user's");
    assert!(s.path().join("logs/a.log.zst").is_file());
}

#[test]
fn a_log_a_quiet_writer_holds_open_is_skipped_and_kept_until_the_writer_is_gone() {
    let s = Setup::new(&["daemon.log", "rotated.log"]);
    let log = s.path().join("logs/daemon.log");
    let mut writer = Command::new("sleep")
        .arg("600")
        .stdout(std::fs::File::options().append(true).open(&log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let before = std::fs::read(&log).unwrap();
    let cfg = s.config(&[("logs", "compress_after_days = 0", "root = \"logs\"")]);
    let (code, reports, stderr) = s.run_json(&cfg, &[]);
    writer.kill().unwrap();
    writer.wait().unwrap();
    assert_eq!(code, 0, "a skipped action is no failure: {stderr}{reports:#}");
    let r = &reports[0];
    let daemon = row(r, "daemon.log");
    assert_eq!(daemon["outcome"], "skipped", "{r:#}");
    assert!(
        daemon["error"]
            .as_str()
            .unwrap()
            .contains("open for writing by another process")
    );
    assert_eq!(r["stats"]["skipped"], 1);
    assert_eq!(r["stats"]["failed"], 0);
    assert_eq!(row(r, "rotated.log")["outcome"], "done");
    assert_eq!(std::fs::read(&log).unwrap(), before, "the held file is untouched");
    assert!(!s.path().join("logs/daemon.log.zst").exists());
    // The writer gone, the next pass compresses it.
    let (code, reports, stderr) = s.run_json(&cfg, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(row(&reports[0], "daemon.log")["outcome"], "done");
    assert!(s.path().join("logs/daemon.log.zst").is_file());
}

#[test]
fn a_now_far_ahead_of_the_clock_purges_nothing_early_unless_asked_to() {
    let s = Setup::new(&["a.log", "b.log"]);
    let cfg = s.config(&[("logs", "drop_after_days = 0", "root = \"logs\"\ninclude = [\"a.log\"]")]);
    let (code, reports, stderr) = s.run_json(&cfg, &[]);
    assert_eq!(code, 0, "{stderr}{reports:#}");
    assert_eq!(reports[0]["stats"]["trashed"]["segments"], 1);
    // Ten days ahead: past the day of grace by the pass's now, not by the clock.
    let ahead = (chrono::Utc::now() + chrono::Duration::days(10)).to_rfc3339();
    let cfg = s.config(&[(
        "logs",
        "drop_after_days = \"never\"",
        "root = \"logs\"\ninclude = [\"a.log\"]",
    )]);
    let (code, reports, stderr) = s.run_json(&cfg, &["--now", &ahead]);
    assert_eq!(code, 0, "{stderr}{reports:#}");
    let r = &reports[0];
    assert_eq!(r["stats"]["purged"]["segments"], 0, "{r:#}");
    let notes = r["notes"].to_string();
    assert!(
        notes.contains("ahead of the clock") && notes.contains("--purge-by-now"),
        "{notes}"
    );
    let (out, stdout, _) = run(retention()
        .args(["trash", "list", "--dataset", "logs", "--json", "--config"])
        .arg(&cfg));
    assert!(
        out.status.success() && stdout.contains("a.log"),
        "still restorable: {stdout}"
    );
    // Asked explicitly, the pass purges by its now.
    let (code, reports, stderr) = s.run_json(&cfg, &["--now", &ahead, "--purge-by-now"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(reports[0]["stats"]["purged"]["segments"], 1, "{:#}", reports[0]);
}

#[test]
fn a_zst_declaring_a_terabyte_beside_a_small_hot_file_is_a_conflict_found_from_its_header() {
    let s = Setup::new(&["a.log"]);
    // The first 64 MiB of a frame that declares 1 TiB of content: decompressing it all (as scans did, every pass)
    // would take the better part of an hour; its header alone says it differs from a 2 KiB hot file.
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    enc.set_pledged_src_size(Some(1 << 40)).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..64 {
        std::io::Write::write_all(&mut enc, &zeros).unwrap();
    }
    std::io::Write::flush(&mut enc).unwrap();
    s.write("logs/a.log.zst", enc.get_ref());
    let cfg = s.config(&[("logs", "compress_after_days = 0", "root = \"logs\"")]);
    let (out, stdout, stderr) = run(retention().args(["run", "--dry-run", "--config"]).arg(&cfg));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("conflict: a.log") && stdout.contains("differs"),
        "{stdout}"
    );
}

#[test]
fn control_characters_in_file_names_are_escaped_in_text_reports() {
    let s = Setup::new(&["plain.log"]);
    s.write("logs/evil\u{1b}[2J\nFAKE summary line.log", b"x");
    let cfg = s.config(&[("logs", "compress_after_days = 0", "root = \"logs\"")]);
    let (out, stdout, stderr) = run(retention().args(["run", "--dry-run", "--config"]).arg(&cfg));
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stdout.contains('\u{1b}'),
        "a raw escape reached the terminal: {stdout:?}"
    );
    assert!(
        !stdout.lines().any(|l| l.starts_with("FAKE")),
        "a forged line: {stdout}"
    );
    assert!(stdout.contains("evil\\u{1b}[2J\\u{a}FAKE summary line.log"), "{stdout}");
    // JSON keeps the name as it is.
    let (_, reports, _) = s.run_json(&cfg, &["--dry-run"]);
    assert!(reports.to_string().contains("evil\\u001b[2J\\nFAKE"), "{reports}");
}

#[test]
fn an_s3_archive_with_a_plain_http_endpoint_or_without_credentials_says_what_to_set() {
    let s = Setup::new(&["a.log"]);
    let cfg = s.config(&[(
        "logs",
        "archive_after_days = 0",
        "root = \"logs\"\narchive_url = \"s3://bucket/logs\"",
    )]);
    let (out, _, stderr) = run(retention()
        .args(["run", "--dry-run", "--config"])
        .arg(&cfg)
        .env("AWS_ENDPOINT", "http://127.0.0.1:1")
        .env_remove("AWS_ALLOW_HTTP")
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "y"));
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("AWS_ALLOW_HTTP=true") && stderr.contains("http://127.0.0.1:1"),
        "{stderr}"
    );
    // No credentials at all: the error says which variables to set, whatever the metadata service answered.
    let (out, _, stderr) = run(retention()
        .args(["run", "--dry-run", "--config"])
        .arg(&cfg)
        .env("AWS_ENDPOINT", "http://127.0.0.1:1")
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_METADATA_ENDPOINT", "http://127.0.0.1:1")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
        .env_remove("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        .env_remove("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        .env_remove("AWS_PROFILE"));
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no AWS credentials") && stderr.contains("AWS_ACCESS_KEY_ID"),
        "{stderr}"
    );
}
