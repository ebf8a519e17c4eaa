//! The example plugins of `guest-plugins/examples/`, run through the real binary with `retention plugin test`: every
//! decision and reason is asserted exactly, on fixtures in `tests/fixtures/` (listed out of order on purpose: the host
//! sorts segments oldest first for the plugin and answers in input order).

use crate::common;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use common::{plugin, repo_root, retention, run};
use serde_json::Value;

/// One decision as `--json` prints it: segment name, action, reason.
type Row = (String, String, Option<String>);

fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures").join(name)
}

/// Runs `retention plugin test` and returns its JSON output; panics with stderr if it fails.
fn plugin_test_json(stem: &str, segments: &Path, params: &[(&str, &str)], now: &str) -> Value {
    let mut cmd = retention();
    cmd.args(["plugin", "test"])
        .arg(plugin(stem))
        .arg("--segments")
        .arg(segments)
        .args(["--now", now, "--json"]);
    for (k, v) in params {
        cmd.arg("--param").arg(format!("{k}={v}"));
    }
    let (out, stdout, stderr) = run(&mut cmd);
    assert!(out.status.success(), "plugin test failed ({}):\n{stderr}", out.status);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("invalid JSON ({e}):\n{stdout}"))
}

/// The decisions of a run, in input order.
fn decide(stem: &str, fixture_name: &str, params: &[(&str, &str)], now: &str) -> Vec<Row> {
    rows(&plugin_test_json(stem, &fixture(fixture_name), params, now))
}

fn rows(json: &Value) -> Vec<Row> {
    json["decisions"]
        .as_array()
        .expect("decisions array")
        .iter()
        .map(|d| {
            (
                d["name"].as_str().expect("name").to_string(),
                d["action"].as_str().expect("action").to_string(),
                d["reason"].as_str().map(str::to_string),
            )
        })
        .collect()
}

/// Runs `retention plugin test` expecting the pass to fail; returns stderr.
fn plugin_test_error(stem: &str, fixture_name: &str, params: &[(&str, &str)]) -> String {
    let mut cmd = retention();
    cmd.args(["plugin", "test"])
        .arg(plugin(stem))
        .arg("--segments")
        .arg(fixture(fixture_name))
        .args(["--now", "2026-01-10T00:00:00Z"]);
    for (k, v) in params {
        cmd.arg("--param").arg(format!("{k}={v}"));
    }
    let (out, stdout, stderr) = run(&mut cmd);
    assert!(!out.status.success(), "expected a failure, got:\n{stdout}");
    stderr
}

fn row(name: &str, action: &str, reason: Option<&str>) -> Row {
    (name.to_string(), action.to_string(), reason.map(str::to_string))
}

fn keep(name: &str) -> Row {
    row(name, "keep", None)
}

// ---------------------------------------------------------------------------------------------------------------------
// age-tiering

const AGE_NOW: &str = "2026-01-10T00:00:00Z";
const AGE_DEFAULTS: [(&str, &str); 3] = [
    ("compress_after_days", "3"),
    ("archive_after_days", "30"),
    ("drop_after_days", "90"),
];

#[test]
fn age_tiering_compresses_archives_and_drops_by_age_within_the_tier_table() {
    let got = decide("age_tiering", "age_tiering.json", &AGE_DEFAULTS, AGE_NOW);
    assert_eq!(
        got,
        vec![
            keep("api/info-2026-01-09.log"),
            row(
                "api/info-2026-01-07.log",
                "compress",
                Some("age 3d >= compress_after_days 3")
            ),
            // Already compressed, not old enough to archive: nothing to do.
            keep("api/info-2026-01-05.log"),
            row(
                "api/info-2025-12-01.log",
                "archive",
                Some("age 40d >= archive_after_days 30")
            ),
            // Already archived, not old enough to drop.
            keep("api/info-2025-11-30.log"),
            row(
                "api/info-2025-10-01.log",
                "drop",
                Some("age 101d >= drop_after_days 90")
            ),
            row(
                "api/debug-2026-01-02.log",
                "compress",
                Some("age 8d >= compress_after_days 3")
            ),
            row(
                "audit/audit-2025-01-01.log",
                "drop",
                Some("age 374d >= drop_after_days 90")
            ),
            row(
                "db/db.internal-2025-12-20.log",
                "compress",
                Some("age 21d >= compress_after_days 3")
            ),
            // From the future: too young for any rule.
            keep("api/info-2026-01-11.log"),
            // 3.5 days old: ages are whole days, rounded down.
            row(
                "web/unlabelled.log",
                "compress",
                Some("age 3d >= compress_after_days 3")
            ),
        ]
    );
}

#[test]
fn age_tiering_overrides_replace_the_default_threshold_for_one_label_value() {
    let mut params = AGE_DEFAULTS.to_vec();
    params.extend([
        ("override.level.debug.drop_after_days", "7"),
        ("override.level.audit.drop_after_days", "never"),
        // Label values may contain dots: the label is the first part, the threshold the last.
        ("override.host.db.internal.drop_after_days", "20"),
    ]);
    let got = decide("age_tiering", "age_tiering.json", &params, AGE_NOW);
    let changed: Vec<&Row> = got
        .iter()
        .filter(|r| r.0.contains("debug") || r.0.contains("audit") || r.0.contains("db.internal"))
        .collect();
    assert_eq!(
        changed,
        vec![
            &row(
                "api/debug-2026-01-02.log",
                "drop",
                Some("age 8d >= drop_after_days 7 (level=debug)")
            ),
            // Never dropped, but still archived by the default archive threshold.
            &row(
                "audit/audit-2025-01-01.log",
                "archive",
                Some("age 374d >= archive_after_days 30")
            ),
            &row(
                "db/db.internal-2025-12-20.log",
                "drop",
                Some("age 21d >= drop_after_days 20 (host=db.internal)")
            ),
        ]
    );
    // Segments without a matching label decide exactly as without overrides.
    let defaults = decide("age_tiering", "age_tiering.json", &AGE_DEFAULTS, AGE_NOW);
    for (a, b) in got.iter().zip(&defaults) {
        if !changed.contains(&a) {
            assert_eq!(a, b);
        }
    }
}

#[test]
fn age_tiering_lets_the_longest_retention_win_when_several_overrides_match() {
    let got = decide(
        "age_tiering",
        "age_tiering.json",
        &[
            ("drop_after_days", "90"),
            ("override.service.audit.drop_after_days", "300"),
            ("override.level.audit.drop_after_days", "100"),
        ],
        AGE_NOW,
    );
    let audit = got.iter().find(|r| r.0.starts_with("audit/")).unwrap();
    assert_eq!(
        audit,
        &row(
            "audit/audit-2025-01-01.log",
            "drop",
            Some("age 374d >= drop_after_days 300 (service=audit)")
        )
    );

    let got = decide(
        "age_tiering",
        "age_tiering.json",
        &[
            ("drop_after_days", "90"),
            ("override.service.audit.drop_after_days", "300"),
            ("override.level.audit.drop_after_days", "never"),
        ],
        AGE_NOW,
    );
    let audit = got.iter().find(|r| r.0.starts_with("audit/")).unwrap();
    assert_eq!(audit, &keep("audit/audit-2025-01-01.log"));
}

#[test]
fn age_tiering_without_thresholds_keeps_everything_without_reasons() {
    let got = decide("age_tiering", "age_tiering.json", &[], AGE_NOW);
    assert_eq!(got.len(), 11);
    assert!(got.iter().all(|r| r.1 == "keep" && r.2.is_none()), "{got:?}");
}

#[test]
fn age_tiering_rejects_a_malformed_override_key_with_the_expected_syntax() {
    let err = plugin_test_error(
        "age_tiering",
        "age_tiering.json",
        &[("override.level.drop_after_days", "7")],
    );
    assert!(
        err.contains("parameter `override.level.drop_after_days`: expected override.<label>.<value>.<threshold>"),
        "{err}"
    );
}

#[test]
fn age_tiering_rejects_a_misspelt_parameter_instead_of_ignoring_it() {
    let err = plugin_test_error("age_tiering", "age_tiering.json", &[("drop_after_day", "7")]);
    assert!(err.contains("unknown parameter `drop_after_day`"), "{err}");
}

#[test]
fn age_tiering_rejects_a_threshold_that_is_not_a_number_of_days() {
    let err = plugin_test_error("age_tiering", "age_tiering.json", &[("drop_after_days", "7d")]);
    assert!(
        err.contains("parameter `drop_after_days` = \"7d\": expected a whole number of days or `never`"),
        "{err}"
    );
}

#[test]
fn age_tiering_reports_its_name_version_and_description() {
    let json = plugin_test_json("age_tiering", &fixture("age_tiering.json"), &[], AGE_NOW);
    assert_eq!(json["plugin"]["name"], "age-tiering");
    assert_eq!(json["plugin"]["version"], "0.1.0");
    assert!(
        json["plugin"]["description"]
            .as_str()
            .unwrap()
            .contains("per-label overrides")
    );
}

// ---------------------------------------------------------------------------------------------------------------------
// gfs

const GFS_NOW: &str = "2026-01-10T00:00:00Z";

#[test]
fn gfs_keeps_the_newest_segment_of_each_of_the_last_days_weeks_and_months() {
    let got = decide(
        "gfs",
        "gfs.json",
        &[("keep_daily", "3"), ("keep_weekly", "2"), ("keep_monthly", "2")],
        GFS_NOW,
    );
    let drop = Some("not kept by keep_daily 3, keep_weekly 2, keep_monthly 2");
    assert_eq!(
        got,
        vec![
            row("api/2025-11-15T10.log", "drop", drop),
            row("api/2025-12-20T10.log", "drop", drop),
            // The newest of December, although its ISO week (2026-W01) has a newer segment.
            row("api/2025-12-31T23.log", "keep", Some("keep_monthly 2025-12")),
            row("api/2026-01-03T08.log", "drop", drop),
            row("api/2026-01-03T20.log", "keep", Some("keep_weekly 2026-W01")),
            row("api/2026-01-05T08.log", "drop", drop),
            row("api/2026-01-06T08.log", "drop", drop),
            // 2026-01-07 has no segment: the third day kept is 2026-01-06.
            row("api/2026-01-06T18.log", "keep", Some("keep_daily 2026-01-06")),
            row("api/2026-01-08T09.log", "drop", drop),
            row("api/2026-01-08T21.log", "keep", Some("keep_daily 2026-01-08")),
            row(
                "api/2026-01-09T12.log",
                "keep",
                Some("keep_daily 2026-01-09, keep_weekly 2026-W02, keep_monthly 2026-01")
            ),
        ]
    );
}

#[test]
fn gfs_keep_last_keeps_the_newest_segments_whatever_their_day() {
    let got = decide("gfs", "gfs.json", &[("keep_last", "3")], GFS_NOW);
    let kept: Vec<&Row> = got.iter().filter(|r| r.1 == "keep").collect();
    assert_eq!(
        kept,
        vec![
            &row("api/2026-01-08T09.log", "keep", Some("keep_last 3")),
            &row("api/2026-01-08T21.log", "keep", Some("keep_last 3")),
            &row("api/2026-01-09T12.log", "keep", Some("keep_last 3")),
        ]
    );
    assert!(
        got.iter()
            .filter(|r| r.1 == "drop")
            .all(|r| r.2.as_deref() == Some("not kept by keep_last 3"))
    );
}

#[test]
fn gfs_with_group_by_applies_the_rules_to_each_label_value_separately() {
    let grouped = decide(
        "gfs",
        "gfs_groups.json",
        &[("keep_daily", "1"), ("group_by", "service")],
        GFS_NOW,
    );
    let drop = Some("not kept by keep_daily 1 (per service)");
    assert_eq!(
        grouped,
        vec![
            row("api/2026-01-08.log", "drop", drop),
            row("api/2026-01-09.log", "keep", Some("keep_daily 2026-01-09")),
            row("web/2026-01-08.log", "drop", drop),
            row("web/2026-01-09.log", "keep", Some("keep_daily 2026-01-09")),
            // Segments without the label form a group of their own.
            row("other/x.log", "drop", drop),
            row("other/y.log", "keep", Some("keep_daily 2026-01-07")),
        ]
    );
    let ungrouped = decide("gfs", "gfs_groups.json", &[("keep_daily", "1")], GFS_NOW);
    let kept: Vec<&str> = ungrouped
        .iter()
        .filter(|r| r.1 == "keep")
        .map(|r| r.0.as_str())
        .collect();
    assert_eq!(kept, ["api/2026-01-09.log"]);
}

#[test]
fn gfs_without_any_keep_rule_refuses_to_drop_everything() {
    let err = plugin_test_error("gfs", "gfs.json", &[("keep_daily", "0")]);
    assert!(err.contains("no keep rule set"), "{err}");
}

/// Hourly segments from `start`, `n` of them.
fn hourly(start: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    (0..n).map(|h| start + Duration::hours(h as i64)).collect()
}

/// The period of a time under one GFS rule, as a comparable pair.
type PeriodOf = fn(&DateTime<Utc>) -> (i32, u32);

/// restic's `forget` semantics, computed independently of the plugin: walking newest first, a segment is kept by a
/// rule when its period differs from the last period that rule kept and the rule has budget left.
fn expected_gfs(times: &[DateTime<Utc>], daily: usize, weekly: usize, monthly: usize) -> Vec<bool> {
    let mut kept = vec![false; times.len()];
    let rules: [(usize, PeriodOf); 3] = [
        (daily, |t| (t.year(), t.ordinal())),
        (weekly, |t| (t.iso_week().year(), t.iso_week().week())),
        (monthly, |t| (t.year(), t.month())),
    ];
    for (budget, period) in rules {
        let (mut left, mut last) = (budget, None);
        for (i, t) in times.iter().enumerate().rev() {
            let p = period(t);
            if left > 0 && last != Some(p) {
                kept[i] = true;
                left -= 1;
                last = Some(p);
            }
        }
    }
    kept
}

#[test]
fn gfs_decides_like_restic_across_many_batches() {
    // 10,000 hourly segments: more than two of the host's default batches of 4,096, so the windows kept during
    // `observe` must carry over batch boundaries.
    let start = Utc.with_ymd_and_hms(2024, 11, 3, 5, 0, 0).unwrap();
    let times = hourly(start, 10_000);
    let segments: Vec<Value> = times
        .iter()
        .enumerate()
        .map(|(i, t)| serde_json::json!({"name": format!("h/{i:05}.log"), "time": t.to_rfc3339(), "bytes": 1}))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hourly.json");
    std::fs::write(&path, serde_json::to_string(&segments).unwrap()).unwrap();

    let json = plugin_test_json(
        "gfs",
        &path,
        &[("keep_daily", "10"), ("keep_weekly", "6"), ("keep_monthly", "14")],
        "2026-01-10T00:00:00Z",
    );
    let got: Vec<bool> = rows(&json).iter().map(|r| r.1 == "keep").collect();
    let want = expected_gfs(&times, 10, 6, 14);
    assert_eq!(got.iter().filter(|k| **k).count(), want.iter().filter(|k| **k).count());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "segment {i} at {}", times[i]);
    }
}

// ---------------------------------------------------------------------------------------------------------------------
// size-budget

const SIZE_NOW: &str = "2026-01-10T00:00:00Z";

#[test]
fn size_budget_drops_the_oldest_local_segments_until_the_dataset_fits() {
    let got = decide("size_budget", "size_budget.json", &[("max_bytes", "250")], SIZE_NOW);
    let reason = Some("hot+compressed 450 B > max_bytes 250 B: dropping oldest first");
    assert_eq!(
        got,
        vec![
            keep("d.log"),
            row("a.log", "drop", reason),
            // Archived bytes do not count toward the default (local) budget, so the oldest segment stays.
            keep("z-archived.log"),
            row("c.log", "drop", reason),
            keep("e.log"),
            row("b.log", "drop", reason),
        ]
    );
}

#[test]
fn size_budget_in_archive_mode_archives_instead_of_dropping() {
    let got = decide(
        "size_budget",
        "size_budget.json",
        &[("max_bytes", "250"), ("mode", "archive")],
        SIZE_NOW,
    );
    let reason = Some("hot+compressed 450 B > max_bytes 250 B: archiving oldest first");
    assert_eq!(
        got,
        vec![
            keep("d.log"),
            row("a.log", "archive", reason),
            keep("z-archived.log"),
            row("c.log", "archive", reason),
            keep("e.log"),
            row("b.log", "archive", reason),
        ]
    );
}

#[test]
fn size_budget_counting_all_tiers_drops_old_archived_segments_first() {
    let got = decide(
        "size_budget",
        "size_budget.json",
        &[("max_bytes", "1250"), ("count", "all")],
        SIZE_NOW,
    );
    assert_eq!(
        got,
        vec![
            keep("d.log"),
            keep("a.log"),
            row(
                "z-archived.log",
                "drop",
                Some("all tiers 1.42 KiB > max_bytes 1.22 KiB: dropping oldest first")
            ),
            keep("c.log"),
            keep("e.log"),
            keep("b.log"),
        ]
    );
}

#[test]
fn size_budget_accepts_binary_units_and_keeps_a_dataset_within_budget() {
    let got = decide("size_budget", "size_budget.json", &[("max_bytes", "1KiB")], SIZE_NOW);
    assert!(got.iter().all(|r| r.1 == "keep" && r.2.is_none()), "{got:?}");
}

#[test]
fn size_budget_rejects_an_ambiguous_unit() {
    let err = plugin_test_error("size_budget", "size_budget.json", &[("max_bytes", "10G")]);
    assert!(
        err.contains("ambiguous unit \"G\": write GB (powers of 1000) or GiB (powers of 1024)"),
        "{err}"
    );
}

#[test]
fn size_budget_requires_max_bytes() {
    let err = plugin_test_error("size_budget", "size_budget.json", &[]);
    assert!(err.contains("missing required parameter `max_bytes`"), "{err}");
}

#[test]
fn size_budget_refuses_to_archive_against_a_budget_over_all_tiers() {
    let err = plugin_test_error(
        "size_budget",
        "size_budget.json",
        &[("max_bytes", "1KiB"), ("mode", "archive"), ("count", "all")],
    );
    assert!(err.contains("`mode = archive` cannot work with `count = all`"), "{err}");
}

// ---------------------------------------------------------------------------------------------------------------------
// bench-policy (the host benchmark's plugin: its native twin in host/benches/boundary.rs must decide the same)

const BENCH_NOW: &str = "2026-01-31T00:00:00Z";

fn bench_expected(read_names: bool) -> Vec<Row> {
    vec![
        row("svc/debug-31d.log", "drop", Some("debug older than 30 days")),
        // Exactly 30 days is not older than 30 days.
        row("svc/debug-30d.log", "compress", Some("hot and older than 1 day")),
        row("svc/big-8d.log", "archive", Some("large and older than 7 days")),
        keep("svc/big-archived-8d.log"),
        keep("svc/audit-2d.log"),
        row("svc/api-2d.log", "compress", Some("hot and older than 1 day")),
        row("svc/unlabelled-2d.log", "compress", Some("hot and older than 1 day")),
        keep("svc/fresh.log"),
        if read_names {
            row("tmp/scratch.tmp", "drop", Some("temporary file"))
        } else {
            keep("tmp/scratch.tmp")
        },
    ]
}

#[test]
fn bench_policy_decides_on_age_size_tier_and_labels() {
    let got = decide("bench_policy", "bench_policy.json", &[], BENCH_NOW);
    assert_eq!(got, bench_expected(false));
}

#[test]
fn bench_policy_reading_names_also_drops_temporary_files() {
    let got = decide(
        "bench_policy",
        "bench_policy.json",
        &[("read_names", "true")],
        BENCH_NOW,
    );
    assert_eq!(got, bench_expected(true));
}
