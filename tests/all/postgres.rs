//! The PostgreSQL store against a real server: a RANGE-partitioned table is a dataset whose segments are its leaf
//! partitions, planned by a plugin; bad configs are refused naming the field; a table belongs to one state database.
//! Its actions are tested in `postgres_drop.rs`.

use crate::common;

use std::path::Path;

use common::postgres::Db;
use common::{plugin_dir, retention, run};
use serde_json::Value;

const NOW: &str = "2026-01-12T00:00:00Z";

fn pass(config: &Path, dry_run: bool) -> (i32, Value, String) {
    let mut cmd = retention();
    cmd.args(["run", "--json", "--now", NOW, "--config"]).arg(config);
    if dry_run {
        cmd.arg("--dry-run");
    }
    let (out, stdout, stderr) = run(&mut cmd);
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\n{stderr}"));
    (out.status.code().unwrap_or(-1), v[0].clone(), stderr)
}

#[test]
fn a_partitioned_table_is_planned_partition_by_partition_with_times_from_the_bounds() {
    let db = Db::events(true);
    // A plan of keeps only: the pass runs through.
    let (code, report, stderr) = pass(&db.config("", ""), true);
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_eq!(report["status"], "ok", "{report:#}");
    let segs = report["segments"].as_array().unwrap();
    let names: Vec<&str> = segs.iter().map(|s| s["name"].as_str().unwrap()).collect();
    let want: Vec<String> = (1..=10).map(|d| format!("events_p202601{d:02}")).collect();
    assert_eq!(names, want, "oldest first, the DEFAULT partition left out");
    assert!(segs.iter().all(|s| s["bytes"].as_u64().unwrap() > 0), "{report:#}");
    assert!(
        report["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "events_pdefault"),
        "{report:#}"
    );
    // With drops planned, the dry run shows them (day d ends at d+1 00:00: on 2026-01-12 days 1 to 6 are 5 days
    // old or more), and changes nothing.
    let before = db.checksum();
    let (code, report, _) = pass(&db.config("drop_after_days = 7", ""), true);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["status"], "ok", "{report:#}");
    assert_eq!(db.checksum(), before, "a dry run changes nothing");
    let segs = report["segments"].as_array().unwrap();
    let dropped: Vec<&str> = segs
        .iter()
        .filter(|s| s["action"] == "drop")
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        dropped,
        want[..4].iter().map(String::as_str).collect::<Vec<_>>(),
        "{report:#}"
    );
}

#[test]
fn bad_postgres_configs_are_refused_naming_the_field() {
    let db = Db::events(true);
    let url = &db.url;
    let dir = &db.dir;
    let check = |text: String, want: &str| {
        let p = dir.path().join("bad.toml");
        std::fs::write(&p, text).unwrap();
        let (out, stdout, stderr) = run(retention().args(["run", "--dry-run", "--config"]).arg(&p));
        assert_eq!(out.status.code(), Some(2), "a config error: {stdout}{stderr}");
        assert!(stderr.contains(want), "want {want:?} in: {stderr}");
    };
    let ds = |section: &str| {
        format!(
            "plugin_dir = \"{}\"\n[[dataset]]\nname = \"events\"\nplugin = \"age_tiering\"\n[dataset.postgres]\n{section}\n",
            plugin_dir().display()
        )
    };
    let with_password = url.replacen("postgres@", "postgres:secret@", 1);
    check(
        ds(&format!("url = \"{with_password}\"\ntable = \"events\"")),
        "never put it in the config file",
    );
    check(
        ds(&format!("url = \"{url}\"\ntable = \"events\"\nlayout = \"hash\"")),
        "dataset[0].postgres.layout",
    );
    check(
        ds(&format!("url = \"{url}\"\ntable = \"nope\"")),
        "no table \"public\".\"nope\"",
    );
    check(
        ds(&format!(
            "url = \"{url}\"\ntable = \"events\"\npassword_env = \"RETENTION_TEST_NO_SUCH_VAR\""
        )),
        "RETENTION_TEST_NO_SUCH_VAR, which is not set",
    );
    // A server that is not there (a port nothing listens on), a table partitioned on a key that is not a time.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    check(
        ds(&format!(
            "url = \"postgres://postgres@127.0.0.1:{port}/x\"\ntable = \"events\""
        )),
        &format!("cannot connect to postgres://postgres@127.0.0.1:{port}/x"),
    );
    db.sql(async |c| {
        c.batch_execute(
            "CREATE TABLE by_id (id bigint NOT NULL, v text) PARTITION BY RANGE (id); \
             CREATE TABLE plain (ts timestamptz NOT NULL)",
        )
        .await
        .unwrap()
    });
    check(
        ds(&format!("url = \"{url}\"\ntable = \"by_id\"")),
        "partitioned by RANGE on id (bigint): only RANGE partitioning on one timestamp or date column",
    );
    check(ds(&format!("url = \"{url}\"\ntable = \"plain\"")), "is not partitioned");
    // The buckets layout of a plain table: its column settings checked against the table.
    let plain = |extra: &str| ds(&format!("url = \"{url}\"\ntable = \"plain\"\n{extra}"));
    check(plain("layout = \"buckets\""), "dataset[0].postgres.time_column");
    check(
        plain("time_column = \"tss\""),
        "time_column = \"tss\": table \"public\".\"plain\" has no such column (its columns: ts)",
    );
    check(
        plain("time_column = \"ts\"\nbucket = \"1 month\""),
        "dataset[0].postgres.bucket",
    );
    check(
        plain("time_column = \"ts\"\nlabel_columns = [\"tenant\"]"),
        "label_columns: table \"public\".\"plain\" has no column \"tenant\"",
    );
    check(
        plain("time_column = \"ts\"\ndelete_batch_rows = 0"),
        "dataset[0].postgres.delete_batch_rows",
    );
    check(
        plain("time_column = \"ts\"\nlabel_columns = [\"table\"]"),
        "dataset[0].postgres.label_columns",
    );
    check(plain("label_columns = [\"ts\"]"), "set time_column too");
    // time_column on a partitioned table is refused, not ignored.
    check(
        ds(&format!("url = \"{url}\"\ntable = \"events\"\ntime_column = \"ts\"")),
        "time buckets are for a plain table",
    );
    db.sql(async |c| c.batch_execute("ALTER TABLE plain ADD COLUMN n int").await.unwrap());
    check(
        plain("time_column = \"n\""),
        "column n of \"public\".\"plain\" is integer, not a timestamp or date",
    );
    check(
        ds(&format!(
            "url = \"{url}\"\ntable = \"events\"\nlayout = \"buckets\"\ntime_column = \"ts\""
        )),
        "time buckets are for a plain table",
    );
}

#[test]
fn a_table_belongs_to_the_state_database_that_first_acted_on_it() {
    use retention::store::{Store, StoreError, postgres::PostgresConfig};
    let db = Db::events(true);
    let (rt, url) = (&db.rt, &db.url);
    let raw: retention::store::postgres::RawPostgres =
        toml::from_str(&format!("url = \"{url}\"\ntable = \"events\"")).unwrap();
    let config = PostgresConfig::from_raw(raw, "dataset[0].postgres", Path::new(".")).unwrap();
    rt.block_on(async {
        let store = retention::store::postgres::PostgresStore::open(config).await.unwrap();
        // Nothing recorded: any state database may look; the first to act records itself.
        store.bind_state("events", "db-1", false).await.unwrap();
        store.bind_state("events", "db-2", false).await.unwrap();
        store.bind_state("events", "db-1", true).await.unwrap();
        store.bind_state("events", "db-1", true).await.unwrap();
        store.bind_state("events", "db-1", false).await.unwrap();
        // A lost database re-created empty (without the holds) is refused, saying where the record is.
        let e = store.bind_state("events", "db-2", true).await.unwrap_err();
        assert!(matches!(e, StoreError::OtherState { .. }), "{e}");
        assert!(e.to_string().contains("_retention.state_binding"), "{e}");
        // Another dataset on the same table is a binding of its own.
        store.bind_state("events-copy", "db-2", true).await.unwrap();
    });
    // The engine's schema is never a dataset.
    let raw: retention::store::postgres::RawPostgres =
        toml::from_str(&format!("url = \"{url}\"\ntable = \"_retention.state_binding\"")).unwrap();
    let e = PostgresConfig::from_raw(raw, "dataset[0].postgres", Path::new(".")).unwrap_err();
    assert!(e.problem.contains("the engine's own"), "{}", e.problem);
}

#[test]
fn a_pg_partman_table_is_planned_and_refused_while_partmans_own_retention_is_on() {
    let db = Db::events(false);
    db.sql(async |c| {
        c.batch_execute(
            "CREATE SCHEMA partman; CREATE EXTENSION pg_partman SCHEMA partman; \
             CREATE TABLE metrics (ts timestamptz NOT NULL, v float8) PARTITION BY RANGE (ts); \
             SELECT partman.create_parent(p_parent_table => 'public.metrics', p_control => 'ts', p_type => 'native', \
               p_interval => 'daily', p_premake => 2); \
             UPDATE partman.part_config SET retention = '30 days' WHERE parent_table = 'public.metrics'",
        )
        .await
        .unwrap()
    });
    let cfg = db.dir.path().join("metrics.toml");
    std::fs::write(
        &cfg,
        format!(
            "plugin_dir = \"{}\"\n[[dataset]]\nname = \"metrics\"\nplugin = \"age_tiering\"\n[dataset.postgres]\n\
             url = \"{}\"\ntable = \"metrics\"\n",
            plugin_dir().display(),
            db.url
        ),
    )
    .unwrap();
    let (out, stdout, stderr) = run(retention().args(["run", "--dry-run", "--config"]).arg(&cfg));
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("managed by pg_partman with its own retention (retention = '30 days'"),
        "{stderr}"
    );
    assert!(
        stderr.contains("SET retention = NULL WHERE parent_table = 'public.metrics'"),
        "{stderr}"
    );
    // Partman's retention off: the dataset plans over partman's partitions (its DEFAULT one left out).
    db.sql(async |c| {
        c.batch_execute("UPDATE partman.part_config SET retention = NULL WHERE parent_table = 'public.metrics'")
            .await
            .unwrap()
    });
    let (out, stdout, stderr) = run(retention().args(["run", "--dry-run", "--json", "--config"]).arg(&cfg));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let segments = report[0]["segments"].as_array().unwrap();
    assert!(segments.len() >= 5, "partman premade partitions: {stdout}");
    assert!(
        segments
            .iter()
            .all(|s| s["name"].as_str().unwrap().starts_with("metrics_p")),
        "{stdout}"
    );
    assert!(
        report[0]["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "metrics_default"),
        "{stdout}"
    );
}
