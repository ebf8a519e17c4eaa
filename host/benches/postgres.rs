//! The PostgreSQL store beside what a DBA would script, in one run, against a throwaway PostgreSQL 15 cluster (the
//! tests' own, `tests/all/common/pg_server.rs`; or `RETENTION_TEST_PG_URL`):
//! - archiving a partition of 1,000,000 rows: `retention run` (age_tiering, `archive_after_days`) writing verified
//!   Parquet to a `file://` archive and dropping the partition, against
//!   `psql -c "\copy (SELECT * FROM part) TO STDOUT" | zstd -3 > part.csv.zst` then `psql -c "DROP TABLE part"`
//!   (target: at least 0.8x its throughput); bytes written by both;
//! - a dry run over a table of 1,000 partitions (target: under 1 s).
//!
//! Run: `cargo build --release --target wasm32-wasip2 --manifest-path guest-plugins/Cargo.toml &&
//!       cargo bench --bench postgres` (see BENCHMARKS.md). Options: `-- --rows N --reps N --partitions N`.

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

    // A table of events: 2026-01-01 is the partition archived; 2026-01-10 stays (the newest is never dropped).
    sql(
        &url,
        "CREATE TABLE events (ts timestamptz NOT NULL, tenant text NOT NULL, status int NOT NULL, payload text) \
         PARTITION BY RANGE (ts); \
         CREATE TABLE events_p20260110 PARTITION OF events FOR VALUES FROM ('2026-01-10') TO ('2026-01-11'); \
         INSERT INTO events VALUES ('2026-01-10 01:00+00', 't', 200, 'x')",
    );
    let fill = |name: &str| {
        sql(
            &url,
            &format!(
                "CREATE TABLE {name} PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2026-01-02'); \
                 INSERT INTO {name} SELECT '2026-01-01'::timestamptz + (i * interval '86 ms'), \
                 'tenant-' || (i % 37), 200 + (i % 5), md5(i::text) || ' GET /api/v1/items/' || i || ' ' || \
                 md5((i * 7)::text) FROM generate_series(0, {rows} - 1) i"
            ),
        );
        sql(&url, &format!("VACUUM ANALYZE {name}"));
    };
    let archive = work.path().join("archive");
    std::fs::create_dir_all(&archive)?;
    let config = work.path().join("retention.toml");
    std::fs::write(
        &config,
        format!(
            "plugin_dir = \"{}\"\n[service]\nstate_dir = \"{}\"\n[[dataset]]\nname = \"events\"\nplugin = \"age_tiering\"\n\
             params = {{ archive_after_days = 7 }}\n[dataset.postgres]\nurl = \"{url}\"\ntable = \"events\"\n\
             archive_url = \"file://{}\"\nstatement_timeout_ms = 600000\n",
            plugins.display(),
            work.path().join("state").display(),
            archive.display()
        ),
    )?;
    let dump = work.path().join("part.csv.zst");
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

    // A dry run over a table of `partitions` daily partitions.
    sql(
        &url,
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
    let wide = work.path().join("wide.toml");
    std::fs::write(
        &wide,
        format!(
            "plugin_dir = \"{}\"\n[service]\nstate_dir = \"{}\"\n[[dataset]]\nname = \"wide\"\nplugin = \"age_tiering\"\n\
             params = {{ drop_after_days = 100000 }}\n[dataset.postgres]\nurl = \"{url}\"\ntable = \"wide\"\n",
            plugins.display(),
            work.path().join("state").display()
        ),
    )?;
    let mut scans = Vec::new();
    for _ in 0..reps.max(3) {
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
            .arg(&wide)
            .stdout(Stdio::null())
            .output()?;
        scans.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    println!(
        "dry run over {partitions} partitions: {:.3} s (median of {})",
        median(scans.clone()),
        scans.len()
    );
    sql(&format!("{server}/postgres"), &format!("DROP DATABASE {db}"));
    Ok(())
}
