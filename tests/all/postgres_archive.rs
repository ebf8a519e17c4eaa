//! Archiving partitions of a table dataset as Parquet, through the real binary against a real server: verified
//! objects with manifests, archived partitions scanned as tier archived, `retention archive restore` giving back
//! identical rows and types, column types the archive cannot hold refused before anything is written, rows written
//! after an interrupted archive never deleted unarchived, and at every crash point of the archive and of the restore
//! every row stays in at least one recoverable place (the table, or a verified archive object) and the next pass
//! settles it to exactly one.

use crate::common;
use common::files;

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

use common::postgres::{DAYS, Db, ok_pass, pass};
use common::{retention, run};
use serde_json::Value;

const NOW: &str = "2026-01-12T00:00:00Z";

/// Days 1 to 4 are 7 days old or more on [`NOW`]: archived; the later ones kept.
const ARCHIVE: &str = "archive_after_days = 7";
const ARCHIVED: u32 = 4;

fn restore(config: &Path, names: &[String], crash_at: Option<&str>) -> (std::process::ExitStatus, String) {
    let mut cmd = retention();
    cmd.args(["archive", "restore", "--dataset", "events", "--config"])
        .arg(config)
        .args(names);
    if let Some(p) = crash_at {
        cmd.env("RETENTION_CRASH_AT", p);
    }
    let (out, stdout, stderr) = run(&mut cmd);
    (out.status, format!("{stdout}{stderr}"))
}

fn day(d: u32) -> String {
    format!("events_p202601{d:02}")
}

fn archive_dir(db: &Db) -> PathBuf {
    let d = db.dir.path().join("archive");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn config(db: &Db, params: &str, extra: &str) -> PathBuf {
    let url = format!("file://{}", archive_dir(db).display());
    db.config(params, &format!("archive_url = \"{url}\"\n{extra}"))
}

/// The rows of every archived partition that has its manifest and whose Parquet reads back as the manifest says
/// (a verified archive: a recoverable place), as the census formats them.
fn archived_rows(db: &Db) -> BTreeMap<String, Vec<String>> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::TimestampMicrosecondType;
    use sha2::Digest;
    let dir = archive_dir(db);
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in files(&dir) {
        let Some(stem) = f.strip_suffix(".manifest.json") else {
            continue;
        };
        let m: Value = serde_json::from_slice(&std::fs::read(dir.join(&f)).unwrap()).unwrap();
        let parquet = dir.join(format!("{stem}.parquet"));
        let bytes = std::fs::read(&parquet).unwrap();
        assert_eq!(bytes.len() as u64, m["parquet_bytes"].as_u64().unwrap(), "{f}");
        assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), m["parquet_sha256"], "{f}");
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
            .unwrap()
            .build()
            .unwrap();
        let mut n = 0;
        for batch in reader {
            let batch = batch.unwrap();
            let ts = batch.column(0).as_primitive::<TimestampMicrosecondType>();
            let tenant = batch.column(1).as_string::<i32>();
            let payload = batch.column(2).as_string::<i32>();
            for i in 0..batch.num_rows() {
                let t = chrono::DateTime::from_timestamp_micros(ts.value(i)).unwrap();
                let row = format!(
                    "{}+00|{}|{}",
                    t.format("%Y-%m-%d %H:%M:%S"),
                    tenant.value(i),
                    payload.value(i)
                );
                out.entry(row).or_default().push(format!("archive:{stem}"));
                n += 1;
            }
        }
        assert_eq!(n, m["rows"].as_u64().unwrap(), "{f}");
    }
    out
}

/// Every row of the dataset with its recoverable places: tables and verified archive objects.
fn census(db: &Db) -> BTreeMap<String, Vec<String>> {
    let mut all = db.census();
    for (row, places) in archived_rows(db) {
        all.entry(row).or_default().extend(places);
    }
    all
}

fn rows(default: bool) -> usize {
    DAYS as usize * 100 + if default { 7 } else { 0 }
}

/// After the planned archive: days 1 to 4 are each in exactly one verified object, every other row in the table,
/// and nothing else is left (no staged upload, no intent).
fn settled(db: &Db, default: bool) {
    let census = census(db);
    assert_eq!(census.len(), rows(default), "every row exists");
    for (row, places) in &census {
        assert_eq!(places.len(), 1, "{row}: {places:?}");
        let d: u32 = row[8..10].parse().unwrap();
        if row.starts_with("2026-01") && d <= ARCHIVED {
            assert_eq!(places[0], format!("archive:public/events/{}", day(d)), "{row}");
        } else {
            assert!(places[0].starts_with("public."), "{row}: {places:?}");
        }
    }
    let mut want: Vec<String> = (1..=ARCHIVED)
        .flat_map(|d| {
            [
                format!("public/events/{}.manifest.json", day(d)),
                format!("public/events/{}.parquet", day(d)),
            ]
        })
        .collect();
    want.sort();
    assert_eq!(files(&archive_dir(db)), want);
    assert!(db.unsettled().is_empty(), "{:?}", db.unsettled());
}

/// pyarrow (from PyPI, pinned: `tests/readers/`) reads each archived Parquet as the rows the table held, with their
/// PostgreSQL types in the schema's metadata.
fn independent_reader_sees_the_same_rows(db: &Db, before: &BTreeMap<String, Vec<String>>) {
    let script = common::repo_root().join("tests/readers/read_parquet.sh");
    for d in 1..=ARCHIVED {
        let file = archive_dir(db).join(format!("public/events/{}.parquet", day(d)));
        let (out, stdout, stderr) = run(std::process::Command::new("bash").arg(&script).arg(&file));
        assert!(out.status.success(), "{stderr}");
        let (schema, rows): (Vec<&str>, Vec<&str>) = stdout.lines().partition(|l| l.starts_with("# "));
        let mut rows: Vec<String> = rows.into_iter().map(str::to_string).collect();
        rows.sort();
        let want: Vec<String> = before
            .iter()
            .filter(|(_, places)| places == &&vec![format!("public.{}", day(d))])
            .map(|(r, _)| r.clone())
            .collect();
        assert_eq!(rows.len(), 100);
        assert_eq!(rows, want, "{}", day(d));
        assert_eq!(
            schema,
            [
                "# ts timestamp[us, tz=UTC] timestamp with time zone",
                "# tenant string text",
                "# payload string text"
            ]
        );
    }
}

#[test]
fn a_pass_archives_old_partitions_as_verified_parquet_and_a_restore_puts_identical_rows_back() {
    for default in [false, true] {
        let db = Db::events(default);
        let cfg = config(&db, ARCHIVE, "");
        let original = db.checksum();
        let census_before = db.census();
        let report = ok_pass(&cfg, NOW, &[]);
        assert_eq!(report["stats"]["archived"]["segments"], ARCHIVED, "{report:#}");
        settled(&db, default);
        let manifest: Value = serde_json::from_slice(
            &std::fs::read(archive_dir(&db).join("public/events/events_p20260101.manifest.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(manifest["rows"], 100);
        assert_eq!(manifest["start_ms"], 1_767_225_600_000i64);
        assert_eq!(manifest["columns"][0]["pg_type"], "timestamp with time zone");
        independent_reader_sees_the_same_rows(&db, &census_before);

        // The next scan lists them as archived, with their rows and times; the plan keeps them.
        let report = ok_pass(&cfg, NOW, &["--dry-run"]);
        let archived: Vec<&Value> = report["segments"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["tier"] == "archived")
            .collect();
        assert_eq!(archived.len(), ARCHIVED as usize, "{report:#}");
        assert!(archived.iter().all(|s| s["action"] == "keep"), "{report:#}");

        // Restored: the table is exactly as it was, the archive empty.
        let names: Vec<String> = (1..=ARCHIVED).map(day).collect();
        let (status, out) = restore(&cfg, &names, None);
        assert_eq!(status.code(), Some(0), "{out}");
        assert!(
            out.contains("restored events_p20260101 from the archive (100 rows"),
            "{out}"
        );
        assert_eq!(db.checksum(), original, "default {default}");
        assert_eq!(db.census(), census_before);
        assert!(files(&archive_dir(&db)).is_empty(), "{:?}", files(&archive_dir(&db)));
        // Once more: there is nothing to restore.
        let (status, out) = restore(&cfg, &names[..1], None);
        assert_eq!(status.code(), Some(1), "{out}");
        assert!(out.contains("no archived partition \"events_p20260101\""), "{out}");
    }
}

#[test]
fn an_archived_partition_that_expires_is_dropped_with_its_manifest() {
    let db = Db::events(true);
    ok_pass(&config(&db, ARCHIVE, "trash_grace_secs = 0"), NOW, &[]);
    // Archived ones older than 8 days (days 1 to 3) are dropped; day 4 stays archived, 5 to 10 in the table.
    let report = ok_pass(
        &config(
            &db,
            "archive_after_days = 7, drop_after_days = 8",
            "trash_grace_secs = 0",
        ),
        NOW,
        &[],
    );
    assert_eq!(report["stats"]["dropped"]["segments"], 3, "{report:#}");
    assert_eq!(
        files(&archive_dir(&db)),
        [
            "public/events/events_p20260104.manifest.json",
            "public/events/events_p20260104.parquet"
        ]
    );
}

/// The archive's files outside its trash, and in it.
fn in_and_out_of_trash(db: &Db) -> (Vec<String>, Vec<String>) {
    files(&archive_dir(db))
        .into_iter()
        .partition(|f| !f.starts_with(".retention-trash/"))
}

#[test]
fn an_archived_partition_dropped_with_a_grace_period_waits_in_the_archives_trash_and_comes_back_whole() {
    let db = Db::events(false);
    let original = db.checksum();
    ok_pass(&config(&db, ARCHIVE, ""), NOW, &[]);
    let archived = in_and_out_of_trash(&db).0;
    // Days 1 to 3 are dropped from the archive into its trash: their objects and manifests move, nothing else.
    let cfg = config(&db, "archive_after_days = 7, drop_after_days = 8", "");
    let report = ok_pass(&cfg, NOW, &[]);
    assert_eq!(report["stats"]["trashed"]["segments"], 3, "{report:#}");
    let (out, trashed) = in_and_out_of_trash(&db);
    assert_eq!(out, archived[6..], "day 4 stays archived");
    assert_eq!(trashed.len(), 6, "{trashed:?}");
    assert!(
        trashed.iter().all(|f| f.contains("/public/events/events_p2026010")),
        "{trashed:?}"
    );
    let names = common::postgres::trash_names(&cfg);
    assert_eq!(names, [day(1), day(2), day(3)]);
    // Restored from the trash: archived again, and from the archive back into the table, rows exact.
    for name in &names {
        let (code, _, stderr) = common::postgres::trash(&cfg, &["restore", "--dataset", "events", name]);
        assert_eq!(code, 0, "{stderr}");
    }
    assert_eq!(in_and_out_of_trash(&db), (archived.clone(), vec![]));
    let all: Vec<String> = (1..=ARCHIVED).map(day).collect();
    let (status, out) = restore(&cfg, &all, None);
    assert_eq!(status.code(), Some(0), "{out}");
    assert_eq!(db.checksum(), original);
    // Trashed again, and purged by a pass after the grace period.
    // (Each config is written to the same file: the dropping one again after the archiving one.)
    ok_pass(&config(&db, ARCHIVE, ""), NOW, &[]);
    let cfg = config(&db, "archive_after_days = 7, drop_after_days = 8", "");
    ok_pass(&cfg, NOW, &[]);
    assert_eq!(in_and_out_of_trash(&db).1.len(), 6);
    let report = ok_pass(&cfg, "2026-01-14T00:00:00Z", &[]);
    assert_eq!(report["stats"]["purged"]["segments"], 3, "{report:#}");
    // That pass moved day 4 (8 days old by then) into the trash in turn, and archived day 6.
    let (out, trashed) = in_and_out_of_trash(&db);
    assert_eq!(trashed.len(), 2, "days 1 to 3 purged: {trashed:?}");
    assert!(trashed.iter().all(|f| f.contains(&day(4))), "{trashed:?}");
    assert!(out.iter().all(|f| f.contains(&day(6))), "{out:?}");
}

#[test]
fn at_every_crash_point_of_a_move_into_or_out_of_the_archives_trash_each_object_stays_in_one_place() {
    let drops = retention::store::postgres::ARCHIVE_TRASH_CRASH_POINTS
        .iter()
        .map(|p| (true, p));
    let restores = retention::store::postgres::ARCHIVE_UNTRASH_POINTS
        .iter()
        .map(|p| (false, p));
    for (dropping, point) in drops.chain(restores) {
        let db = Db::events(false);
        ok_pass(&config(&db, ARCHIVE, ""), NOW, &[]);
        let archived = in_and_out_of_trash(&db).0;
        let cfg = config(&db, "archive_after_days = 7, drop_after_days = 8", "");
        let mut cmd = retention();
        if dropping {
            cmd.args(["run", "--json", "--now", NOW, "--config"]).arg(&cfg);
        } else {
            ok_pass(&cfg, NOW, &[]);
            cmd.args(["trash", "restore", "--dataset", "events", &day(1), "--config"])
                .arg(&cfg);
        }
        let (out, stdout, stderr) = run(cmd.env("RETENTION_CRASH_AT", point));
        assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{point}: {stdout}{stderr}");
        // A pass that keeps everything settles it: day 1 archived or in the trash, not both, and whole.
        let keep = config(&db, "", "");
        let report = ok_pass(&keep, NOW, &[]);
        let (out, trashed) = in_and_out_of_trash(&db);
        let day1 = |fs: &[String]| fs.iter().filter(|f| f.contains(&day(1))).count();
        assert_eq!(
            day1(&out) + day1(&trashed),
            2,
            "{point}: {out:?} {trashed:?}\n{report:#}"
        );
        assert!(day1(&out) == 0 || day1(&trashed) == 0, "{point}: {out:?} {trashed:?}");
        // Whatever is in the trash comes back, and every row with it.
        for name in common::postgres::trash_names(&keep) {
            let (code, _, stderr) = common::postgres::trash(&keep, &["restore", "--dataset", "events", &name]);
            assert_eq!(code, 0, "{point}: {stderr}");
        }
        assert_eq!(in_and_out_of_trash(&db), (archived, vec![]), "{point}");
        settled(&db, false);
    }
}

#[test]
fn column_types_round_trip_exactly_and_a_type_the_archive_cannot_hold_is_refused_before_anything_is_written() {
    let db = Db::events(false);
    db.sql(async |c| {
        c.batch_execute(
            "CREATE TYPE mood AS ENUM ('ok', 'sad');
             CREATE TABLE typed (ts timestamptz NOT NULL, b boolean, i2 smallint, i4 integer, i8 bigint, f4 real,
               f8 double precision, t text, vc varchar(20), ch char(5), by bytea, tsn timestamp, d date,
               n numeric(20,5), u uuid, j jsonb, iv interval, ip inet, m mood,
               g bigint GENERATED ALWAYS AS (i8 / 2) STORED) PARTITION BY RANGE (ts);
             CREATE TABLE typed_p20260101 PARTITION OF typed FOR VALUES FROM ('2026-01-01') TO ('2026-01-02');
             CREATE TABLE typed_p20260110 PARTITION OF typed FOR VALUES FROM ('2026-01-10') TO ('2026-01-11');
             CREATE TABLE typed_p20260111 PARTITION OF typed FOR VALUES FROM ('2026-01-11') TO ('2026-01-12');
             INSERT INTO typed (ts, b, i2, i4, i8, f4, f8, t, vc, ch, by, tsn, d, n, u, j, iv, ip, m) VALUES
               ('2026-01-01 00:00:00.123456+00', true, -32768, 2147483647, -9223372036854775808, 1.5, 'NaN',
                'a \"quoted\", comma, new
line, back\\slash, ünïcode', 'vc', 'ab', '\\x00ff10', '2026-01-01 12:34:56.789', '2026-01-01',
                12345.67891, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"k\": [1, 2.5, null]}', '1 day 02:03:04.5',
                '10.1.2.3/8', 'sad'),
               ('2026-01-01 01:00:00+00', false, 0, 0, 0, '-Infinity', 0.1, '', '', '', '', NULL, NULL, NULL, NULL,
                NULL, NULL, NULL, NULL),
               ('2026-01-01 02:00:00+00', NULL, NULL, NULL, NULL, NULL, 1e300, NULL, NULL, NULL, NULL, NULL, NULL,
                NULL, NULL, NULL, NULL, NULL, NULL);
             INSERT INTO typed (ts) SELECT '2026-01-10'::timestamptz + i * interval '1 hour' FROM generate_series(0, 9) i;
             INSERT INTO typed (ts) SELECT '2026-01-11'::timestamptz + i * interval '1 hour' FROM generate_series(0, 9) i;
             CREATE TABLE arrays (ts timestamptz NOT NULL, tags text[]) PARTITION BY RANGE (ts);
             CREATE TABLE arrays_p20260101 PARTITION OF arrays FOR VALUES FROM ('2026-01-01') TO ('2026-01-02');
             CREATE TABLE arrays_p20260110 PARTITION OF arrays FOR VALUES FROM ('2026-01-10') TO ('2026-01-11');
             CREATE TABLE arrays_p20260111 PARTITION OF arrays FOR VALUES FROM ('2026-01-11') TO ('2026-01-12');
             INSERT INTO arrays VALUES ('2026-01-01 00:00+00', '{a,b}'), ('2026-01-10 00:00+00', '{c}'),
               ('2026-01-11 00:00+00', '{d}');",
        )
        .await
        .unwrap()
    });
    let text = |table: &str| {
        let q = format!("SELECT string_agg(t::text, E'\\n' ORDER BY t::text) FROM {table} t");
        db.sql(async move |c| c.query_one(&q, &[]).await.unwrap().get::<_, String>(0))
    };
    let before = text("typed");
    let url = format!("file://{}", archive_dir(&db).display());
    let cfg = |table: &str| {
        let p = db.dir.path().join(format!("{table}.toml"));
        std::fs::write(
            &p,
            format!(
                "plugin_dir = \"{}\"\n[[dataset]]\nname = \"events\"\nplugin = \"age_tiering\"\n\
                 params = {{ archive_after_days = 7 }}\n[dataset.postgres]\nurl = \"{}\"\ntable = \"{table}\"\n\
                 archive_url = \"{url}\"\n",
                common::plugin_dir().display(),
                db.url
            ),
        )
        .unwrap();
        p
    };
    let typed = cfg("typed");
    let report = ok_pass(&typed, NOW, &[]);
    assert_eq!(report["stats"]["archived"]["segments"], 1, "{report:#}");
    let m: Value = serde_json::from_slice(
        &std::fs::read(archive_dir(&db).join("public/typed/typed_p20260101.manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(m["rows"], 3, "{m:#}");
    let (status, out) = restore(&typed, &["typed_p20260101".to_string()], None);
    assert_eq!(status.code(), Some(0), "{out}");
    assert_eq!(text("typed"), before, "every value, NULL and type exact");

    // A text[] column: the action fails saying which column and type, and nothing is written anywhere.
    let arrays = cfg("arrays");
    let before = text("arrays");
    let (status, report, stderr) = pass(&arrays, NOW, &[], None);
    assert_eq!(status.code(), Some(1), "{report:#}\n{stderr}");
    let row = report["segments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "arrays_p20260101")
        .unwrap();
    let error = row["error"].as_str().unwrap();
    assert!(error.contains("column tags (text[])"), "{error}");
    assert_eq!(text("arrays"), before);
    assert!(!archive_dir(&db).join("public/arrays").exists());
    assert!(db.unsettled().is_empty());
}

#[test]
fn rows_written_into_a_partition_after_an_interrupted_archive_are_never_deleted_unarchived() {
    let db = Db::events(false);
    let cfg = config(&db, ARCHIVE, "");
    // The process dies after the manifest is written, before the table is dropped: a verified object.
    let (status, _, stderr) = pass(&cfg, NOW, &[], Some("pg-archive:manifest"));
    assert_eq!(status.signal(), Some(libc::SIGABRT), "{stderr}");
    // A late row lands in the detached table (by its name, as an ETL job holding it would write).
    db.sql(async |c| {
        c.batch_execute("INSERT INTO events_p20260101 VALUES ('2026-01-01 23:59:00+00', 'late', 'late row')")
            .await
            .unwrap()
    });
    // The object no longer holds exactly the table's rows: deleted, and the partition attached again with the
    // late row; then the pass's plan archives it anew, late row and all.
    let report = ok_pass(&cfg, NOW, &[]);
    let settled_rows = report["recovery"]["settled"].as_array().unwrap();
    assert!(
        settled_rows[0]["reason"].as_str().unwrap().contains("attached again"),
        "{report:#}"
    );
    assert_eq!(report["stats"]["archived"]["segments"], ARCHIVED, "{report:#}");
    let late = "2026-01-01 23:59:00+00|late|late row";
    let census = census(&db);
    assert_eq!(census[late], ["archive:public/events/events_p20260101"]);
    assert_eq!(census.len(), rows(false) + 1);
    assert!(census.values().all(|p| p.len() == 1));
}

#[test]
fn at_every_crash_point_of_an_archive_every_row_stays_recoverable_and_the_next_pass_settles_it() {
    for default in [false, true] {
        for point in retention::store::postgres::ARCHIVE_CRASH_POINTS {
            let db = Db::events(default);
            let cfg = config(&db, ARCHIVE, "");
            let (status, report, stderr) = pass(&cfg, NOW, &[], Some(point));
            assert_eq!(status.signal(), Some(libc::SIGABRT), "{point}: {report:#}\n{stderr}");
            let census = census(&db);
            assert_eq!(census.len(), rows(default), "{point}: every row in a recoverable place");
            ok_pass(&cfg, NOW, &[]);
            settled(&db, default);
        }
    }
}

#[test]
fn at_every_crash_point_of_a_restore_from_the_archive_every_row_stays_recoverable_and_the_next_pass_settles_it() {
    for point in retention::store::postgres::RESTORE_POINTS {
        let db = Db::events(true);
        let cfg = config(&db, ARCHIVE, "");
        let original = db.checksum();
        ok_pass(&cfg, NOW, &[]);
        let (status, out) = restore(&cfg, &[day(1)], Some(point));
        assert_eq!(status.signal(), Some(libc::SIGABRT), "{point}: {out}");
        assert_eq!(census(&db).len(), rows(true), "{point}");
        // A pass that keeps everything settles the restore: day 1 in the table only, its objects gone.
        ok_pass(&config(&db, "", ""), NOW, &[]);
        let census = census(&db);
        assert!(census.values().all(|p| p.len() == 1), "{point}");
        assert!(!archive_dir(&db).join("public/events/events_p20260101.parquet").exists());
        assert!(db.unsettled().is_empty(), "{point}: {:?}", db.unsettled());
        let names: Vec<String> = (2..=ARCHIVED).map(day).collect();
        let (status, out) = restore(&cfg, &names, None);
        assert_eq!(status.code(), Some(0), "{out}");
        assert_eq!(db.checksum(), original, "{point}");
    }
}
