//! Archiving time buckets of a plain table as Parquet, through the real binary against a real server: the old
//! buckets' rows leave the table for verified objects (a staging table between, in batches), archived buckets are
//! scanned as tier archived with their labels, `retention archive restore` moves identical rows back, rows written
//! into a bucket after its archive was taken are never deleted unarchived, and at every crash point of the archive
//! and of the restore every row stays in a recoverable place (the table, the staging table or a verified object)
//! and the next pass settles it to exactly one.

use crate::common;
use common::files;

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

use common::postgres::{DAYS, Plain, ok_pass, pass};
use common::{retention, run};
use serde_json::Value;

const NOW: &str = "2026-01-12T00:00:00Z";
/// Days 1 to 4 are 7 days old or more on [`NOW`]: archived; the later ones kept.
const ARCHIVE: &str = "archive_after_days = 7";
const ARCHIVED_DAYS: u32 = 4;
const TENANTS: u32 = 3;
/// Rows with a time (the table has 2 more without).
const TIMED: usize = DAYS as usize * 99;

fn archive_dir(p: &Plain) -> PathBuf {
    let d = p.db.dir.path().join("archive");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn config(p: &Plain, params: &str) -> PathBuf {
    let url = format!("file://{}", archive_dir(p).display());
    p.config(params, 7, &format!("archive_url = \"{url}\""))
}

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

/// The rows of every archived bucket that has its manifest and whose Parquet reads back as the manifest says (a
/// verified archive), formatted as the census does, with the object's name.
fn archived_rows(p: &Plain) -> BTreeMap<String, Vec<String>> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::TimestampMicrosecondType;
    use sha2::Digest;
    let dir = archive_dir(p);
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in files(&dir) {
        let Some(stem) = f.strip_suffix(".manifest.json") else {
            continue;
        };
        let m: Value = serde_json::from_slice(&std::fs::read(dir.join(&f)).unwrap()).unwrap();
        let bytes = std::fs::read(dir.join(format!("{stem}.parquet"))).unwrap();
        if bytes.len() as u64 != m["parquet_bytes"].as_u64().unwrap()
            || hex::encode(sha2::Sha256::digest(&bytes)) != m["parquet_sha256"]
        {
            continue;
        }
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
            .unwrap()
            .build()
            .unwrap();
        let mut n = 0;
        for batch in reader {
            let batch = batch.unwrap();
            let col = |name: &str| batch.column(batch.schema().index_of(name).unwrap()).clone();
            let (ts, tenant, payload) = (col("ts"), col("tenant"), col("payload"));
            let (ts, tenant, payload) = (
                ts.as_primitive::<TimestampMicrosecondType>(),
                tenant.as_string::<i32>(),
                payload.as_string::<i32>(),
            );
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

/// Every row with its recoverable places: tables (the dataset's, staging tables) and verified archive objects.
fn census(p: &Plain) -> BTreeMap<String, Vec<String>> {
    let mut all = p.db.census();
    for (row, places) in archived_rows(p) {
        all.entry(row).or_default().extend(places);
    }
    all
}

/// After the planned archive of days 1 to 4 of `tenants`: each of their rows in exactly one verified object (one
/// per bucket), every other row in the table, and nothing else left (no staging table, staged upload or intent).
fn settled(p: &Plain, tenants: &[u32]) {
    let census = census(p);
    assert_eq!(census.len(), TIMED + 2, "every row exists");
    let mut objects = BTreeMap::<String, usize>::new();
    for (row, places) in &census {
        assert_eq!(places.len(), 1, "{row}: {places:?}");
        let old = row.starts_with("2026-01") && row[8..10].parse::<u32>().unwrap() <= ARCHIVED_DAYS;
        let tenant = row.split('|').nth(1).unwrap();
        if old && tenants.iter().any(|t| tenant == format!("tenant-{t}")) {
            assert!(
                places[0].starts_with("archive:public/events/events_"),
                "{row}: {places:?}"
            );
            *objects.entry(places[0].clone()).or_default() += 1;
        } else {
            assert_eq!(places[0], "public.events", "{row}");
        }
    }
    assert_eq!(
        objects.len(),
        ARCHIVED_DAYS as usize * tenants.len(),
        "an object per bucket"
    );
    assert!(objects.values().all(|&n| n == 33), "{objects:?}");
    assert_eq!(
        files(&archive_dir(p)).len(),
        2 * objects.len(),
        "a Parquet and a manifest each"
    );
    assert!(p.db.unsettled().is_empty(), "{:?}", p.db.unsettled());
}

/// The archived segments' names in a dry run's scan.
fn archived_names(config: &Path) -> Vec<String> {
    let report = ok_pass(config, NOW, &["--dry-run"]);
    report["segments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["tier"] == "archived")
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_pass_archives_old_buckets_as_verified_parquet_and_a_restore_moves_identical_rows_back() {
    let p = Plain::new();
    let original = p.checksum();
    // tenant-0 is kept by the plugin for ever; the others' old buckets are archived, 7 rows a batch.
    let cfg = config(
        &p,
        &format!("{ARCHIVE}, \"override.tenant.tenant-0.archive_after_days\" = \"never\""),
    );
    let report = ok_pass(&cfg, NOW, &[]);
    assert_eq!(report["stats"]["archived"]["segments"], ARCHIVED_DAYS * 2, "{report:#}");
    assert_eq!(
        report["stats"]["archived"]["rows"],
        ARCHIVED_DAYS * 2 * 33,
        "{report:#}"
    );
    settled(&p, &[1, 2]);
    let dir = archive_dir(&p);
    let manifest = files(&dir).into_iter().find(|f| f.ends_with(".manifest.json")).unwrap();
    let m: Value = serde_json::from_slice(&std::fs::read(dir.join(manifest)).unwrap()).unwrap();
    assert_eq!(m["rows"], 33, "{m:#}");
    assert_eq!(m["bucket"]["labels"][0][0], "tenant", "{m:#}");
    assert_eq!(m["columns"][0]["name"], "id", "{m:#}");
    assert_eq!(m["columns"][4]["generated"], true, "{m:#}");

    // pyarrow (pinned, `tests/readers/`) reads each object as the rows the census finds in it.
    let census_now = census(&p);
    let script = common::repo_root().join("tests/readers/read_parquet.sh");
    for f in files(&dir).iter().filter(|f| f.ends_with(".parquet")) {
        let (out, stdout, stderr) = run(std::process::Command::new("bash").arg(&script).arg(dir.join(f)));
        assert!(out.status.success(), "{stderr}");
        let (schema, rows): (Vec<&str>, Vec<&str>) = stdout.lines().partition(|l| l.starts_with("# "));
        let mut rows: Vec<String> = rows.into_iter().map(str::to_string).collect();
        rows.sort();
        let place = format!("archive:{}", f.strip_suffix(".parquet").unwrap());
        let want: Vec<String> = census_now
            .iter()
            .filter(|(_, places)| places == &&vec![place.clone()])
            .map(|(r, _)| r.clone())
            .collect();
        assert_eq!(rows.len(), 33, "{f}");
        assert_eq!(rows, want, "{f}");
        assert_eq!(schema[0], "# id int64 bigint", "{f}");
        assert_eq!(schema[4], "# len int32 integer", "{f}");
    }

    // The next scan lists them as archived, with their tenant; the plan keeps them.
    let report = ok_pass(&cfg, NOW, &["--dry-run"]);
    let archived: Vec<&Value> = report["segments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["tier"] == "archived")
        .collect();
    assert_eq!(archived.len(), ARCHIVED_DAYS as usize * 2, "{report:#}");
    assert!(archived.iter().all(|s| s["action"] == "keep"), "{report:#}");
    let first = archived[0]["name"].as_str().unwrap();
    assert!(
        first.starts_with("2026-01-01T00:00Z/tenant-1@20260112T000000"),
        "{report:#}"
    );

    // Restored: the table is exactly as it was, ids and generated columns included; the archive is empty.
    let names = archived_names(&cfg);
    let (status, out) = restore(&cfg, &names, None);
    assert_eq!(status.code(), Some(0), "{out}");
    assert!(
        out.contains(&format!("restored {first} from the archive (33 rows")),
        "{out}"
    );
    assert_eq!(p.checksum(), original, "restored exactly");
    assert!(files(&dir).is_empty(), "{:?}", files(&dir));
    assert!(p.db.unsettled().is_empty(), "{:?}", p.db.unsettled());
}

#[test]
fn rows_written_into_a_bucket_after_its_archive_was_taken_are_never_deleted_unarchived() {
    let p = Plain::new();
    let cfg = config(&p, ARCHIVE);
    // The process dies with the first bucket's manifest written, before its staging table is dropped.
    let (status, _, stderr) = pass(&cfg, NOW, &[], Some("pg-archive:manifest"));
    assert_eq!(status.signal(), Some(libc::SIGABRT), "{stderr}");
    // A late row lands in that bucket of the table.
    p.db.sql(async |c| {
        c.batch_execute(
            "INSERT INTO events (ts, tenant, payload) VALUES ('2026-01-01 23:59:00+00', 'tenant-0', 'late')",
        )
        .await
        .unwrap()
    });
    // The verified object holds exactly the staged rows: the archive is finished (the staging table dropped), the
    // late row stays in the table, and the pass's plan archives its bucket again, late row alone, under another key.
    let report = ok_pass(&cfg, NOW, &[]);
    let settled_rows = report["recovery"]["settled"].as_array().unwrap();
    assert!(
        settled_rows[0]["reason"]
            .as_str()
            .unwrap()
            .contains("staging table dropped"),
        "{report:#}"
    );
    let late = "2026-01-01 23:59:00+00|tenant-0|late";
    let census = census(&p);
    assert_eq!(census.len(), TIMED + 3);
    assert!(census.values().all(|places| places.len() == 1), "{census:?}");
    let late_place = &census[late][0];
    assert!(late_place.starts_with("archive:"), "{late_place}");
    let others: Vec<&String> = census
        .iter()
        .filter(|(r, _)| r.starts_with("2026-01-01") && r.contains("|tenant-0|"))
        .map(|(_, places)| &places[0])
        .filter(|place| *place != late_place)
        .collect();
    assert_eq!(others.len(), 33, "the bucket's first rows in their own object");
    assert!(others.iter().all(|o| o.starts_with("archive:")), "{others:?}");
    let names = archived_names(&cfg);
    let day1: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("2026-01-01T00:00Z/tenant-0@"))
        .collect();
    assert_eq!(day1.len(), 2, "the bucket archived twice: {names:?}");
}

#[test]
fn at_every_crash_point_of_a_bucket_archive_every_row_stays_recoverable_and_the_next_pass_settles_it() {
    let points = retention::store::postgres::BUCKET_ARCHIVE_CRASH_POINTS.iter().chain(
        retention::store::postgres::ARCHIVE_CRASH_POINTS
            .iter()
            .skip_while(|p| **p != "pg-archive:copied"),
    );
    for point in points {
        let p = Plain::new();
        let original = p.checksum();
        let cfg = config(&p, ARCHIVE);
        let (status, report, stderr) = pass(&cfg, NOW, &[], Some(point));
        assert_eq!(status.signal(), Some(libc::SIGABRT), "{point}: {report:#}\n{stderr}");
        let census = census(&p);
        assert_eq!(census.len(), TIMED + 2, "{point}: every row in a recoverable place");
        let report = ok_pass(&cfg, NOW, &[]);
        // Before the manifest: rolled back; with it: finished; after the drop: nothing to settle.
        let want = match *point {
            "pg-archive:manifest" => Some("staging table dropped"),
            "pg-archive:dropped" => None,
            _ => Some("the rows moved back into the table"),
        };
        let settled_now = report["recovery"]["settled"].as_array().map_or(0, Vec::len);
        match want {
            Some(w) => {
                assert_eq!(settled_now, 1, "{point}: {report:#}");
                assert!(
                    report["recovery"]["settled"][0]["reason"].as_str().unwrap().contains(w),
                    "{point}: {report:#}"
                );
            }
            None => assert_eq!(settled_now, 0, "{point}: {report:#}"),
        }
        settled(&p, &(0..TENANTS).collect::<Vec<_>>());
        let (status, out) = restore(&cfg, &archived_names(&cfg), None);
        assert_eq!(status.code(), Some(0), "{point}: {out}");
        assert_eq!(p.checksum(), original, "{point}");
    }
}

#[test]
fn at_every_crash_point_of_a_bucket_restore_every_row_stays_recoverable_and_the_next_pass_settles_it() {
    for point in retention::store::postgres::BUCKET_RESTORE_POINTS {
        let p = Plain::new();
        let original = p.checksum();
        let cfg = config(&p, ARCHIVE);
        ok_pass(&cfg, NOW, &[]);
        let names = archived_names(&cfg);
        let (status, out) = restore(&cfg, &names[..1], Some(point));
        assert_eq!(status.signal(), Some(libc::SIGABRT), "{point}: {out}");
        assert_eq!(census(&p).len(), TIMED + 2, "{point}");
        // A pass that keeps everything settles the restore: the bucket's rows in the table only, its objects gone.
        ok_pass(&config(&p, ""), NOW, &[]);
        let census = census(&p);
        assert!(census.values().all(|places| places.len() == 1), "{point}");
        assert!(p.db.unsettled().is_empty(), "{point}: {:?}", p.db.unsettled());
        assert_eq!(archived_names(&cfg), names[1..], "{point}");
        let (status, out) = restore(&cfg, &names[1..], None);
        assert_eq!(status.code(), Some(0), "{point}: {out}");
        assert_eq!(p.checksum(), original, "{point}");
    }
}
