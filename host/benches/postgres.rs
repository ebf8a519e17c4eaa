//! The PostgreSQL store beside what a DBA would script, in one run, against a throwaway PostgreSQL 15 cluster (the
//! tests' own, `tests/all/common/pg_server.rs`; or `RETENTION_TEST_PG_URL`):
//! - archiving a partition of 1,000,000 rows: `retention run` (age_tiering, `archive_after_days`) writing verified
//!   Parquet to a `file://` archive and dropping the partition, against
//!   `psql -c "\copy (SELECT * FROM part) TO STDOUT" | zstd -3 > part.csv.zst` then `psql -c "DROP TABLE part"`
//!   (target: at least 0.8x its throughput); bytes written by both;
//! - a dry run over a table of 1,000 partitions (target: under 1 s);
//! - a dry run over a plain table of 10,000,000 rows in daily buckets, with its time index (target: under 5 s);
//! - dropping a bucket of 1,000,000 rows of a plain table (`trash_grace_secs = 0`, batches of `delete_batch_rows`)
//!   against one `DELETE FROM t WHERE ts < X`: both times and the longest writing transaction of each, seen from the
//!   server (`pg_stat_activity.xact_start` of sessions with a `backend_xid`, polled every 2 ms), target: the longest at most 1/10 of
//!   the single DELETE's, at no more than 2x its total time.
//!
//! Run: `cargo build --release --target wasm32-wasip2 --manifest-path guest-plugins/Cargo.toml &&
//!       cargo bench --bench postgres` (see BENCHMARKS.md). Options: `-- --rows N --reps N --partitions N
//!       --plain-rows N --only archive,partitions,plain,buckets`.

#[path = "../../tests/all/common/pg_server.rs"]
#[allow(dead_code)]
mod pg_server;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

fn sql(url: &str, q: &str) {
    let out = Command::new("/usr/lib/postgresql/15/bin/psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", q])
        .output()
        .expect("run psql");
    assert!(out.status.success(), "{q}: {}", String::from_utf8_lossy(&out.stderr));
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn size_under(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        total += if p.is_dir() {
            size_under(&p)
        } else {
            std::fs::metadata(&p).unwrap().len()
        };
    }
    total
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let rows: u64 = arg("--rows").map_or(1_000_000, |v| v.parse().expect("a number"));
    let reps: usize = arg("--reps").map_or(3, |v| v.parse().expect("a number"));
    let partitions: u32 = arg("--partitions").map_or(1_000, |v| v.parse().expect("a number"));
    let plain_rows: u64 = arg("--plain-rows").map_or(10_000_000, |v| v.parse().expect("a number"));
    let only = arg("--only").unwrap_or_else(|| "archive,partitions,plain,buckets".into());
    let runs = |part: &str| only.split(',').any(|p| p == part);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let plugins = repo.join("guest-plugins/target/wasm32-wasip2/release");
    anyhow::ensure!(
        plugins.join("age_tiering.wasm").is_file(),
        "build the guest plugins first (see BENCHMARKS.md)"
    );
    let bin = env!("CARGO_BIN_EXE_retention");
    let server = pg_server::server();
    let db = format!("bench_{}", std::process::id());
    sql(&format!("{server}/postgres"), &format!("CREATE DATABASE {db}"));
    let url = format!("{server}/{db}");
    let work = tempfile::Builder::new().prefix("retention-bench-pg-").tempdir()?;
    println!("PostgreSQL bench: {rows} rows per partition, {reps} reps, server {server}");

    if runs("archive") {
        bench_archive(&url, work.path(), &plugins, bin, rows, reps)?;
    }
    if runs("partitions") {
        bench_partitions(&url, work.path(), &plugins, bin, partitions, reps)?;
    }
    if runs("plain") {
        bench_plain_scan(&url, work.path(), &plugins, bin, plain_rows, reps)?;
    }
    if runs("buckets") {
        bench_bucket_drop(&url, work.path(), &plugins, bin, rows, reps)?;
    }
    sql(&format!("{server}/postgres"), &format!("DROP DATABASE {db}"));
    Ok(())
}

fn bench_archive(url: &str, work: &Path, plugins: &Path, bin: &str, rows: u64, reps: usize) -> anyhow::Result<()> {
    // A table of events: 2026-01-01 is the partition archived; 2026-01-10 stays (the newest is never dropped).
    sql(
        url,
        "CREATE TABLE events (ts timestamptz NOT NULL, tenant text NOT NULL, status int NOT NULL, payload text) \
         PARTITION BY RANGE (ts); \
         CREATE TABLE events_p20260110 PARTITION OF events FOR VALUES FROM ('2026-01-10') TO ('2026-01-11'); \
         INSERT INTO events VALUES ('2026-01-10 01:00+00', 't', 200, 'x')",
    );
    let fill = |name: &str| {
        sql(
            url,
            &format!(
                "CREATE TABLE {name} PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2026-01-02'); \
                 INSERT INTO {name} SELECT '2026-01-01'::timestamptz + (i * interval '86 ms'), \
                 'tenant-' || (i % 37), 200 + (i % 5), md5(i::text) || ' GET /api/v1/items/' || i || ' ' || \
                 md5((i * 7)::text) FROM generate_series(0, {rows} - 1) i"
            ),
        );
        sql(url, &format!("VACUUM ANALYZE {name}"));
    };
    let archive = work.join("archive");
    std::fs::create_dir_all(&archive)?;
    let config = work.join("retention.toml");
    std::fs::write(
        &config,
        format!(
            "plugin_dir = \"{}\"\n[service]\nstate_dir = \"{}\"\n[[dataset]]\nname = \"events\"\nplugin = \"age_tiering\"\n\
             params = {{ archive_after_days = 7 }}\n[dataset.postgres]\nurl = \"{url}\"\ntable = \"events\"\n\
             archive_url = \"file://{}\"\nstatement_timeout_ms = 600000\n",
            plugins.display(),
            work.join("state").display(),
            archive.display()
        ),
    )?;
    let dump = work.join("part.csv.zst");
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let (mut ours_bytes, mut theirs_bytes) = (0, 0);
    for rep in 0..reps {
        // Ours: a real pass archiving the partition (Parquet written, uploaded to a staging key, read back and
        // compared, copied to its key, manifest written, partition dropped).
        fill("events_p20260101");
        let t = Instant::now();
        let out = Command::new(bin)
            .args(["run", "--now", "2026-01-12T00:00:00Z", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .output()?;
        let s = t.elapsed().as_secs_f64();
        anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        ours_bytes = size_under(&archive);
        ours.push(s);
        // Theirs: the DBA's script, on the same partition re-created.
        fill("events_p20260101");
        let t = Instant::now();
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "set -e; /usr/lib/postgresql/15/bin/psql -X -q '{url}' -c '\\copy (SELECT * FROM events_p20260101) TO \
                 STDOUT' | zstd -q -3 -f -o '{}'; /usr/lib/postgresql/15/bin/psql -X -q '{url}' -c 'DROP TABLE \
                 events_p20260101'",
                dump.display()
            ))
            .status()?;
        let s2 = t.elapsed().as_secs_f64();
        anyhow::ensure!(status.success(), "the DBA's script failed");
        theirs_bytes = std::fs::metadata(&dump)?.len();
        theirs.push(s2);
        println!("  rep {rep}: retention {s:.2} s, psql | zstd -3 + DROP {s2:.2} s");
        std::fs::remove_dir_all(&archive)?;
        std::fs::create_dir_all(&archive)?;
    }
    let (o, t) = (median(ours), median(theirs));
    println!(
        "archive {rows} rows: retention {o:.2} s ({:.0} rows/s, {} bytes Parquet + manifest), psql | zstd -3 + DROP \
         {t:.2} s ({:.0} rows/s, {} bytes CSV.zst): {:.2}x its throughput",
        rows as f64 / o,
        ours_bytes,
        rows as f64 / t,
        theirs_bytes,
        t / o
    );

    Ok(())
}

fn bench_partitions(
    url: &str,
    work: &Path,
    plugins: &Path,
    bin: &str,
    partitions: u32,
    reps: usize,
) -> anyhow::Result<()> {
    // A dry run over a table of `partitions` daily partitions.
    sql(
        url,
        &format!(
            "CREATE TABLE wide (ts timestamptz NOT NULL, v int) PARTITION BY RANGE (ts); \
             DO $$ BEGIN FOR d IN 0..{} LOOP EXECUTE format('CREATE TABLE wide_p%s PARTITION OF wide FOR VALUES FROM \
             (%L) TO (%L)', to_char('2020-01-01'::date + d, 'YYYYMMDD'), '2020-01-01'::date + d, \
             '2020-01-01'::date + d + 1); END LOOP; END $$; INSERT INTO wide SELECT '2020-01-01'::timestamptz + \
             i * interval '1 hour', i FROM generate_series(0, {} * 24 - 1) i; ANALYZE wide",
            partitions - 1,
            partitions
        ),
    );
    let wide = work.join("wide.toml");
    std::fs::write(
        &wide,
        format!(
            "plugin_dir = \"{}\"\n[service]\nstate_dir = \"{}\"\n[[dataset]]\nname = \"wide\"\nplugin = \"age_tiering\"\n\
             params = {{ drop_after_days = 100000 }}\n[dataset.postgres]\nurl = \"{url}\"\ntable = \"wide\"\n",
            plugins.display(),
            work.join("state").display()
        ),
    )?;
    let (scans, _) = dry_runs(bin, &wide, reps.max(3))?;
    println!(
        "dry run over {partitions} partitions: {:.3} s (median of {})",
        median(scans.clone()),
        scans.len()
    );
    Ok(())
}

/// `reps` dry runs of `retention run --json` over `config`: their times in seconds, and the last report.
fn dry_runs(bin: &str, config: &Path, reps: usize) -> anyhow::Result<(Vec<f64>, serde_json::Value)> {
    let mut times = Vec::new();
    let mut report = serde_json::Value::Null;
    for _ in 0..reps {
        let t = Instant::now();
        let out = Command::new(bin)
            .args([
                "run",
                "--dry-run",
                "--json",
                "--now",
                "2026-01-12T00:00:00Z",
                "--config",
            ])
            .arg(config)
            .output()?;
        times.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        report = serde_json::from_slice(&out.stdout)?;
    }
    Ok((times, report))
}

/// Writes the config of a dataset `name` over table `table` with the buckets layout.
fn bucket_config(work: &Path, plugins: &Path, url: &str, name: &str, params: &str, extra: &str) -> std::path::PathBuf {
    let p = work.join(format!("{name}.toml"));
    std::fs::write(
        &p,
        format!(
            "plugin_dir = \"{}\"\n[service]\nstate_dir = \"{}\"\n[[dataset]]\nname = \"{name}\"\nplugin = \"age_tiering\"\n\
             params = {{ {params} }}\n[dataset.guard]\nmax_drop_bytes_fraction = 1.0\nmax_drop_segments_fraction = 1.0\n\
             [dataset.postgres]\nurl = \"{url}\"\ntable = \"{name}\"\ntime_column = \"ts\"\nbucket = \"1 day\"\n\
             statement_timeout_ms = 600000\n{extra}\n",
            plugins.display(),
            work.join("state").display()
        ),
    )
    .unwrap();
    p
}

fn bench_plain_scan(url: &str, work: &Path, plugins: &Path, bin: &str, rows: u64, reps: usize) -> anyhow::Result<()> {
    // `rows` rows over a year (one every ~3 s at 10 M), with the time index any such table has.
    let step_ms = 365 * 86_400_000 / rows.max(1);
    let t = Instant::now();
    sql(
        url,
        &format!(
            "CREATE TABLE plain (ts timestamptz NOT NULL, tenant text NOT NULL, v int); \
             INSERT INTO plain SELECT '2025-01-01'::timestamptz + i * interval '{step_ms} ms', 'tenant-' || (i % 7), i \
             FROM generate_series(0, {rows} - 1) i; CREATE INDEX ON plain (ts)"
        ),
    );
    sql(url, "VACUUM ANALYZE plain");
    println!("plain table of {rows} rows made in {:.1} s", t.elapsed().as_secs_f64());
    let config = bucket_config(work, plugins, url, "plain", "drop_after_days = 100000", "");
    let (scans, report) = dry_runs(bin, &config, reps.max(3))?;
    let segments = report[0]["segments"].as_array().map_or(0, Vec::len);
    println!(
        "dry run over a plain table of {rows} rows in daily buckets ({segments} segments): {:.3} s (median of {})",
        median(scans.clone()),
        scans.len()
    );
    sql(url, "DROP TABLE plain");
    Ok(())
}

/// The longest writing transaction (one with a transaction id: it holds row locks and writes WAL) of any other session
/// of the database while `f` runs, as the server shows it. Reads (the scan's `GROUP BY`) take no lock that blocks a
/// writer and are not counted.
fn longest_transaction(url: &str, f: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let (stop2, url2) = (stop.clone(), url.to_string());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let monitor = std::thread::spawn(move || -> f64 {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url2, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            let mut longest: f64 = 0.0;
            ready_tx.send(()).unwrap();
            while !stop2.load(Ordering::Relaxed) {
                let row = client
                    .query_one(
                        "SELECT coalesce(max(extract(epoch FROM clock_timestamp() - xact_start)), 0)::float8 \
                         FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() \
                         AND backend_xid IS NOT NULL AND backend_type = 'client backend'",
                        &[],
                    )
                    .await
                    .unwrap();
                longest = longest.max(row.get(0));
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            longest
        })
    });
    ready_rx.recv()?;
    let result = f();
    stop.store(true, Ordering::Relaxed);
    let longest = monitor.join().expect("the monitor thread");
    result.map(|()| longest)
}

fn bench_bucket_drop(url: &str, work: &Path, plugins: &Path, bin: &str, rows: u64, reps: usize) -> anyhow::Result<()> {
    // A day of `rows` rows to drop and a later day that stays; the time index.
    let fill = || {
        sql(
            url,
            &format!(
                "DROP TABLE IF EXISTS bdrop; \
                 CREATE TABLE bdrop (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, ts timestamptz NOT NULL, \
                 tenant text NOT NULL, status int NOT NULL, payload text); \
                 INSERT INTO bdrop (ts, tenant, status, payload) SELECT '2026-01-01'::timestamptz + \
                 (i * interval '86 ms') * (1000000.0 / {rows}), 'tenant-' || (i % 37), 200 + (i % 5), \
                 md5(i::text) || ' GET /api/v1/items/' || i FROM generate_series(0, {rows} - 1) i; \
                 INSERT INTO bdrop (ts, tenant, status, payload) VALUES ('2026-01-10 01:00+00', 't', 200, 'x'); \
                 CREATE INDEX ON bdrop (ts)"
            ),
        );
        sql(url, "VACUUM ANALYZE bdrop");
    };
    let config = bucket_config(
        work,
        plugins,
        url,
        "bdrop",
        "drop_after_days = 7",
        "trash_grace_secs = 0",
    );
    let (mut ours, mut theirs, mut ours_tx, mut theirs_tx) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut applies = Vec::new();
    for rep in 0..reps {
        fill();
        let t = Instant::now();
        let mut apply_s = 0.0;
        let tx = longest_transaction(url, || {
            let out = Command::new(bin)
                .args(["run", "--json", "--now", "2026-01-12T00:00:00Z", "--config"])
                .arg(&config)
                .output()?;
            anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
            anyhow::ensure!(v[0]["stats"]["dropped"]["rows"] == rows, "{}", v[0]);
            apply_s = v[0]["timings"]["apply_ms"].as_f64().unwrap_or_default() / 1000.0;
            Ok(())
        })?;
        let s = t.elapsed().as_secs_f64();
        applies.push(apply_s);
        ours.push(s);
        ours_tx.push(tx);
        fill();
        let t = Instant::now();
        let tx2 = longest_transaction(url, || {
            sql(url, "DELETE FROM bdrop WHERE ts < '2026-01-02'");
            Ok(())
        })?;
        let s2 = t.elapsed().as_secs_f64();
        theirs.push(s2);
        theirs_tx.push(tx2);
        println!(
            "  rep {rep}: retention {s:.2} s (the drop {apply_s:.2} s, longest transaction {tx:.3} s), one DELETE \
             {s2:.2} s (its transaction {tx2:.3} s)"
        );
    }
    let (o, a, t, otx, ttx) = (
        median(ours),
        median(applies),
        median(theirs),
        median(ours_tx),
        median(theirs_tx),
    );
    println!(
        "bucket drop of {rows} rows in batches: the pass {o:.2} s (the drop {a:.2} s), longest transaction {otx:.3} s; \
         one DELETE {t:.2} s, its transaction {ttx:.3} s: the pass {:.2}x the time (the drop {:.2}x), the longest \
         transaction {:.3} of the DELETE's",
        o / t,
        a / t,
        otx / ttx
    );
    sql(url, "DROP TABLE bdrop");
    Ok(())
}
