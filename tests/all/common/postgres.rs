//! What the PostgreSQL store's tests share: the server (`pg_server.rs`: `RETENTION_TEST_PG_URL`, or a throwaway
//! cluster), a fresh database per test, and [`Db`], a partitioned table dataset with the views the tests check it
//! through (rows by place, a checksum, unsettled intents).

pub use super::pg_server::server;

use std::path::Path;

use serde_json::Value;

use super::{retention, run};

/// Runs `retention run --json --now <now> <args> --config <config>`, aborting at crash point `crash_at`; returns the
/// exit status, the report (`Null` when the process died before printing one) and stderr.
pub fn pass(
    config: &Path,
    now: &str,
    args: &[&str],
    crash_at: Option<&str>,
) -> (std::process::ExitStatus, Value, String) {
    let mut cmd = retention();
    cmd.args(["run", "--json", "--now", now])
        .args(args)
        .arg("--config")
        .arg(config);
    if let Some(p) = crash_at {
        cmd.env("RETENTION_CRASH_AT", p);
    }
    let (out, stdout, stderr) = run(&mut cmd);
    let v: Value = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (out.status, v[0].clone(), stderr)
}

/// A pass that must succeed; its report.
pub fn ok_pass(config: &Path, now: &str, args: &[&str]) -> Value {
    let (status, report, stderr) = pass(config, now, args, None);
    assert_eq!(status.code(), Some(0), "{report:#}\n{stderr}");
    assert_eq!(report["status"], "ok", "{report:#}");
    report
}

/// `retention trash <args> --config <config>`: exit code, stdout, stderr.
pub fn trash(config: &Path, args: &[&str]) -> (i32, String, String) {
    let (out, stdout, stderr) = run(retention().arg("trash").args(args).arg("--config").arg(config));
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

/// The names `trash list` shows for dataset `events`, as listed.
pub fn trash_names(config: &Path) -> Vec<String> {
    let (code, stdout, stderr) = trash(config, &["list", "--dataset", "events", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    v["trash"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

/// A fresh database on the server, for one test; returns its URL.
pub fn database(rt: &tokio::runtime::Runtime) -> String {
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let admin = format!("{}/postgres", server());
    rt.block_on(async {
        let client = connect(&admin).await;
        client.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
    });
    format!("{}/{name}", server())
}

/// A client for `url`.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    tokio::spawn(connection);
    client
}

/// A table dataset for one test: a fresh database holding a partitioned table, a config over it, and what the tests
/// look at (rows by place, a checksum of the table, the trash).
pub struct Db {
    pub rt: tokio::runtime::Runtime,
    pub url: String,
    pub dir: tempfile::TempDir,
    /// The table's schema and name, and the two quoted for SQL.
    pub schema: String,
    pub table: String,
    pub quoted: String,
}

/// Days 2026-01-01 to 2026-01-10, a partition each with 100 rows.
pub const DAYS: u32 = 10;

/// An identifier quoted for SQL.
pub fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

impl Db {
    /// `schema.table` partitioned by day over [`DAYS`] days, partitions named `<prefix>2026010D`, 100 rows each, and
    /// with `default` a DEFAULT partition holding 7 rows (as pg_partman makes).
    pub fn new(schema: &str, table: &str, prefix: &str, default: bool) -> Db {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let url = database(&rt);
        let quoted = format!("{}.{}", ident(schema), ident(table));
        rt.block_on(async {
            let c = connect(&url).await;
            let mut sql = format!(
                "CREATE SCHEMA IF NOT EXISTS {};\n\
                 CREATE TABLE {quoted} (ts timestamptz NOT NULL, tenant text NOT NULL, payload text) PARTITION BY RANGE (ts);\n",
                ident(schema)
            );
            if default {
                sql.push_str(&format!(
                    "CREATE TABLE {} PARTITION OF {quoted} DEFAULT;\n",
                    ident(&format!("{prefix}default"))
                ));
            }
            for day in 1..=DAYS {
                sql.push_str(&format!(
                    "CREATE TABLE {}.{} PARTITION OF {quoted} FOR VALUES FROM ('2026-01-{day:02}') TO \
                     ('2026-01-{:02}');\n\
                     INSERT INTO {quoted} SELECT '2026-01-{day:02}'::timestamptz + i * interval '1 minute', \
                     'tenant-' || (i % 3), repeat('x', 200) || i FROM generate_series(0, 99) i;\n",
                    ident(schema),
                    ident(&format!("{prefix}202601{day:02}")),
                    day + 1
                ));
            }
            if default {
                sql.push_str(&format!(
                    "INSERT INTO {quoted} SELECT '2027-06-01'::timestamptz + i * interval '1 s', 'later', 'x' \
                     FROM generate_series(1, 7) i;\n"
                ));
            }
            sql.push_str(&format!("ANALYZE {quoted};"));
            c.batch_execute(&sql).await.unwrap();
        });
        Db {
            rt,
            url,
            dir: tempfile::tempdir().unwrap(),
            schema: schema.to_string(),
            table: table.to_string(),
            quoted,
        }
    }

    /// `public.events` with partitions `events_p2026010D`.
    pub fn events(default: bool) -> Db {
        Db::new("public", "events", "events_p", default)
    }

    /// Writes the config (plugin `age_tiering` with `params`, `extra` lines in `[dataset.postgres]`); returns its path.
    pub fn config(&self, params: &str, extra: &str) -> std::path::PathBuf {
        let p = self.dir.path().join("retention.toml");
        let table = toml::Value::String(self.table.clone());
        let schema = toml::Value::String(self.schema.clone());
        std::fs::write(
            &p,
            format!(
                "plugin_dir = \"{}\"\n[[dataset]]\nname = \"events\"\nplugin = \"age_tiering\"\nparams = {{ {params} }}\n\
                 [dataset.postgres]\nurl = \"{}\"\nschema = {schema}\ntable = {table}\nlabels = '(?P<day>\\d{{8}})$'\n{extra}\n",
                super::plugin_dir().display(),
                self.url
            ),
        )
        .unwrap();
        p
    }

    pub fn sql<T>(&self, f: impl AsyncFnOnce(&tokio_postgres::Client) -> T) -> T {
        self.rt.block_on(async {
            let c = connect(&self.url).await;
            f(&c).await
        })
    }

    /// Every row of the dataset, wherever it is (the table's partitions, tables detached from it, the trash
    /// schemas), with the places holding it: `row -> [schema.table, ...]`.
    pub fn census(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        self.sql(async |c| {
            let tables = c
                .query(
                    "SELECT format('%I.%I', n.nspname, k.relname), n.nspname || '.' || k.relname FROM pg_class k \
                     JOIN pg_namespace n ON n.oid = k.relnamespace \
                     WHERE k.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', '_retention') \
                       AND NOT starts_with(n.nspname, 'pg_toast')",
                    &[],
                )
                .await
                .unwrap();
            let mut out: std::collections::BTreeMap<String, Vec<String>> = Default::default();
            for t in tables {
                let (q, shown): (String, String) = (t.get(0), t.get(1));
                for r in c
                    .query(&format!("SELECT format('%s|%s|%s', ts, tenant, payload) FROM {q}"), &[])
                    .await
                    .unwrap()
                {
                    out.entry(r.get(0)).or_default().push(shown.clone());
                }
            }
            out
        })
    }

    /// The partitions of the table now, by name, with their row counts (the DEFAULT one included).
    pub fn partitions(&self) -> Vec<(String, i64)> {
        let q = format!(
            "SELECT tableoid::regclass::text, count(*) FROM {} GROUP BY 1 ORDER BY 1",
            self.quoted
        );
        self.sql(async move |c| {
            c.query(&q, &[])
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect()
        })
    }

    /// A checksum of every row of the table and of each partition's definition.
    pub fn checksum(&self) -> String {
        let q = format!(
            "SELECT md5(coalesce((SELECT string_agg(format('%s|%s|%s|%s', tableoid::regclass, ts, tenant, payload), ',' \
             ORDER BY ts, tenant, payload) FROM {0}), '') || coalesce((SELECT string_agg(format('%s %s %s', relid::regclass, \
             pg_get_expr(k.relpartbound, k.oid), obj_description(k.oid, 'pg_class')), ',' ORDER BY relid::regclass::text) \
             FROM pg_partition_tree('{0}'::regclass) JOIN pg_class k ON k.oid = relid), ''))",
            self.quoted.replace('\'', "''")
        );
        self.sql(async move |c| c.query_one(&q, &[]).await.unwrap().get(0))
    }

    /// Tables carrying an intent of the engine's outside the trash schemas: an unsettled drop.
    pub fn unsettled(&self) -> Vec<String> {
        self.sql(async |c| {
            c.query(
                "SELECT k.oid::regclass::text FROM pg_description d JOIN pg_class k ON k.oid = d.objoid \
                 JOIN pg_namespace n ON n.oid = k.relnamespace \
                 WHERE starts_with(d.description, 'retention:') AND NOT starts_with(n.nspname, '_retention_trash_')",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
        })
    }
}

/// A plain table dataset for the buckets layout: `public.events` with an identity `id`, `ts`, `tenant`, `payload`
/// and a generated `len`; [`DAYS`] days of 99 rows each (33 per tenant `tenant-0..2`), and 2 rows without a time.
pub struct Plain {
    pub db: Db,
}

impl Plain {
    pub fn new() -> Plain {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let url = database(&rt);
        rt.block_on(async {
            let c = connect(&url).await;
            c.batch_execute(&format!(
                "CREATE TABLE events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, ts timestamptz, \
                 tenant text, payload text, len int GENERATED ALWAYS AS (length(payload)) STORED);\n\
                 CREATE INDEX ON events (ts);\n\
                 INSERT INTO events (ts, tenant, payload) SELECT '2026-01-01'::timestamptz + (d - 1) * interval '1 day' \
                 + i * interval '10 minutes', 'tenant-' || (i % 3), repeat('x', 100) || i \
                 FROM generate_series(1, {DAYS}) d, generate_series(0, 98) i;\n\
                 INSERT INTO events (ts, tenant, payload) VALUES (NULL, 'tenant-0', 'no time'), (NULL, NULL, 'none');\n\
                 ANALYZE events;"
            ))
            .await
            .unwrap();
        });
        Plain {
            db: Db {
                rt,
                url,
                dir: tempfile::tempdir().unwrap(),
                schema: "public".into(),
                table: "events".into(),
                quoted: "\"public\".\"events\"".into(),
            },
        }
    }

    /// Every row of the table, ids included, in id order: what a restore must give back exactly.
    pub fn checksum(&self) -> String {
        self.db.sql(async |c| {
            c.query_one(
                "SELECT md5(coalesce(string_agg(e::text, ',' ORDER BY id), '')) FROM events e",
                &[],
            )
            .await
            .unwrap()
            .get(0)
        })
    }

    /// The table's rows by bucket day (`YYYY-MM-DD`, `none` for no time) and tenant.
    pub fn buckets(&self) -> std::collections::BTreeMap<(String, String), i64> {
        self.db.sql(async |c| {
            c.query(
                "SELECT coalesce(to_char(ts, 'YYYY-MM-DD'), 'none'), coalesce(tenant, '(null)'), count(*) \
                 FROM events GROUP BY 1, 2",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| ((r.get(0), r.get(1)), r.get(2)))
            .collect()
        })
    }

    /// Writes the config: plugin `age_tiering` with `params`, buckets per tenant of `batch` rows a batch, `extra`
    /// lines in `[dataset.postgres]`.
    pub fn config(&self, params: &str, batch: u32, extra: &str) -> std::path::PathBuf {
        let p = self.db.dir.path().join("retention.toml");
        std::fs::write(
            &p,
            format!(
                "plugin_dir = \"{}\"\n[[dataset]]\nname = \"events\"\nplugin = \"age_tiering\"\nparams = {{ {params} }}\n\
                 [dataset.postgres]\nurl = \"{}\"\ntable = \"events\"\ntime_column = \"ts\"\nbucket = \"1 day\"\n\
                 label_columns = [\"tenant\"]\ndelete_batch_rows = {batch}\n{extra}\n",
                super::plugin_dir().display(),
                self.db.url
            ),
        )
        .unwrap();
        p
    }
}
