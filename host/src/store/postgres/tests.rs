//! The store-independent checks (`store::conformance`) run on the PostgreSQL store against a real server (the
//! integration tests' own: `RETENTION_TEST_PG_URL`, or a throwaway PostgreSQL 15 cluster), with an archive and a
//! trash, with an archive and no grace period, without either, and over a plain table in time buckets (a segment per
//! bucket and `name`, rows of `seg (ts, name, seq, chunk bytea)`; segments shown as `2026-01-01T00:00Z/<name>`, a
//! restore merging). Otherwise a segment is a partition of `seg (ts, seq, chunk bytea)` holding
//! its content line by line; the census reads it back from the table (attached or detached), the trash schemas and
//! the archive's verified Parquet objects. A change after the scan rewrites the partition (`TRUNCATE` and the content
//! grown by a line), which gives it a new relfilenode, as `VACUUM FULL` or a reload would.

#[path = "../../../../tests/all/common/pg_server.rs"]
#[allow(dead_code)]
mod pg_server;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use super::{PostgresConfig, PostgresStore, RawPostgres};
use crate::segment::Tier;
use crate::store::Store;
use crate::store::conformance::{self, Harness, Place};

struct Pg {
    url: String,
    archive: Option<tempfile::TempDir>,
    scope: std::path::PathBuf,
    day: AtomicI64,
}

struct PgHarness {
    pg: Option<Pg>,
    archive: bool,
    grace: Duration,
    /// A plain table in daily buckets per `name` (a segment per name written), rather than a partitioned one.
    buckets: bool,
}

/// The day every bucket of the buckets harness is in, and its segments' names' prefix.
const BUCKET_DAY_MS: i64 = 1_767_225_600_000;
const BUCKET_PREFIX: &str = "2026-01-01T00:00Z/";

impl PgHarness {
    fn pg(&self) -> &Pg {
        self.pg.as_ref().expect("fresh() first")
    }

    fn config(&self) -> PostgresConfig {
        let pg = self.pg();
        let mut text = format!(
            "url = \"{}\"\ntable = \"seg\"\ntrash_grace_secs = {}\n",
            pg.url,
            self.grace.as_secs()
        );
        if let Some(a) = &pg.archive {
            text.push_str(&format!("archive_url = \"file://{}\"\n", a.path().display()));
        }
        if self.buckets {
            text.push_str("time_column = \"ts\"\nlabel_columns = [\"name\"]\ndelete_batch_rows = 7\n");
        }
        let raw: RawPostgres = toml::from_str(&text).unwrap();
        PostgresConfig::from_raw(raw, "dataset[0].postgres", std::path::Path::new("/")).unwrap()
    }

    async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.pg().url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
    }

    async fn insert(&self, c: &tokio_postgres::Client, name: &str, start_ms: i64, content: &[u8]) {
        let start = chrono::DateTime::from_timestamp_millis(start_ms).unwrap();
        for (seq, chunk) in content.split_inclusive(|b| *b == b'\n').enumerate() {
            let ts = start + chrono::TimeDelta::microseconds(seq as i64);
            if self.buckets {
                c.execute(
                    "INSERT INTO seg VALUES ($1, $2, $3, $4)",
                    &[&ts, &name, &(seq as i32), &chunk],
                )
                .await
                .unwrap();
                continue;
            }
            c.execute(
                &format!("INSERT INTO {} VALUES ($1, $2, $3)", super::sql::ident(name)),
                &[&ts, &(seq as i32), &chunk],
            )
            .await
            .unwrap();
        }
    }
}

/// The rows of `table` (quoted) as the content they hold.
async fn content_of(c: &tokio_postgres::Client, table: &str) -> Vec<u8> {
    let rows = c
        .query(&format!("SELECT chunk FROM {table} ORDER BY seq"), &[])
        .await
        .unwrap();
    rows.iter().flat_map(|r| r.get::<_, Vec<u8>>(0)).collect()
}

#[async_trait]
impl Harness for PgHarness {
    async fn fresh(&mut self) {
        let server = pg_server::server();
        let db = format!("c_{}", uuid::Uuid::new_v4().simple());
        let (admin, conn) = tokio_postgres::connect(&format!("{server}/postgres"), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        admin.batch_execute(&format!("CREATE DATABASE {db}")).await.unwrap();
        let url = format!("{server}/{db}");
        let scope = {
            let cfg: tokio_postgres::Config = url.parse().unwrap();
            let host = match &cfg.get_hosts()[0] {
                tokio_postgres::config::Host::Tcp(h) => h.clone(),
                tokio_postgres::config::Host::Unix(p) => p.display().to_string().replace('/', "_"),
            };
            std::path::Path::new("/postgres")
                .join(format!("{host}:{}", cfg.get_ports().first().copied().unwrap_or(5432)))
                .join(&db)
        };
        self.pg = Some(Pg {
            url,
            archive: self.archive.then(|| tempfile::tempdir().unwrap()),
            scope,
            day: AtomicI64::new(0),
        });
        let table = if self.buckets {
            "CREATE TABLE seg (ts timestamptz NOT NULL, name text NOT NULL, seq int NOT NULL, chunk bytea); \
             CREATE INDEX ON seg (ts)"
        } else {
            "CREATE TABLE seg (ts timestamptz NOT NULL, seq int NOT NULL, chunk bytea) PARTITION BY RANGE (ts)"
        };
        self.client().await.batch_execute(table).await.unwrap();
    }

    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(PostgresStore::open(self.config()).await.unwrap())
    }

    async fn write(&self, name: &str, content: &[u8]) {
        if self.buckets {
            // Rows of the bucket's day after any it holds (a segment written again under a name merges into it).
            let c = self.client().await;
            let n: i64 = c
                .query_one("SELECT count(*) FROM seg WHERE name = $1", &[&name])
                .await
                .unwrap()
                .get(0);
            self.insert(&c, name, BUCKET_DAY_MS + n, content).await;
            return;
        }
        let day = self.pg().day.fetch_add(1, Ordering::Relaxed);
        let start_ms = 1_767_225_600_000 + day * 86_400_000;
        let c = self.client().await;
        c.batch_execute(&format!(
            "CREATE TABLE {} PARTITION OF seg FOR VALUES FROM ('{}') TO ('{}')",
            super::sql::ident(name),
            chrono::DateTime::from_timestamp_millis(start_ms).unwrap().to_rfc3339(),
            chrono::DateTime::from_timestamp_millis(start_ms + 86_400_000)
                .unwrap()
                .to_rfc3339()
        ))
        .await
        .unwrap();
        self.insert(&c, name, start_ms, content).await;
    }

    async fn change(&self, name: &str) {
        let c = self.client().await;
        if self.buckets {
            let seq: i32 = c
                .query_one("SELECT max(seq) + 1 FROM seg WHERE name = $1", &[&name])
                .await
                .unwrap()
                .get(0);
            let ts = chrono::DateTime::from_timestamp_millis(BUCKET_DAY_MS + 3_600_000).unwrap();
            c.execute(
                "INSERT INTO seg VALUES ($1, $2, $3, $4)",
                &[&ts, &name, &seq, &b"one more line\n".as_slice()],
            )
            .await
            .unwrap();
            return;
        }
        let table = super::sql::ident(name);
        let mut content = content_of(&c, &table).await;
        content.extend_from_slice(b"one more line\n");
        let start_ms: i64 = c
            .query_one(
                &format!("SELECT (extract(epoch FROM min(ts)) * 1000)::bigint FROM {table}"),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        c.batch_execute(&format!("TRUNCATE {table}")).await.unwrap();
        self.insert(&c, name, start_ms, &content).await;
    }

    async fn census(&self) -> Vec<(String, Place, Vec<u8>)> {
        if self.buckets {
            return self.bucket_census().await;
        }
        let c = self.client().await;
        let mut out = Vec::new();
        let tables = c
            .query(
                "SELECT n.nspname::text, k.relname::text, obj_description(k.oid, 'pg_class') FROM pg_class k \
                 JOIN pg_namespace n ON n.oid = k.relnamespace \
                 WHERE k.relkind = 'r' AND (n.nspname = 'public' OR starts_with(n.nspname, '_retention_trash_'))",
                &[],
            )
            .await
            .unwrap();
        for t in tables {
            let (schema, name, comment): (String, String, Option<String>) = (t.get(0), t.get(1), t.get(2));
            let content = content_of(&c, &super::sql::qualified(&schema, &name)).await;
            if schema == "public" {
                out.push((name, Place::Tier(Tier::Hot), content));
            } else {
                let intent =
                    super::intent::Intent::parse(&comment.unwrap_or_default()).expect("a trashed table's intent");
                out.push((intent.origin.1, Place::Trash, content));
            }
        }
        if let Some(dir) = &self.pg().archive {
            for (base, place) in archive_bases(dir.path()) {
                for e in std::fs::read_dir(&base).into_iter().flatten() {
                    let path = e.unwrap().path();
                    let Some(stem) = path.to_str().and_then(|p| p.strip_suffix(".manifest.json")) else {
                        continue;
                    };
                    let m: super::archive::Manifest = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                    let bytes = std::fs::read(format!("{stem}.parquet")).unwrap();
                    assert_eq!(bytes.len() as u64, m.parquet_bytes, "a verified archive object");
                    out.push((m.partition.1, place, parquet_content(bytes, 1).remove(0).1));
                }
            }
        }
        out
    }

    fn failure_points(&self) -> Vec<&'static str> {
        if self.buckets {
            let copy = super::ARCHIVE_CRASH_POINTS
                .iter()
                .skip_while(|p| **p != "pg-archive:copied")
                .copied()
                .collect::<Vec<_>>();
            return [super::BUCKET_CRASH_POINTS, super::BUCKET_ARCHIVE_CRASH_POINTS, &copy].concat();
        }
        [super::CRASH_POINTS, super::ARCHIVE_CRASH_POINTS].concat()
    }

    fn written_name(&self, shown: &str) -> String {
        match self.buckets {
            // `2026-01-01T00:00Z/<name>`, and `@<archived at>` after an archived one's.
            true => {
                let name = shown.strip_prefix(BUCKET_PREFIX).unwrap_or(shown);
                name.split('@').next().unwrap_or(name).to_string()
            }
            false => shown.to_string(),
        }
    }

    fn restore_merges(&self) -> bool {
        self.buckets
    }

    fn fail_at(&self, point: &'static str) -> Box<dyn std::any::Any + Send> {
        Box::new(crate::crashpoint::fail_under(&self.pg().scope, point))
    }

    fn drops_to_trash(&self) -> bool {
        !self.grace.is_zero()
    }

    fn sizes_are_content_lengths(&self) -> bool {
        false
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_with_an_archive_and_a_trash_passes_the_store_conformance_checks() {
    let mut h = PgHarness {
        pg: None,
        archive: true,
        grace: Duration::from_secs(86_400),
        buckets: false,
    };
    conformance::run_all(&mut h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_without_an_archive_or_a_grace_period_passes_the_store_conformance_checks() {
    let mut h = PgHarness {
        pg: None,
        archive: false,
        grace: Duration::ZERO,
        buckets: false,
    };
    conformance::run_all(&mut h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_with_an_archive_and_no_grace_period_passes_the_store_conformance_checks() {
    let mut h = PgHarness {
        pg: None,
        archive: true,
        grace: Duration::ZERO,
        buckets: false,
    };
    conformance::run_all(&mut h).await;
}

/// The contents a Parquet holds, by segment name (the `name` column of a bucket's, column 1; else one, unnamed): the
/// chunks in `seq` order (`seq` and `chunk` are the columns from `seq_col` on).
fn parquet_content(bytes: Vec<u8>, seq_col: usize) -> Vec<(String, Vec<u8>)> {
    use arrow_array::cast::AsArray;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
        .unwrap()
        .build()
        .unwrap();
    let mut rows: std::collections::BTreeMap<String, Vec<(i32, Vec<u8>)>> = Default::default();
    for batch in reader {
        let batch = batch.unwrap();
        let seq = batch.column(seq_col).as_primitive::<arrow_array::types::Int32Type>();
        let chunk = batch.column(seq_col + 1).as_binary::<i32>();
        let names = (seq_col == 2).then(|| batch.column(1).as_string::<i32>().clone());
        for i in 0..batch.num_rows() {
            let name = names.as_ref().map_or(String::new(), |n| n.value(i).to_string());
            rows.entry(name)
                .or_default()
                .push((seq.value(i), chunk.value(i).to_vec()));
        }
    }
    if rows.is_empty() {
        rows.insert(String::new(), Vec::new());
    }
    rows.into_iter()
        .map(|(name, mut r)| {
            r.sort();
            (name, r.into_iter().flat_map(|(_, c)| c).collect())
        })
        .collect()
}

impl PgHarness {
    /// The buckets harness's census: rows by `name` in the table (and staging tables, mid-archive), the trash tables,
    /// and the archive's verified objects and its trash's.
    async fn bucket_census(&self) -> Vec<(String, Place, Vec<u8>)> {
        let c = self.client().await;
        let mut out = Vec::new();
        let tables = c
            .query(
                "SELECT format('%I.%I', n.nspname, k.relname), starts_with(n.nspname, '_retention_trash_') \
                 FROM pg_class k JOIN pg_namespace n ON n.oid = k.relnamespace WHERE k.relkind = 'r' \
                   AND (n.nspname IN ('public', '_retention_staging') OR starts_with(n.nspname, '_retention_trash_'))",
                &[],
            )
            .await
            .unwrap();
        for t in tables {
            let (table, trash): (String, bool) = (t.get(0), t.get(1));
            let place = if trash { Place::Trash } else { Place::Tier(Tier::Hot) };
            let rows = c
                .query(&format!("SELECT name, chunk FROM {table} ORDER BY name, seq"), &[])
                .await
                .unwrap();
            let mut by_name: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
            for r in rows {
                by_name.entry(r.get(0)).or_default().extend(r.get::<_, Vec<u8>>(1));
            }
            out.extend(by_name.into_iter().map(|(n, content)| (n, place, content)));
        }
        if let Some(dir) = &self.pg().archive {
            for (base, place) in archive_bases(dir.path()) {
                for e in std::fs::read_dir(&base).into_iter().flatten() {
                    let path = e.unwrap().path();
                    let Some(stem) = path.to_str().and_then(|p| p.strip_suffix(".manifest.json")) else {
                        continue;
                    };
                    let bytes = std::fs::read(format!("{stem}.parquet")).unwrap();
                    for (name, content) in parquet_content(bytes, 2) {
                        out.push((name, place, content));
                    }
                }
            }
        }
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_over_a_plain_table_in_time_buckets_passes_the_store_conformance_checks() {
    let mut h = PgHarness {
        pg: None,
        archive: true,
        grace: Duration::from_secs(86_400),
        buckets: true,
    };
    conformance::run_all(&mut h).await;
}

/// Where the archive at `dir` keeps `public.seg`'s objects, and its trash's batches do (`.retention-trash/<batch>/`).
fn archive_bases(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Place)> {
    let mut bases = vec![(dir.join("public/seg"), Place::Tier(Tier::Archived))];
    for b in std::fs::read_dir(dir.join(crate::store::TRASH_DIR))
        .into_iter()
        .flatten()
    {
        bases.push((b.unwrap().path().join("public/seg"), Place::Trash));
    }
    bases
}
