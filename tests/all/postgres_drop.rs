//! Dropping partitions of a table dataset, through the real binary against a real server: into a trash schema and
//! back with identical rows, purged after the grace period, for good with no grace period, beside a DEFAULT partition
//! (pg_partman's layout: a plain DETACH in one transaction) or not (`DETACH ... CONCURRENTLY`); a lock held by another
//! session fails the action cleanly and the next pass finishes it; names that need quoting work; and at every crash
//! point of the drop (the process aborted there, as suddenly as `kill -9`) every row stays in exactly one place,
//! which the next pass settles.

use crate::common;

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;

use common::postgres::{DAYS, Db, ok_pass, pass, trash, trash_names};
use serde_json::Value;

const NOW: &str = "2026-01-12T00:00:00Z";

/// Two days after [`NOW`]: past the default day of grace of what a pass at `NOW` dropped.
const LATER: &str = "2026-01-14T00:00:00Z";

/// The plan of every test: days 1 to [`DROPPED`] are 7 days old or more on [`NOW`] and dropped (40% of the bytes, under
/// the default guard's half), the later ones kept.
const DROP: &str = "drop_after_days = 7";
const DROPPED: u32 = 4;

fn day(prefix: &str, d: u32) -> String {
    format!("{prefix}202601{d:02}")
}

/// Every row is in exactly one place; returns the places (schema-less for the table's own) by row.
fn one_place_each(db: &Db, rows: usize) -> BTreeMap<String, String> {
    let census = db.census();
    assert_eq!(census.len(), rows, "every row still exists");
    census
        .into_iter()
        .map(|(row, places)| {
            assert_eq!(places.len(), 1, "{row} is in {places:?}");
            (row, places.into_iter().next().unwrap())
        })
        .collect()
}

fn rows(default: bool) -> usize {
    DAYS as usize * 100 + if default { 7 } else { 0 }
}

/// What the table holds after the planned drops: days 7 to 10, and the DEFAULT partition.
fn kept_partitions(db: &Db, prefix: &str, default: bool) -> Vec<String> {
    let mut want: Vec<String> = (DROPPED + 1..=DAYS).map(|d| day(prefix, d)).collect();
    if default {
        want.push(format!("{prefix}default"));
    }
    want.sort();
    let mut have: Vec<String> = db
        .partitions()
        .into_iter()
        .map(|(p, _)| {
            p.rsplit_once('.')
                .map_or(p.clone(), |(_, n)| n.to_string())
                .trim_matches('"')
                .replace("\"\"", "\"")
        })
        .collect();
    have.sort();
    assert_eq!(have, want);
    have
}

#[test]
fn a_pass_drops_old_partitions_into_the_trash_a_restore_attaches_them_back_and_a_later_pass_purges_them() {
    for default in [false, true] {
        let db = Db::events(default);
        let cfg = db.config(DROP, "");
        let original = db.checksum();
        let census = db.census();
        let report = ok_pass(&cfg, NOW, &[]);
        assert_eq!(report["stats"]["dropped"]["segments"], DROPPED, "{report:#}");
        kept_partitions(&db, "events_p", default);
        let places = one_place_each(&db, rows(default));
        let trash_schema = "_retention_trash_1768176000000_1768262400000";
        for (row, place) in &places {
            let d: u32 = row[8..10].parse().unwrap();
            if row.starts_with("2026-01") && d <= DROPPED {
                assert_eq!(place, &format!("{trash_schema}.{}", day("events_p", d)), "{row}");
            } else {
                assert!(place.starts_with("public."), "{row}: {place}");
            }
        }
        let names = trash_names(&cfg);
        assert_eq!(names, (1..=DROPPED).map(|d| day("events_p", d)).collect::<Vec<_>>());

        // Restore every one: the table is exactly as it was (rows, partitions, bounds, comments).
        for n in &names {
            let (code, stdout, stderr) = trash(&cfg, &["restore", "--dataset", "events", n]);
            assert_eq!(code, 0, "{stdout}{stderr}");
        }
        assert_eq!(db.checksum(), original, "default {default}");
        assert_eq!(db.census(), census);
        assert!(trash_names(&cfg).is_empty());
        // A second restore of one: nothing in the trash; a restore over a partition that is back: refused.
        let (code, _, stderr) = trash(&cfg, &["restore", "--dataset", "events", "events_p20260101"]);
        assert_ne!(code, 0);
        assert!(
            stderr.contains("no segment \"events_p20260101\" in the trash"),
            "{stderr}"
        );

        // Dropped again, then a pass after the grace period purges them, and the trash schema goes with them.
        ok_pass(&cfg, NOW, &[]);
        assert_eq!(trash_names(&cfg).len(), DROPPED as usize);
        let report = ok_pass(&db.config("", ""), LATER, &["--purge-by-now"]);
        assert_eq!(
            report["purged"].as_array().map(Vec::len),
            Some(DROPPED as usize),
            "{report:#}"
        );
        assert!(trash_names(&cfg).is_empty());
        kept_partitions(&db, "events_p", default);
        assert_eq!(db.census().len(), rows(default) - DROPPED as usize * 100);
        let schemas: i64 = db.sql(async |c| {
            c.query_one(
                "SELECT count(*) FROM pg_namespace WHERE starts_with(nspname, '_retention_trash_')",
                &[],
            )
            .await
            .unwrap()
            .get(0)
        });
        assert_eq!(schemas, 0, "the emptied trash schema is dropped");
    }
}

#[test]
fn with_no_grace_period_a_drop_deletes_the_partition_at_once() {
    for default in [false, true] {
        let db = Db::events(default);
        let cfg = db.config(DROP, "trash_grace_secs = 0");
        let report = ok_pass(&cfg, NOW, &[]);
        assert_eq!(report["stats"]["dropped"]["segments"], DROPPED, "{report:#}");
        kept_partitions(&db, "events_p", default);
        let places = one_place_each(&db, rows(default) - DROPPED as usize * 100);
        assert!(places.values().all(|p| p.starts_with("public.")), "{places:?}");
        assert!(trash_names(&cfg).is_empty());
        assert!(db.unsettled().is_empty());
    }
}

#[test]
fn a_plan_that_compresses_is_refused_whole_before_anything_is_applied() {
    let db = Db::events(true);
    let before = db.checksum();
    let (status, report, stderr) = pass(
        &db.config("compress_after_days = 1, drop_after_days = 5", ""),
        NOW,
        &[],
        None,
    );
    assert_eq!(status.code(), Some(1), "{report:#}\n{stderr}");
    let error = report["error"].as_str().unwrap_or_default();
    assert!(error.contains("PostgreSQL has no compression"), "{report:#}");
    assert_eq!(db.checksum(), before, "nothing applied, not even the drops");
}

#[test]
fn a_lock_held_by_another_session_fails_the_drop_cleanly_and_the_next_pass_finishes_it() {
    for default in [false, true] {
        let db = Db::events(default);
        let cfg = db.config(DROP, "lock_timeout_ms = 300");
        let census = db.census();
        // A long report query: its transaction has read the table and holds its snapshot and locks.
        let reader = db.rt.block_on(async {
            let c = common::postgres::connect(&db.url).await;
            c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM events")
                .await
                .unwrap();
            c
        });
        let (status, report, stderr) = pass(&cfg, NOW, &[], None);
        assert_eq!(status.code(), Some(1), "{report:#}\n{stderr}");
        let failed: Vec<&Value> = report["segments"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["error"].is_string())
            .collect();
        assert_eq!(failed.len(), DROPPED as usize, "{report:#}");
        let error = |i: usize| failed[i]["error"].as_str().unwrap();
        assert!(error(0).contains("lock timeout"), "{report:#}");
        for i in 1..failed.len() {
            // CONCURRENTLY: the first one's detach is left pending, and a table has at most one pending detach.
            let want = if default {
                "lock timeout"
            } else {
                "already pending detach"
            };
            assert!(error(i).contains(want), "{report:#}");
        }
        // Every row is where it was (the reader's snapshot still sees every one of them), once.
        assert_eq!(db.census(), census);
        let seen: i64 = db.rt.block_on(async {
            reader
                .query_one("SELECT count(*) FROM events", &[])
                .await
                .unwrap()
                .get(0)
        });
        assert_eq!(seen as usize, rows(default));
        // The plain DETACH waited for the reader and was rolled back; so were the refused ones: their intents are
        // cleared at once. The first CONCURRENTLY one is pending: it keeps its intent.
        let want: Vec<String> = if default { vec![] } else { vec![day("events_p", 1)] };
        assert_eq!(db.unsettled(), want);
        db.rt.block_on(async { reader.batch_execute("COMMIT").await.unwrap() });
        // The next pass settles what the first left (CONCURRENTLY: detach-pending partitions) and drops the rest.
        let report = ok_pass(&cfg, NOW, &[]);
        if !default {
            let settled = &report["recovery"]["settled"];
            assert_eq!(settled.as_array().map(Vec::len), Some(1), "{report:#}");
            assert_eq!(settled[0]["name"], day("events_p", 1), "{report:#}");
        }
        kept_partitions(&db, "events_p", default);
        assert_eq!(trash_names(&cfg).len(), DROPPED as usize);
        assert!(db.unsettled().is_empty());
        one_place_each(&db, rows(default));
    }
}

#[test]
fn names_with_quotes_spaces_dots_and_capitals_are_always_quoted() {
    let prefix = "Part 'y'\"; DROP TABLE z; --";
    let db = Db::new("My \"Odd\" Schema", "Ev.ents x", prefix, true);
    let cfg = db.config(DROP, "");
    let original = db.checksum();
    let report = ok_pass(&cfg, NOW, &["--dry-run"]);
    let dropped = report["segments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["action"] == "drop")
        .count();
    assert_eq!(dropped, DROPPED as usize, "{report:#}");
    ok_pass(&cfg, NOW, &[]);
    kept_partitions(&db, prefix, true);
    one_place_each(&db, rows(true));
    let names = trash_names(&cfg);
    assert_eq!(names, (1..=DROPPED).map(|d| day(prefix, d)).collect::<Vec<_>>());
    for n in &names {
        let (code, stdout, stderr) = trash(&cfg, &["restore", "--dataset", "events", n]);
        assert_eq!(code, 0, "{stdout}{stderr}");
    }
    assert_eq!(db.checksum(), original);
}

#[test]
fn at_every_crash_point_of_a_drop_every_row_stays_in_exactly_one_place_and_the_next_pass_settles_it() {
    for default in [false, true] {
        for point in retention::store::postgres::CRASH_POINTS {
            let db = Db::events(default);
            let cfg = db.config(DROP, "");
            let (status, report, stderr) = pass(&cfg, NOW, &[], Some(point));
            assert_eq!(status.signal(), Some(libc::SIGABRT), "{point}: {report:#}\n{stderr}");
            assert!(stderr.contains(&format!("crash point {point} reached")), "{stderr}");
            one_place_each(&db, rows(default));
            let report = ok_pass(&cfg, NOW, &[]);
            kept_partitions(&db, "events_p", default);
            assert_eq!(
                trash_names(&cfg),
                (1..=DROPPED).map(|d| day("events_p", d)).collect::<Vec<_>>(),
                "{point}, default {default}: {report:#}"
            );
            assert!(db.unsettled().is_empty(), "{point}: {:?}", db.unsettled());
            one_place_each(&db, rows(default));
        }
    }
}

#[test]
fn a_role_with_the_readme_grants_can_drop_and_restore_and_a_missing_one_is_named_before_anything_is_applied() {
    let db = Db::events(true);
    let db_name = db.url.rsplit('/').next().unwrap().to_string();
    // The table and its partitions belong to the application's role; the engine logs in as its own.
    let role = format!("ret_{}", &db_name[2..10]);
    let owner = format!("app_{}", &db_name[2..10]);
    let setup = format!(
        "CREATE ROLE {owner}; CREATE ROLE {role} LOGIN; ALTER TABLE events OWNER TO {owner}; \
         DO $$ DECLARE p regclass; BEGIN FOR p IN SELECT relid FROM pg_partition_tree('events') WHERE isleaf LOOP \
         EXECUTE format('ALTER TABLE %s OWNER TO {owner}', p); END LOOP; END $$;"
    );
    db.sql(async move |c| c.batch_execute(&setup).await.unwrap());
    let cfg = db.config(DROP, "");
    let as_role = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("postgres@", &format!("{role}@"));
    std::fs::write(&cfg, as_role).unwrap();
    let before = db.checksum();
    let failing = |want: &str| {
        let (status, report, stderr) = pass(&cfg, NOW, &[], None);
        assert_ne!(status.code(), Some(0), "{report:#}\n{stderr}");
        let text = format!("{report}{stderr}");
        assert!(text.contains(want), "want {want:?} in {report:#}\n{stderr}");
        assert_eq!(db.checksum(), before, "nothing applied");
    };
    failing(&format!("GRANT {owner} TO {role}"));
    let grant = format!("GRANT {owner} TO {role}");
    db.sql(async move |c| c.batch_execute(&grant).await.unwrap());
    failing(&format!("GRANT CREATE ON DATABASE {db_name} TO {role}"));
    // The README's GRANTs, all of them: the pass drops, the trash restores.
    let grants = format!("GRANT CREATE ON DATABASE {db_name} TO {role}; GRANT CREATE ON SCHEMA public TO {role}");
    db.sql(async move |c| c.batch_execute(&grants).await.unwrap());
    ok_pass(&cfg, NOW, &[]);
    kept_partitions(&db, "events_p", true);
    for n in trash_names(&cfg) {
        let (code, stdout, stderr) = trash(&cfg, &["restore", "--dataset", "events", &n]);
        assert_eq!(code, 0, "{stdout}{stderr}");
    }
    assert_eq!(db.checksum(), before);
}

#[test]
fn a_table_dataset_served_keeps_held_partitions_records_every_action_and_restores_through_the_api() {
    use common::service::{Setup, TOKEN};
    use serde_json::json;
    let db = Db::events(true);
    let s = Setup::new("age_tiering", 0);
    // The service's passes use the clock (2026-01 is months old): the plugin drops every partition, the guards let
    // it, the holds keep two.
    let cfg = s.path().join("retention.toml");
    std::fs::write(
        &cfg,
        format!(
            "plugin_dir = \"plugins\"\n[service]\nlisten = \"127.0.0.1:{}\"\nstate_dir = \"state\"\n[[dataset]]\n\
             name = \"events\"\nplugin = \"policy\"\nparams = {{ drop_after_days = 30 }}\n[dataset.guard]\n\
             max_drop_bytes_fraction = 1.0\nmax_drop_segments_fraction = 1.0\nkeep_newest = 0\n[dataset.postgres]\n\
             url = \"{}\"\ntable = \"events\"\nlabels = '(?P<day>\\d{{8}})$'\n",
            s.port, db.url
        ),
    )
    .unwrap();
    let svc = s.start(&cfg, Some(TOKEN));
    for hold in [
        json!({"dataset": "events", "selector": {"label": {"key": "day", "value": "20260102"}}, "reason": "case 7",
               "author": "legal@example.com"}),
        json!({"dataset": "events", "selector": {"name_prefix": "events_p20260103"}, "reason": "audit",
               "author": "sre@example.com"}),
    ] {
        let (st, v) = svc.post_json("/v1/holds", Some(TOKEN), &hold.to_string());
        assert_eq!(st, 201, "{v}");
    }
    let (st, report) = svc.post("/v1/datasets/events/passes", Some(TOKEN));
    assert_eq!(st, 200, "{report}");
    assert_eq!(report["status"], "ok", "{report:#}");
    assert_eq!(report["stats"]["overridden"], 2, "{report:#}");
    let (_, trash) = svc.get("/v1/datasets/events/trash");
    let mut trashed: Vec<String> = trash["trash"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    trashed.sort();
    let want: Vec<String> = [1, 4, 5, 6, 7, 8, 9, 10].iter().map(|&d| day("events_p", d)).collect();
    assert_eq!(trashed, want, "held: days 2 and 3");
    let mut kept: Vec<String> = db.partitions().into_iter().map(|(p, _)| p).collect();
    kept.sort();
    assert_eq!(kept, ["events_p20260102", "events_p20260103", "events_pdefault"]);
    // Every drop is in the audit trail, with the plugin's reason.
    let (_, audit) = svc.get("/v1/audit?dataset=events&action=drop");
    let records = audit["records"].as_array().unwrap();
    let done = records.iter().filter(|r| r["outcome"] == "trashed").count();
    assert_eq!(done, 8, "{audit:#}");
    let mut not_done: Vec<&str> = records
        .iter()
        .filter(|r| r["outcome"] == "overridden")
        .map(|r| r["segment"].as_str().unwrap())
        .collect();
    not_done.sort();
    assert_eq!(
        not_done,
        ["events_p20260102", "events_p20260103"],
        "the held ones: {audit:#}"
    );
    // Restored through the API, with its rows.
    let (st, v) = svc.post_json(
        "/v1/datasets/events/trash/restore",
        Some(TOKEN),
        &json!({"names": ["events_p20260101"]}).to_string(),
    );
    assert_eq!(st, 200, "{v}");
    let rows: i64 = db.sql(async |c| {
        c.query_one("SELECT count(*) FROM events_p20260101", &[])
            .await
            .unwrap()
            .get(0)
    });
    assert_eq!(rows, 100);
    svc.stop();
}
