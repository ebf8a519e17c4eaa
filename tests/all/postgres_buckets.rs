//! A plain table as a dataset, through the real binary against a real server: a segment per day and tenant with
//! exact row counts; a dry run changes nothing; a pass moves the old buckets' rows into trash tables in bounded
//! batches and a restore moves them back with identical rows (identity values included); a plugin keeps one
//! tenant longer; with no grace period the rows are deleted; archive without an archive destination is refused whole; the role's missing
//! privileges are named; and at every crash point of a bucket's drop every row stays in exactly one place.

use crate::common;

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use common::postgres::{DAYS, Plain, ok_pass, pass, trash, trash_names};

const NOW: &str = "2026-01-12T00:00:00Z";
const LATER: &str = "2026-01-14T00:00:00Z";
const DROP: &str = "drop_after_days = 7";
/// Days 1 to 4 are 7 days old or more on [`NOW`].
const DROPPED_DAYS: u32 = 4;
const TENANTS: u32 = 3;

/// The trash's names, sorted.
fn trash_sorted(config: &Path) -> Vec<String> {
    let mut names = trash_names(config);
    names.sort();
    names
}

fn bucket(d: u32, tenant: u32) -> String {
    format!("2026-01-{d:02}T00:00Z/tenant-{tenant}")
}

/// The table's buckets expected when the buckets of `gone` (day, tenant) have left it.
fn expected(gone: &[(u32, u32)]) -> BTreeMap<(String, String), i64> {
    let mut want = BTreeMap::new();
    for d in 1..=DAYS {
        for t in 0..TENANTS {
            if !gone.contains(&(d, t)) {
                want.insert((format!("2026-01-{d:02}"), format!("tenant-{t}")), 33);
            }
        }
    }
    want.insert(("none".into(), "tenant-0".into()), 1);
    want.insert(("none".into(), "(null)".into()), 1);
    want
}

fn old(tenants: &[u32]) -> Vec<(u32, u32)> {
    (1..=DROPPED_DAYS)
        .flat_map(|d| tenants.iter().map(move |&t| (d, t)))
        .collect()
}

/// Every row is in exactly one place (the table or a trash table).
fn one_place_each(p: &Plain) -> BTreeMap<String, String> {
    let census = p.db.census();
    assert_eq!(census.len(), DAYS as usize * 99 + 2, "every row still exists");
    census
        .into_iter()
        .map(|(row, places)| {
            assert_eq!(places.len(), 1, "{row} is in {places:?}");
            (row, places.into_iter().next().unwrap())
        })
        .collect()
}

#[test]
fn a_plain_table_is_planned_bucket_by_bucket_and_tenant_with_exact_rows_and_a_dry_run_changes_nothing() {
    let p = Plain::new();
    let before = p.checksum();
    let report = ok_pass(&p.config(DROP, 7, ""), NOW, &["--dry-run"]);
    assert_eq!(p.checksum(), before, "a dry run changes nothing");
    let segs = report["segments"].as_array().unwrap();
    let names: Vec<&str> = segs.iter().map(|s| s["name"].as_str().unwrap()).collect();
    let want: Vec<String> = (1..=DAYS)
        .flat_map(|d| (0..TENANTS).map(move |t| bucket(d, t)))
        .collect();
    assert_eq!(names, want, "oldest first, a segment per day and tenant");
    assert!(segs.iter().all(|s| s["bytes"].as_u64().unwrap() > 0), "{report:#}");
    // Rows are exact: 33 a bucket.
    assert_eq!(
        report["stats"]["dropped"]["rows"],
        33 * DROPPED_DAYS * TENANTS,
        "{report:#}"
    );
    assert_eq!(
        report["stats"]["kept"]["rows"],
        33 * (DAYS - DROPPED_DAYS) * TENANTS,
        "{report:#}"
    );
    let dropped: Vec<&str> = segs
        .iter()
        .filter(|s| s["action"] == "drop")
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(dropped, &want[..(DROPPED_DAYS * TENANTS) as usize], "{report:#}");
    let skipped = report["skipped"].to_string();
    assert!(skipped.contains("2 rows with a NULL ts"), "{report:#}");
}

#[test]
fn a_pass_moves_old_buckets_into_the_trash_in_batches_and_a_restore_moves_their_rows_back_exactly() {
    let p = Plain::new();
    let original = p.checksum();
    // tenant-0 is kept by the plugin for ever; the others' old buckets are dropped, 7 rows a transaction.
    let cfg = p.config(
        &format!("{DROP}, \"override.tenant.tenant-0.drop_after_days\" = \"never\""),
        7,
        "",
    );
    let report = ok_pass(&cfg, NOW, &[]);
    let gone = old(&[1, 2]);
    assert_eq!(report["stats"]["dropped"]["segments"], gone.len(), "{report:#}");
    assert_eq!(p.buckets(), expected(&gone));
    // 33 rows a bucket in batches of 7: each trash table's rows were written by 5 transactions (their xmin).
    let writers: Vec<(i64, i64)> = p.db.sql(async |c| {
        let tables = c
            .query(
                "SELECT format('%I.%I', n.nspname, k.relname) FROM pg_class k JOIN pg_namespace n \
                 ON n.oid = k.relnamespace WHERE starts_with(n.nspname, '_retention_trash_') AND k.relkind = 'r'",
                &[],
            )
            .await
            .unwrap();
        let mut out = Vec::new();
        for t in tables {
            let q = format!(
                "SELECT count(*), count(DISTINCT xmin::text) FROM {}",
                t.get::<_, String>(0)
            );
            let r = c.query_one(&q, &[]).await.unwrap();
            out.push((r.get(0), r.get(1)));
        }
        out
    });
    assert_eq!(
        writers,
        vec![(33, 5); gone.len()],
        "batches of 7 rows, each its own transaction"
    );
    let places = one_place_each(&p);
    assert_eq!(
        places.values().filter(|t| t.starts_with("_retention_trash_")).count(),
        33 * gone.len()
    );
    let mut want: Vec<String> = gone.iter().map(|&(d, t)| bucket(d, t)).collect();
    want.sort();
    assert_eq!(trash_sorted(&cfg), want);
    // A second pass finds nothing more to drop: the trash is not the table's.
    let report = ok_pass(&cfg, NOW, &[]);
    assert_eq!(report["stats"]["dropped"]["segments"], 0, "{report:#}");
    // Restore every bucket: the table is exactly as it was, ids and generated columns included.
    for name in &want {
        let (code, _, stderr) = trash(&cfg, &["restore", "--dataset", "events", name]);
        assert_eq!(code, 0, "{stderr}");
    }
    assert!(trash_sorted(&cfg).is_empty());
    assert_eq!(p.checksum(), original, "restored exactly");
    assert_eq!(p.buckets(), expected(&[]));
    // Dropped again, and purged by a pass once the grace period is over (which drops days 5 and 6 in turn).
    ok_pass(&cfg, NOW, &[]);
    assert_eq!(trash_sorted(&cfg).len(), gone.len());
    ok_pass(&cfg, LATER, &[]);
    let mut later: Vec<String> = [5, 6].iter().flat_map(|&d| [bucket(d, 1), bucket(d, 2)]).collect();
    later.sort();
    assert_eq!(
        trash_sorted(&cfg),
        later,
        "the first drops purged, the later ones in the trash"
    );
    let census = p.db.census();
    assert_eq!(
        census.len(),
        DAYS as usize * 99 + 2 - 33 * gone.len(),
        "the purged rows are gone"
    );
    let schemas: i64 = p.db.sql(async |c| {
        c.query_one(
            "SELECT count(*) FROM pg_namespace WHERE starts_with(nspname, '_retention_trash_')",
            &[],
        )
        .await
        .unwrap()
        .get(0)
    });
    assert_eq!(schemas, 1, "the emptied trash schema is dropped");
}

#[test]
fn with_no_grace_period_a_pass_deletes_old_buckets_for_good_in_batches() {
    let p = Plain::new();
    let cfg = p.config(DROP, 10, "trash_grace_secs = 0");
    let report = ok_pass(&cfg, NOW, &[]);
    let gone = old(&[0, 1, 2]);
    assert_eq!(report["stats"]["dropped"]["segments"], gone.len(), "{report:#}");
    assert_eq!(p.buckets(), expected(&gone));
    assert!(trash_sorted(&cfg).is_empty());
    assert_eq!(p.db.census().len(), DAYS as usize * 99 + 2 - 33 * gone.len());
}

#[test]
fn a_plan_that_archives_a_bucket_without_an_archive_destination_is_refused_whole_before_anything_is_applied() {
    let p = Plain::new();
    let before = p.checksum();
    let cfg = p.config("archive_after_days = 7, drop_after_days = 9", 7, "");
    let (status, report, stderr) = pass(&cfg, NOW, &[], None);
    assert_ne!(status.code(), Some(0), "{report:#}");
    let all = format!("{}{report}{stderr}", report["error"].as_str().unwrap_or_default());
    assert!(
        all.contains("the dataset has no archive destination: set archive_url"),
        "{all}"
    );
    assert_eq!(p.checksum(), before, "nothing applied, the drops included");
}

#[test]
fn a_role_without_delete_on_the_table_is_told_the_grant_before_anything_is_applied() {
    let p = Plain::new();
    let before = p.checksum();
    let role = format!("r_{}", uuid::Uuid::new_v4().simple());
    p.db.sql(async |c| {
        c.batch_execute(&format!(
            "CREATE ROLE {role} LOGIN; GRANT SELECT, INSERT ON events TO {role}; \
             GRANT CREATE ON DATABASE {} TO {role}",
            p.db.url.rsplit('/').next().unwrap()
        ))
        .await
        .unwrap()
    });
    let url = p.db.url.replacen("postgres@", &format!("{role}@"), 1);
    let cfg = p.config(DROP, 7, "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(&p.db.url, &url);
    std::fs::write(&cfg, text).unwrap();
    let (status, report, stderr) = pass(&cfg, NOW, &[], None);
    assert_ne!(status.code(), Some(0), "{report:#}");
    let all = format!("{}{stderr}", report["error"].as_str().unwrap_or_default());
    assert!(
        all.contains(&format!(
            "GRANT SELECT, INSERT, DELETE ON \"public\".\"events\" TO {role}"
        )),
        "{all}"
    );
    assert!(all.contains("lacks DELETE"), "{all}");
    assert_eq!(p.checksum(), before);
}

#[test]
fn a_crash_at_every_point_of_a_bucket_drop_leaves_every_row_in_one_place_and_the_next_pass_finishes() {
    for grace in [true, false] {
        for point in retention::store::postgres::BUCKET_CRASH_POINTS {
            let p = Plain::new();
            let extra = if grace { "" } else { "trash_grace_secs = 0" };
            let cfg = p.config(DROP, 7, extra);
            let (status, report, stderr) = pass(&cfg, NOW, &[], Some(point));
            assert!(
                status.signal().is_some() || status.code() != Some(0),
                "{point}: the process died there: {report:#}\n{stderr}"
            );
            if grace {
                one_place_each(&p);
            }
            // The next pass drops what the first left, and every row is in one place.
            let report = ok_pass(&cfg, NOW, &[]);
            let gone = old(&[0, 1, 2]);
            assert_eq!(p.buckets(), expected(&gone), "{point}: {report:#}");
            if grace {
                let places = one_place_each(&p);
                assert_eq!(
                    places.values().filter(|t| t.starts_with("_retention_trash_")).count(),
                    33 * gone.len(),
                    "{point}"
                );
                // Restoring every trash entry (one bucket may be in two: the interrupted drop's and the next
                // pass's) gives the table back whole.
                let cfg_names = trash_sorted(&cfg);
                for name in &cfg_names {
                    let (code, _, stderr) = trash(&cfg, &["restore", "--dataset", "events", name]);
                    assert_eq!(code, 0, "{point}: {stderr}");
                }
                assert_eq!(p.buckets(), expected(&[]), "{point}");
            } else {
                assert_eq!(p.db.census().len(), DAYS as usize * 99 + 2 - 33 * gone.len(), "{point}");
            }
        }
    }
}
