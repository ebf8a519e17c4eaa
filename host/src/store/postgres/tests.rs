//! The store-independent checks (`store::conformance`) run on the PostgreSQL store against a real server (the
//! integration tests' own: `RETENTION_TEST_PG_URL`, or a throwaway PostgreSQL 15 cluster), with an archive and a
//! trash, and without an archive or a grace period. A segment is a partition of `seg (ts, seq, chunk bytea)` holding
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
}

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
        self.client()
            .await
            .batch_execute(
                "CREATE TABLE seg (ts timestamptz NOT NULL, seq int NOT NULL, chunk bytea) PARTITION BY RANGE (ts)",
            )
            .await
            .unwrap();
    }

    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(PostgresStore::open(self.config()).await.unwrap())
    }

    async fn write(&self, name: &str, content: &[u8]) {
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
            // The archive's objects, and those of its trash (`.retention-trash/<batch>/public/seg/`).
            let mut bases = vec![(dir.path().join("public/seg"), Place::Tier(Tier::Archived))];
            for b in std::fs::read_dir(dir.path().join(crate::store::TRASH_DIR))
                .into_iter()
                .flatten()
            {
                bases.push((b.unwrap().path().join("public/seg"), Place::Trash));
            }
            for (base, place) in bases {
                for e in std::fs::read_dir(&base).into_iter().flatten() {
                    let path = e.unwrap().path();
                    let Some(stem) = path.to_str().and_then(|p| p.strip_suffix(".manifest.json")) else {
                        continue;
                    };
                    let m: super::archive::Manifest = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                    let bytes = std::fs::read(format!("{stem}.parquet")).unwrap();
                    assert_eq!(bytes.len() as u64, m.parquet_bytes, "a verified archive object");
                    out.push((m.partition.1, place, parquet_content(bytes)));
                }
            }
        }
        out
    }

    fn failure_points(&self) -> Vec<&'static str> {
        [super::CRASH_POINTS, super::ARCHIVE_CRASH_POINTS].concat()
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
    };
    conformance::run_all(&mut h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_without_an_archive_or_a_grace_period_passes_the_store_conformance_checks() {
    let mut h = PgHarness {
        pg: None,
        archive: false,
        grace: Duration::ZERO,
    };
    conformance::run_all(&mut h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_with_an_archive_and_no_grace_period_passes_the_store_conformance_checks() {
    let mut h = PgHarness {
        pg: None,
        archive: true,
        grace: Duration::ZERO,
    };
    conformance::run_all(&mut h).await;
}

/// The content a segment's Parquet holds: its chunks in `seq` order.
fn parquet_content(bytes: Vec<u8>) -> Vec<u8> {
    use arrow_array::cast::AsArray;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
        .unwrap()
        .build()
        .unwrap();
    let mut rows: Vec<(i32, Vec<u8>)> = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let seq = batch.column(1).as_primitive::<arrow_array::types::Int32Type>();
        let chunk = batch.column(2).as_binary::<i32>();
        for i in 0..batch.num_rows() {
            rows.push((seq.value(i), chunk.value(i).to_vec()));
        }
    }
    rows.sort();
    rows.into_iter().flat_map(|(_, c)| c).collect()
}
