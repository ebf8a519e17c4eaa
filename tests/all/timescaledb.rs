//! A TimescaleDB hypertable as a dataset, through the real binary against a real TimescaleDB (the pglite build of
//! `tests/timescaledb/`, one connection at a time, one shared session: the tests take [`tsdb_server::lock`] and each
//! works in a schema of its own): a segment per chunk; a dry run changes nothing; a pass compresses chunks with
//! TimescaleDB's own compression and drops old ones with `drop_chunks`, every other row untouched; with a grace period
//! old chunks go into the trash (a compressed one decompressed first), a restore attaches them back with identical
//! rows, a later pass purges them; an archive without an archive destination, and a compress without
//! compression enabled are refused whole, saying why; old chunks, compressed or not, are archived as verified Parquet
//! and restored with identical rows; a crash at each step leaves every row in one place and the next pass finishes;
//! and the store conformance checks pass over a hypertable.

use crate::common;
use common::files;

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;

use common::postgres::{ok_pass, pass, trash, trash_names};
use common::tsdb_server;

const NOW: &str = "2026-01-12T00:00:00Z";
/// Two days after [`NOW`]: past the default day of grace of what a pass at `NOW` dropped.
const LATER: &str = "2026-01-14T00:00:00Z";
/// The checksum of no rows.
const EMPTY: &str = "d41d8cd98f00b204e9800998ecf8427e";
/// Days 1 to 4 are dropped, 5 to 8 compressed, 9 and 10 kept.
const PLAN: &str = "compress_after_days = 3, drop_after_days = 7";

/// A hypertable `<schema>.events` of 10 daily chunks of 24 rows, in a schema of its own; compression enabled or not.
struct Hyper {
    rt: tokio::runtime::Runtime,
    url: String,
    schema: String,
    dir: tempfile::TempDir,
    _lock: std::sync::MutexGuard<'static, ()>,
}

impl Hyper {
    fn new(compression: bool) -> Hyper {
        let lock = tsdb_server::lock();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let url = tsdb_server::server();
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        let h = Hyper {
            rt,
            url,
            schema,
            dir: tempfile::tempdir().unwrap(),
            _lock: lock,
        };
        let s = h.schema.clone();
        let compress = if compression {
            format!("ALTER TABLE {s}.events SET (timescaledb.compress, timescaledb.compress_segmentby = 'device');")
        } else {
            String::new()
        };
        h.sql(&format!(
            "CREATE SCHEMA {s}; CREATE TABLE {s}.events (ts timestamptz NOT NULL, device text NOT NULL, v float8); \
             SELECT create_hypertable('{s}.events', by_range('ts', INTERVAL '1 day')); \
             INSERT INTO {s}.events SELECT '2026-01-01'::timestamptz + i * interval '1 hour', 'd' || (i % 3), i \
             FROM generate_series(0, 10 * 24 - 1) i; ANALYZE {s}.events; {compress}"
        ));
        h
    }

    /// Runs statements on a connection of its own, closed before returning (the server takes one at a time).
    fn sql(&self, q: &str) {
        let url = self.url.clone();
        let q = q.to_string();
        self.rt.block_on(async move {
            let c = connect(&url).await;
            c.batch_execute(&q).await.unwrap_or_else(|e| panic!("{q}: {e:?}"));
        });
    }

    fn query_strings(&self, q: &str) -> Vec<String> {
        let url = self.url.clone();
        let q = q.to_string();
        self.rt.block_on(async move {
            let c = connect(&url).await;
            c.query(&q, &[])
                .await
                .unwrap_or_else(|e| panic!("{q}: {e:?}"))
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect()
        })
    }

    /// A checksum of the rows of days `from..=to`, whichever chunk (compressed or not) holds them.
    fn checksum(&self, from: u32, to: u32) -> String {
        self.query_strings(&format!(
            "SELECT md5(coalesce(string_agg(format('%s|%s|%s', ts, device, v), ',' ORDER BY ts, device), '')) \
             FROM {}.events WHERE ts >= '2026-01-{from:02}' AND ts < '2026-01-{:02}'",
            self.schema,
            to + 1
        ))
        .remove(0)
    }

    /// The chunks now, oldest first: `<day> compressed|hot`.
    fn chunks(&self) -> Vec<String> {
        self.query_strings(&format!(
            "SELECT to_char(range_start, 'DD') || CASE WHEN is_compressed THEN ' compressed' ELSE ' hot' END \
             FROM timescaledb_information.chunks WHERE hypertable_schema = '{}' AND hypertable_name = 'events' \
             ORDER BY range_start",
            self.schema
        ))
    }

    fn config(&self, params: &str, extra: &str) -> PathBuf {
        let pw = self.dir.path().join("password");
        std::fs::write(&pw, "any\n").unwrap();
        let p = self.dir.path().join("retention.toml");
        std::fs::write(
            &p,
            format!(
                "plugin_dir = \"{}\"\n[service]\nstate_dir = \"{}\"\n[[dataset]]\nname = \"events\"\n\
                 plugin = \"age_tiering\"\nparams = {{ {params} }}\n[dataset.guard]\nmax_drop_bytes_fraction = 1.0\n\
                 max_drop_segments_fraction = 1.0\n[dataset.postgres]\nurl = \"{}\"\npassword_file = \"{}\"\n\
                 schema = \"{}\"\ntable = \"events\"\n{extra}\n",
                common::plugin_dir().display(),
                self.dir.path().join("state").display(),
                self.url,
                pw.display(),
                self.schema
            ),
        )
        .unwrap();
        p
    }
}

impl Drop for Hyper {
    fn drop(&mut self) {
        // The server's one session is everyone's: leave it as found.
        let url = self.url.clone();
        let q = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema);
        self.rt.block_on(async move {
            let c = connect(&url).await;
            let _ = c.batch_execute(&q).await;
        });
    }
}

/// A client of the server (any password: the store's config never holds one), with the statements earlier clients
/// left in the shared session deallocated (tokio-postgres names its statements s0, s1, ... in each process).
async fn connect(url: &str) -> tokio_postgres::Client {
    let c = common::postgres::connect(&url.replacen("postgres@", "postgres:any@", 1)).await;
    c.batch_execute("DEALLOCATE ALL").await.unwrap();
    c
}

/// The chunks after a pass of [`PLAN`].
fn planned() -> Vec<String> {
    let mut want: Vec<String> = (5..=8).map(|d| format!("{d:02} compressed")).collect();
    want.extend(["09 hot".to_string(), "10 hot".to_string()]);
    want
}

#[test]
fn a_hypertable_is_planned_chunk_by_chunk_and_a_dry_run_changes_nothing() {
    let h = Hyper::new(true);
    let before = h.checksum(1, 10);
    let report = ok_pass(&h.config(PLAN, "trash_grace_secs = 0"), NOW, &["--dry-run"]);
    assert_eq!(h.checksum(1, 10), before, "a dry run changes nothing");
    assert_eq!(h.chunks().len(), 10);
    let segs = report["segments"].as_array().unwrap();
    assert_eq!(segs.len(), 10, "a segment per chunk: {report:#}");
    let actions: Vec<&str> = segs.iter().map(|s| s["action"].as_str().unwrap()).collect();
    let mut want = vec!["drop"; 4];
    want.extend(["compress"; 4]);
    want.extend(["keep"; 2]);
    assert_eq!(actions, want, "oldest first: {report:#}");
    assert!(
        segs.iter()
            .all(|s| s["name"].as_str().unwrap().ends_with("_chunk") && s["bytes"].as_u64().unwrap() > 0),
        "{report:#}"
    );
}

#[test]
fn a_pass_compresses_chunks_with_timescaledbs_compression_and_drops_old_ones_leaving_every_other_row_as_it_was() {
    let h = Hyper::new(true);
    let kept = h.checksum(5, 10);
    let cfg = h.config(PLAN, "trash_grace_secs = 0");
    let report = ok_pass(&cfg, NOW, &[]);
    assert_eq!(report["stats"]["dropped"]["segments"], 4, "{report:#}");
    assert_eq!(report["stats"]["compressed"]["segments"], 4, "{report:#}");
    assert_eq!(h.chunks(), planned());
    assert_eq!(
        h.checksum(5, 10),
        kept,
        "the compressed and kept rows are exactly as they were"
    );
    assert_eq!(h.checksum(1, 4), EMPTY, "days 1 to 4 are gone");
    // The next pass sees the compressed chunks as tier compressed and has nothing to do.
    let report = ok_pass(&cfg, NOW, &[]);
    let tiers: Vec<&str> = report["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["tier"].as_str().unwrap())
        .collect();
    assert_eq!(
        tiers,
        ["compressed", "compressed", "compressed", "compressed", "hot", "hot"],
        "{report:#}"
    );
    assert_eq!(report["stats"]["compressed"]["segments"], 0, "{report:#}");
    assert_eq!(report["stats"]["dropped"]["segments"], 0, "{report:#}");
}

#[test]
fn an_archive_without_an_archive_destination_or_a_compress_without_compression_is_refused_whole_saying_why() {
    let h = Hyper::new(false);
    let before = h.checksum(1, 10);
    for (params, extra, want) in [
        (
            "archive_after_days = 7",
            "trash_grace_secs = 0",
            "the dataset has no archive destination: set archive_url",
        ),
        (
            "compress_after_days = 3",
            "trash_grace_secs = 0",
            "compression is not enabled on this hypertable",
        ),
    ] {
        let (status, report, stderr) = pass(&h.config(params, extra), NOW, &[], None);
        assert_ne!(status.code(), Some(0), "{report:#}");
        let all = format!("{}{report}{stderr}", report["error"].as_str().unwrap_or_default());
        assert!(all.contains(want), "want {want:?} in {all}");
        assert_eq!(h.checksum(1, 10), before, "nothing applied");
        assert_eq!(h.chunks().len(), 10);
    }
}

#[test]
fn a_crash_after_each_step_leaves_the_rows_in_place_and_the_next_pass_finishes() {
    for point in retention::store::postgres::CHUNK_CRASH_POINTS {
        let h = Hyper::new(true);
        let kept = h.checksum(5, 10);
        let cfg = h.config(PLAN, "trash_grace_secs = 0");
        let (status, report, stderr) = pass(&cfg, NOW, &[], Some(point));
        assert!(
            status.signal().is_some() || status.code() != Some(0),
            "{point}: the process died there: {report:#}\n{stderr}"
        );
        assert_eq!(h.checksum(5, 10), kept, "{point}");
        ok_pass(&cfg, NOW, &[]);
        assert_eq!(h.chunks(), planned(), "{point}");
        assert_eq!(h.checksum(5, 10), kept, "{point}");
    }
}

#[test]
fn layout_hypertable_on_a_table_that_is_not_one_and_buckets_on_a_hypertable_are_refused_as_config_errors() {
    let h = Hyper::new(true);
    h.sql(&format!("CREATE TABLE {}.plain (ts timestamptz NOT NULL)", h.schema));
    let cfg = h.config("", "layout = \"hypertable\"");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("table = \"events\"", "table = \"plain\"");
    std::fs::write(&cfg, text).unwrap();
    let (out, stdout, stderr) = common::run(common::retention().args(["run", "--dry-run", "--config"]).arg(&cfg));
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("is not a TimescaleDB hypertable"), "{stderr}");
    // time_column on a hypertable is refused, not ignored.
    let cfg = h.config("", "time_column = \"ts\"");
    let (out, stdout, stderr) = common::run(common::retention().args(["run", "--dry-run", "--config"]).arg(&cfg));
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("its segments are its chunks, not time buckets"),
        "{stderr}"
    );
}

/// The trashed chunks of the dataset, restored one by one.
fn restore_all(cfg: &std::path::Path) {
    for name in trash_names(cfg) {
        let (code, _, stderr) = trash(cfg, &["restore", "--dataset", "events", &name]);
        assert_eq!(code, 0, "{name}: {stderr}");
    }
}

#[test]
fn a_pass_drops_old_chunks_into_the_trash_a_restore_attaches_them_back_and_a_later_pass_purges_them() {
    let h = Hyper::new(true);
    let original = h.checksum(1, 10);
    let cfg = h.config("drop_after_days = 7", "");
    let report = ok_pass(&cfg, NOW, &[]);
    assert_eq!(report["stats"]["trashed"]["segments"], 4, "{report:#}");
    let left: Vec<String> = (5..=10).map(|d| format!("{d:02} hot")).collect();
    assert_eq!(h.chunks(), left);
    assert_eq!(h.checksum(1, 4), EMPTY, "out of the hypertable");
    let names = trash_names(&cfg);
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(names.iter().all(|n| n.ends_with("_chunk")), "{names:?}");
    restore_all(&cfg);
    assert!(trash_names(&cfg).is_empty());
    assert_eq!(h.chunks().len(), 10);
    assert_eq!(h.checksum(1, 10), original, "attached back with identical rows");
    // Dropped again, then purged by a pass after the grace period (which trashes days 5 and 6 in turn).
    ok_pass(&cfg, NOW, &[]);
    let report = ok_pass(&cfg, LATER, &[]);
    assert_eq!(report["stats"]["purged"]["segments"], 4, "{report:#}");
    assert_eq!(trash_names(&cfg).len(), 2);
}

#[test]
fn a_compressed_chunk_is_decompressed_into_the_trash_and_restored_with_identical_rows() {
    let h = Hyper::new(true);
    ok_pass(&h.config("compress_after_days = 3", "trash_grace_secs = 0"), NOW, &[]);
    assert_eq!(h.chunks().iter().filter(|c| c.ends_with("compressed")).count(), 8);
    let original = h.checksum(1, 10);
    let cfg = h.config("drop_after_days = 7", "");
    let report = ok_pass(&cfg, NOW, &[]);
    assert_eq!(report["stats"]["trashed"]["segments"], 4, "{report:#}");
    let mut left: Vec<String> = (5..=8).map(|d| format!("{d:02} compressed")).collect();
    left.extend(["09 hot".to_string(), "10 hot".to_string()]);
    assert_eq!(h.chunks(), left);
    assert_eq!(h.checksum(1, 4), EMPTY, "out of the hypertable");
    assert_eq!(trash_names(&cfg).len(), 4);
    restore_all(&cfg);
    assert_eq!(
        h.checksum(1, 10),
        original,
        "attached back (uncompressed) with identical rows"
    );
    assert_eq!(h.chunks()[..4], ["01 hot", "02 hot", "03 hot", "04 hot"]);
}

#[test]
fn a_crash_at_each_step_of_a_drop_into_the_trash_leaves_every_row_in_one_place_and_the_next_pass_finishes() {
    for (compressed, point) in [false, true].into_iter().flat_map(|c| {
        retention::store::postgres::CHUNK_TRASH_CRASH_POINTS
            .iter()
            .map(move |p| (c, p))
    }) {
        let h = Hyper::new(true);
        if compressed {
            ok_pass(&h.config("compress_after_days = 9", "trash_grace_secs = 0"), NOW, &[]);
        }
        let original = h.checksum(1, 10);
        let cfg = h.config("drop_after_days = 7", "");
        let (status, report, stderr) = pass(&cfg, NOW, &[], Some(point));
        assert!(
            status.signal().is_some() || status.code() != Some(0),
            "{point}: the process died there: {report:#}\n{stderr}"
        );
        ok_pass(&cfg, NOW, &[]);
        let left: Vec<String> = (5..=10).map(|d| format!("{d:02} hot")).collect();
        assert_eq!(h.chunks(), left, "{point}");
        assert_eq!(trash_names(&cfg).len(), 4, "{point}");
        restore_all(&cfg);
        assert_eq!(h.checksum(1, 10), original, "{point}: every row back, once");
    }
}

/// The archive directory of `h`'s dataset, and its `archive_url` line.
fn archive_of(h: &Hyper) -> (PathBuf, String) {
    let dir = h.dir.path().join("archive");
    std::fs::create_dir_all(&dir).unwrap();
    let line = format!("archive_url = \"file://{}\"", dir.display());
    (dir, line)
}

/// The rows (`ts|device|v`) of every archived chunk whose manifest is there and whose Parquet reads back as it says.
fn archived_rows(dir: &std::path::Path) -> Vec<String> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, TimestampMicrosecondType};
    use sha2::Digest;
    let mut out = Vec::new();
    for f in files(dir) {
        let Some(stem) = f.strip_suffix(".manifest.json") else {
            continue;
        };
        let m: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join(&f)).unwrap()).unwrap();
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
        for batch in reader {
            let batch = batch.unwrap();
            let ts = batch.column(0).as_primitive::<TimestampMicrosecondType>();
            let device = batch.column(1).as_string::<i32>();
            let v = batch.column(2).as_primitive::<Float64Type>();
            for i in 0..batch.num_rows() {
                let t = chrono::DateTime::from_timestamp_micros(ts.value(i)).unwrap();
                out.push(format!(
                    "{}+00|{}|{}",
                    t.format("%Y-%m-%d %H:%M:%S"),
                    device.value(i),
                    v.value(i)
                ));
            }
        }
    }
    out.sort();
    out
}

impl Hyper {
    /// The rows of days `from..=to` as `ts|device|v`, sorted.
    fn rows(&self, from: u32, to: u32) -> Vec<String> {
        let mut rows = self.query_strings(&format!(
            "SELECT format('%s|%s|%s', ts, device, v) FROM {}.events WHERE ts >= '2026-01-{from:02}' \
             AND ts < '2026-01-{:02}'",
            self.schema,
            to + 1
        ));
        rows.sort();
        rows
    }

    /// The chunks of the hypertable carrying an intent of the engine's.
    fn marked(&self) -> Vec<String> {
        self.query_strings(&format!(
            "SELECT chunk_name::text FROM timescaledb_information.chunks WHERE hypertable_schema = '{}' \
             AND starts_with(obj_description(format('%I.%I', chunk_schema, chunk_name)::regclass, 'pg_class'), \
             'retention:')",
            self.schema
        ))
    }
}

/// The archived segments' names in a dry run's scan.
fn archived_names(cfg: &std::path::Path) -> Vec<String> {
    let report = ok_pass(cfg, NOW, &["--dry-run"]);
    report["segments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["tier"] == "archived")
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

/// A hypertable whose chunks of days 1 and 2 are compressed (the rest hot), and its archiving config: days 1 to 4
/// archived (two compressed chunks, two hot), the later ones kept.
fn half_compressed() -> (Hyper, PathBuf, PathBuf) {
    let h = Hyper::new(true);
    ok_pass(&h.config("compress_after_days = 9", "trash_grace_secs = 0"), NOW, &[]);
    assert_eq!(h.chunks()[..3], ["01 compressed", "02 compressed", "03 hot"]);
    let (dir, line) = archive_of(&h);
    let cfg = h.config("archive_after_days = 7", &line);
    (h, dir, cfg)
}

#[test]
fn old_chunks_compressed_or_not_are_archived_as_verified_parquet_and_a_restore_puts_identical_rows_back() {
    let (h, dir, cfg) = half_compressed();
    let original = h.checksum(1, 10);
    let old = h.rows(1, 4);
    assert_eq!(old.len(), 4 * 24);
    let report = ok_pass(&cfg, NOW, &[]);
    assert_eq!(report["stats"]["archived"]["segments"], 4, "{report:#}");
    let left: Vec<String> = (5..=10).map(|d| format!("{d:02} hot")).collect();
    assert_eq!(h.chunks(), left, "the archived chunks are dropped");
    assert_eq!(h.checksum(1, 4), EMPTY);
    assert_eq!(
        archived_rows(&dir),
        old,
        "every row of days 1 to 4 in a verified object, once"
    );
    assert_eq!(files(&dir).len(), 8, "a Parquet and a manifest each: {:?}", files(&dir));
    assert!(h.marked().is_empty(), "{:?}", h.marked());

    // The next scan lists them as archived; the plan keeps them.
    let names = archived_names(&cfg);
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(names.iter().all(|n| n.ends_with("_chunk")), "{names:?}");

    // Restored (into chunks of the hypertable, uncompressed): every row exactly as it was, the archive empty.
    let mut cmd = common::retention();
    cmd.args(["archive", "restore", "--dataset", "events", "--config"])
        .arg(&cfg)
        .args(&names);
    let (out, stdout, stderr) = common::run(&mut cmd);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("from the archive (24 rows"), "{stdout}");
    assert_eq!(h.checksum(1, 10), original, "restored exactly");
    assert_eq!(h.chunks().len(), 10);
    assert!(files(&dir).is_empty(), "{:?}", files(&dir));
    assert!(h.marked().is_empty(), "{:?}", h.marked());
}

#[test]
fn at_every_crash_point_of_a_chunk_archive_every_row_stays_recoverable_and_the_next_pass_settles_it() {
    let points = retention::store::postgres::CHUNK_ARCHIVE_CRASH_POINTS.iter().chain(
        retention::store::postgres::ARCHIVE_CRASH_POINTS
            .iter()
            .skip_while(|p| **p != "pg-archive:copied"),
    );
    for point in points {
        let (h, dir, cfg) = half_compressed();
        let old = h.rows(1, 4);
        let (status, report, stderr) = pass(&cfg, NOW, &[], Some(point));
        assert_eq!(status.signal(), Some(libc::SIGABRT), "{point}: {report:#}\n{stderr}");
        // Every row of days 1 to 4 is in the hypertable or a verified object (both, before the commit).
        let mut somewhere = h.rows(1, 4);
        somewhere.extend(archived_rows(&dir));
        somewhere.sort();
        somewhere.dedup();
        assert_eq!(somewhere, old, "{point}");
        ok_pass(&cfg, NOW, &[]);
        let left: Vec<String> = (5..=10).map(|d| format!("{d:02} hot")).collect();
        assert_eq!(h.chunks(), left, "{point}");
        assert_eq!(archived_rows(&dir), old, "{point}: each row archived once");
        assert_eq!(files(&dir).len(), 8, "{point}: {:?}", files(&dir));
        assert!(h.marked().is_empty(), "{point}: {:?}", h.marked());
    }
}

#[test]
fn at_every_crash_point_of_a_chunk_restore_every_row_stays_recoverable_and_the_next_pass_settles_it() {
    for point in retention::store::postgres::CHUNK_RESTORE_POINTS {
        let (h, dir, cfg) = half_compressed();
        let original = h.checksum(1, 10);
        let old = h.rows(1, 4);
        ok_pass(&cfg, NOW, &[]);
        let names = archived_names(&cfg);
        let mut cmd = common::retention();
        cmd.args(["archive", "restore", "--dataset", "events", "--config"])
            .arg(&cfg)
            .arg(&names[0])
            .env("RETENTION_CRASH_AT", point);
        let (out, stdout, stderr) = common::run(&mut cmd);
        assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{point}: {stdout}{stderr}");
        // A pass that keeps everything settles the restore: the chunk's rows in the hypertable only.
        let (_, line) = archive_of(&h);
        ok_pass(&h.config("", &line), NOW, &[]);
        assert!(h.marked().is_empty(), "{point}: {:?}", h.marked());
        let mut all = h.rows(1, 4);
        all.extend(archived_rows(&dir));
        all.sort();
        assert_eq!(all, old, "{point}: every row once");
        assert_eq!(archived_names(&cfg), names[1..], "{point}");
        let mut cmd = common::retention();
        cmd.args(["archive", "restore", "--dataset", "events", "--config"])
            .arg(&cfg)
            .args(&names[1..]);
        let (out, stdout, stderr) = common::run(&mut cmd);
        assert_eq!(out.status.code(), Some(0), "{point}: {stdout}{stderr}");
        assert_eq!(h.checksum(1, 10), original, "{point}");
    }
}

#[test]
fn an_archived_chunk_that_expires_is_dropped_with_its_manifest() {
    let (h, dir, _) = half_compressed();
    let (_, line) = archive_of(&h);
    ok_pass(
        &h.config("archive_after_days = 7", &format!("{line}\ntrash_grace_secs = 0")),
        NOW,
        &[],
    );
    assert_eq!(files(&dir).len(), 8);
    // Archived chunks older than 8 days (days 1 to 3) are dropped, objects and manifests; day 4 stays archived.
    let cfg = h.config(
        "archive_after_days = 7, drop_after_days = 8",
        &format!("{line}\ntrash_grace_secs = 0"),
    );
    let report = ok_pass(&cfg, NOW, &[]);
    assert_eq!(report["stats"]["dropped"]["segments"], 3, "{report:#}");
    assert_eq!(files(&dir).len(), 2, "{:?}", files(&dir));
    let rows = archived_rows(&dir);
    assert_eq!(rows.len(), 24);
    assert!(rows.iter().all(|r| r.starts_with("2026-01-04")), "{rows:?}");
    assert_eq!(h.chunks().len(), 6, "the hypertable untouched");
}

/// The store conformance checks over a hypertable: a segment per daily chunk of `<schema>.seg (ts, name, seq,
/// chunk bytea)`, each written segment a day of its own (its rows its content line by line), compression enabled, an
/// archive and a day's grace. The chunks' names are the server's: the harness maps each back to the name it wrote.
/// Failure injection is per process (`RETENTION_FAIL_AT` is read once), so there are no failure points here: the
/// crash tests above abort the real binary at every point of every action instead.
struct TsdbHarness {
    url: String,
    schema: String,
    dir: tempfile::TempDir,
    day: std::sync::atomic::AtomicI64,
    /// Chunk name (without its schema) -> the segment name written into it.
    names: std::sync::Mutex<std::collections::HashMap<String, String>>,
    /// Segment name -> its day.
    days: std::sync::Mutex<std::collections::HashMap<String, i64>>,
}

impl TsdbHarness {
    fn config(&self) -> retention::store::postgres::PostgresConfig {
        let pw = self.dir.path().join("password");
        std::fs::write(&pw, "any\n").unwrap();
        let archive = self.dir.path().join("archive");
        std::fs::create_dir_all(&archive).unwrap();
        let raw: retention::store::postgres::RawPostgres = toml::from_str(&format!(
            "url = \"{}\"\npassword_file = \"{}\"\nschema = \"{}\"\ntable = \"seg\"\narchive_url = \"file://{}\"\n",
            self.url,
            pw.display(),
            self.schema,
            archive.display()
        ))
        .unwrap();
        retention::store::postgres::PostgresConfig::from_raw(raw, "dataset[0].postgres", std::path::Path::new("/"))
            .unwrap()
    }

    /// Runs `f` on a connection of its own, closed before returning (the server takes one at a time).
    async fn with<T>(&self, f: impl AsyncFnOnce(&tokio_postgres::Client) -> T) -> T {
        let c = connect(&self.url).await;
        f(&c).await
    }

    async fn insert(&self, c: &tokio_postgres::Client, name: &str, start_ms: i64, content: &[u8]) {
        let start = chrono::DateTime::from_timestamp_millis(start_ms).unwrap();
        for (seq, chunk) in content.split_inclusive(|b| *b == b'\n').enumerate() {
            let ts = start + chrono::TimeDelta::microseconds(seq as i64);
            c.execute(
                &format!("INSERT INTO {}.seg VALUES ($1, $2, $3, $4)", self.schema),
                &[&ts, &name, &(seq as i32), &chunk],
            )
            .await
            .unwrap();
        }
    }

    /// The chunk holding segment `name`'s rows (schema-qualified, quoted).
    async fn chunk_of(&self, c: &tokio_postgres::Client, name: &str) -> String {
        c.query_one(
            &format!(
                "SELECT tableoid::regclass::text FROM {}.seg WHERE name = $1 LIMIT 1",
                self.schema
            ),
            &[&name],
        )
        .await
        .unwrap()
        .get(0)
    }

    /// The rows of `table` by segment name, each as its content.
    async fn rows_by_name(c: &tokio_postgres::Client, table: &str) -> Vec<(String, Vec<u8>)> {
        let mut out: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
        for r in c
            .query(&format!("SELECT name, chunk FROM {table} ORDER BY name, seq"), &[])
            .await
            .unwrap()
        {
            out.entry(r.get(0)).or_default().extend(r.get::<_, Vec<u8>>(1));
        }
        out.into_iter().collect()
    }
}

/// The contents a Parquet of `seg` holds, by segment name (columns ts, name, seq, chunk).
fn parquet_contents(bytes: Vec<u8>) -> Vec<(String, Vec<u8>)> {
    use arrow_array::cast::AsArray;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
        .unwrap()
        .build()
        .unwrap();
    let mut rows: std::collections::BTreeMap<String, Vec<(i32, Vec<u8>)>> = Default::default();
    for batch in reader {
        let batch = batch.unwrap();
        let name = batch.column(1).as_string::<i32>();
        let seq = batch.column(2).as_primitive::<arrow_array::types::Int32Type>();
        let chunk = batch.column(3).as_binary::<i32>();
        for i in 0..batch.num_rows() {
            rows.entry(name.value(i).to_string())
                .or_default()
                .push((seq.value(i), chunk.value(i).to_vec()));
        }
    }
    rows.into_iter()
        .map(|(n, mut r)| {
            r.sort();
            (n, r.into_iter().flat_map(|(_, c)| c).collect())
        })
        .collect()
}

#[async_trait::async_trait]
impl retention::store::conformance::Harness for TsdbHarness {
    async fn fresh(&mut self) {
        let (old, schema) = (self.schema.clone(), format!("t_{}", uuid::Uuid::new_v4().simple()));
        self.with(async |c| {
            c.batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {old} CASCADE; CREATE SCHEMA {schema}; \
                 CREATE TABLE {schema}.seg (ts timestamptz NOT NULL, name text NOT NULL, seq int NOT NULL, chunk bytea); \
                 SELECT create_hypertable('{schema}.seg', by_range('ts', INTERVAL '1 day')); \
                 ALTER TABLE {schema}.seg SET (timescaledb.compress)"
            ))
            .await
            .unwrap()
        })
        .await;
        self.schema = schema;
        self.dir = tempfile::tempdir().unwrap();
        self.names.lock().unwrap().clear();
        self.days.lock().unwrap().clear();
    }

    async fn open(&self) -> std::sync::Arc<dyn retention::store::Store> {
        std::sync::Arc::new(
            retention::store::postgres::PostgresStore::open(self.config())
                .await
                .unwrap(),
        )
    }

    async fn write(&self, name: &str, content: &[u8]) {
        // A day of its own; a name written again, its day again (its chunk's range: the place its trash entry had).
        let day = *self
            .days
            .lock()
            .unwrap()
            .entry(name.to_string())
            .or_insert_with(|| self.day.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let start_ms = 1_767_225_600_000 + day * 86_400_000;
        let chunk = self
            .with(async |c| {
                self.insert(c, name, start_ms, content).await;
                self.chunk_of(c, name).await
            })
            .await;
        let bare = chunk.rsplit('.').next().unwrap().to_string();
        self.names.lock().unwrap().insert(bare, name.to_string());
    }

    async fn change(&self, name: &str) {
        self.with(async |c| {
            // The chunk rewritten (a new relfilenode, as a recompress or VACUUM FULL gives), its content a line longer.
            let chunk = self.chunk_of(c, name).await;
            let start_ms: i64 = c
                .query_one(
                    &format!("SELECT (extract(epoch FROM min(ts)) * 1000)::bigint FROM {chunk}"),
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            let mut content = Self::rows_by_name(c, &chunk).await.remove(0).1;
            content.extend_from_slice(b"one more line\n");
            c.batch_execute(&format!("TRUNCATE {chunk}")).await.unwrap();
            self.insert(c, name, start_ms, &content).await;
        })
        .await
    }

    async fn census(&self) -> Vec<(String, retention::store::conformance::Place, Vec<u8>)> {
        use retention::segment::Tier;
        use retention::store::conformance::Place;
        let mut out = Vec::new();
        self.with(async |c| {
            let tables = c
                .query(
                    "SELECT format('%I.%I', ch.chunk_schema, ch.chunk_name), ch.is_compressed \
                     FROM timescaledb_information.chunks ch WHERE ch.hypertable_schema = $1",
                    &[&self.schema],
                )
                .await
                .unwrap();
            for t in tables {
                let (table, compressed): (String, bool) = (t.get(0), t.get(1));
                let place = Place::Tier(if compressed { Tier::Compressed } else { Tier::Hot });
                for (n, content) in Self::rows_by_name(c, &table).await {
                    out.push((n, place, content));
                }
            }
            let trashed = c
                .query(
                    "SELECT format('%I.%I', n.nspname, k.relname) FROM pg_class k \
                     JOIN pg_namespace n ON n.oid = k.relnamespace \
                     WHERE k.relkind = 'r' AND starts_with(n.nspname, '_retention_trash_') \
                       AND starts_with(obj_description(k.oid, 'pg_class'), 'retention:') \
                       AND obj_description(k.oid, 'pg_class') LIKE '%' || $1 || '%'",
                    &[&self.schema],
                )
                .await
                .unwrap();
            for t in trashed {
                for (n, content) in Self::rows_by_name(c, &t.get::<_, String>(0)).await {
                    out.push((n, Place::Trash, content));
                }
            }
        })
        .await;
        let archive = self.dir.path().join("archive");
        let mut bases = vec![(archive.join(&self.schema).join("seg"), Place::Tier(Tier::Archived))];
        for b in std::fs::read_dir(archive.join(".retention-trash"))
            .into_iter()
            .flatten()
        {
            bases.push((b.unwrap().path().join(&self.schema).join("seg"), Place::Trash));
        }
        for (base, place) in bases {
            for e in std::fs::read_dir(&base).into_iter().flatten() {
                let path = e.unwrap().path();
                let Some(stem) = path.to_str().and_then(|p| p.strip_suffix(".manifest.json")) else {
                    continue;
                };
                let bytes = std::fs::read(format!("{stem}.parquet")).unwrap();
                for (n, content) in parquet_contents(bytes) {
                    out.push((n, place, content));
                }
            }
        }
        out
    }

    fn failure_points(&self) -> Vec<&'static str> {
        Vec::new()
    }

    fn fail_at(&self, _point: &'static str) -> Box<dyn std::any::Any + Send> {
        Box::new(())
    }

    fn drops_to_trash(&self) -> bool {
        true
    }

    fn sizes_are_content_lengths(&self) -> bool {
        false
    }

    /// `_timescaledb_internal._hyper_1_2_chunk` -> the name written into that chunk.
    fn written_name(&self, shown: &str) -> String {
        let bare = shown.rsplit('.').next().unwrap_or(shown);
        self.names
            .lock()
            .unwrap()
            .get(bare)
            .cloned()
            .unwrap_or_else(|| shown.to_string())
    }
}

#[test]
fn the_postgres_store_over_a_timescaledb_hypertable_passes_the_store_conformance_checks() {
    // Held for the whole run (the harness is sent between threads; the guard cannot be).
    let _lock = tsdb_server::lock();
    let mut h = TsdbHarness {
        url: tsdb_server::server(),
        schema: format!("t_{}", uuid::Uuid::new_v4().simple()),
        dir: tempfile::tempdir().unwrap(),
        day: std::sync::atomic::AtomicI64::new(0),
        names: Default::default(),
        days: Default::default(),
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        retention::store::conformance::run_all(&mut h).await;
        let schema = h.schema.clone();
        h.with(async |c| {
            c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .await
                .unwrap()
        })
        .await;
    });
}

#[test]
fn a_chunk_archive_failing_after_its_drop_committed_keeps_the_verified_object_its_rows_are_in() {
    let (h, dir, cfg) = half_compressed();
    let old = h.rows(1, 4);
    let mut cmd = common::retention();
    cmd.args(["run", "--json", "--now", NOW, "--config"])
        .arg(&cfg)
        .env("RETENTION_FAIL_AT", "pg-archive:dropped");
    let (out, stdout, stderr) = common::run(&mut cmd);
    assert_ne!(out.status.code(), Some(0), "{stdout}{stderr}");
    // Every chunk's drop committed before the failure: the objects are where the rows are, and stay.
    let mut somewhere = h.rows(1, 4);
    somewhere.extend(archived_rows(&dir));
    somewhere.sort();
    assert_eq!(somewhere, old, "every row once, nothing lost");
    ok_pass(&cfg, NOW, &[]);
    assert_eq!(archived_rows(&dir), old);
    assert!(h.marked().is_empty(), "{:?}", h.marked());
}
