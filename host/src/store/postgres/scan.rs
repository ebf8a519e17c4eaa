//! Listing a partitioned table's leaf partitions as segments.

use crate::segment::{ChangeToken, Labels, Segment, Symbols, Tier};
use crate::store::{Scan, Skipped, StoreError};

use super::PostgresConfig;
use super::backend;
use super::chunk::Hypertable;
use super::config::Layout;

/// `schema.table`, quoted for SQL.
fn qualified(c: &PostgresConfig) -> String {
    super::sql::qualified(&c.schema, &c.table)
}

/// Checks that the table exists and has the layout the config asks for (or, when it says none, the one it has:
/// partitioned for a partitioned table, hypertable for a hypertable, else buckets when `time_column` is set); returns
/// that layout, and the hypertable when it is one. `time_column` on a partitioned table or a hypertable is refused
/// rather than ignored: their segments are their partitions and chunks.
pub(super) async fn check_table(
    client: &tokio_postgres::Client,
    c: &PostgresConfig,
) -> Result<(Layout, Option<Hypertable>), StoreError> {
    let name = qualified(c);
    let row = client
        .query_opt(
            "SELECT p.partstrat::text, format_type(a.atttypid, a.atttypmod), a.attname::text, p.partnatts::int \
             FROM pg_partitioned_table p \
             LEFT JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0] \
             WHERE p.partrelid = to_regclass($1)",
            &[&name],
        )
        .await
        .map_err(|e| backend(format!("cannot read the partitioning of {name}"), e))?;
    let kind: Option<String> = client
        .query_one(
            "SELECT (SELECT relkind::text FROM pg_class WHERE oid = to_regclass($1))",
            &[&name],
        )
        .await
        .map_err(|e| backend(format!("cannot look up {name}"), e))?
        .get(0);
    let Some(kind) = kind else {
        return Err(StoreError::Refused(format!(
            "no table {name} in {}: check `table` (schema.table)",
            c.url
        )));
    };
    check_partman(client, c, &name).await?;
    let hyper = super::chunk::hypertable(client, c).await?;
    match (c.layout, hyper) {
        (Some(Layout::Hypertable), None) => {
            return Err(StoreError::Refused(format!(
                "layout = \"hypertable\", but table {name} is not a TimescaleDB hypertable (or the timescaledb \
                 extension is not installed in this database)"
            )));
        }
        (Some(Layout::Buckets) | None, Some(_)) if c.buckets.is_some() => {
            return Err(StoreError::Refused(format!(
                "table {name} is a TimescaleDB hypertable: its segments are its chunks, not time buckets; remove \
                 time_column (and layout = \"buckets\") from [dataset.postgres]"
            )));
        }
        (Some(Layout::Hypertable) | None, Some(h)) => return Ok((Layout::Hypertable, Some(h))),
        _ => {}
    }
    let buckets = match c.layout {
        Some(Layout::Buckets) => true,
        Some(Layout::Partitioned | Layout::Hypertable) => false,
        None => c.buckets.is_some(),
    };
    if buckets {
        let b = c
            .buckets
            .as_ref()
            .expect("the config requires time_column with layout buckets");
        if kind != "r" {
            return Err(StoreError::Refused(format!(
                "table {name} is {}: time buckets are for a plain table (a partitioned table's segments are its \
                 partitions: remove layout = \"buckets\" and time_column)",
                if kind == "p" {
                    "partitioned"
                } else {
                    "not a plain table"
                }
            )));
        }
        super::bucket::check_columns(client, c, b).await?;
        return Ok((Layout::Buckets, None));
    }
    let Some(row) = row else {
        return Err(StoreError::Refused(format!(
            "table {name} is not partitioned: to make a segment of each time bucket of a plain table, set time_column \
             (the timestamp column, e.g. time_column = \"ts\") and bucket (default \"1 day\") in [dataset.postgres]; \
             TimescaleDB hypertables are not supported yet"
        )));
    };
    let (strategy, ty, column, keys): (String, Option<String>, Option<String>, i32) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let time_typed = ty.as_deref().is_some_and(|t| {
        ["timestamp with time zone", "timestamp without time zone", "date"].contains(&t) || t.starts_with("timestamp(")
    });
    if strategy != "r" || keys != 1 || !time_typed {
        return Err(StoreError::Refused(format!(
            "table {name} is partitioned by {} on {} ({}): only RANGE partitioning on one timestamp or date column is \
             supported",
            match strategy.as_str() {
                "r" => "RANGE",
                "l" => "LIST",
                "h" => "HASH",
                _ => "?",
            },
            column.as_deref().unwrap_or("an expression"),
            ty.as_deref().unwrap_or("?")
        )));
    }
    Ok((Layout::Partitioned, None))
}

/// Every leaf partition of the table: a segment, oldest first; the DEFAULT partition and unbounded ones are skipped.
pub(super) async fn partitions(
    client: &tokio_postgres::Client,
    c: &PostgresConfig,
    symbols: &mut Symbols,
) -> Result<Scan, StoreError> {
    let name = qualified(c);
    // The server parses the bounds (whatever the column's type), in the session's UTC.
    let rows = client
        .query(
            "SELECT n.nspname::text, k.relname::text, k.oid::bigint, k.relfilenode::bigint, \
                    pg_total_relation_size(k.oid)::bigint, k.reltuples::float8, \
                    b.bound = 'DEFAULT', \
                    (extract(epoch FROM (m[1])::timestamptz) * 1000)::bigint, \
                    (extract(epoch FROM (m[2])::timestamptz) * 1000)::bigint, \
                    coalesce((SELECT i.inhdetachpending FROM pg_inherits i WHERE i.inhrelid = k.oid), false) \
             FROM pg_partition_tree(to_regclass($1)) t \
             JOIN pg_class k ON k.oid = t.relid \
             JOIN pg_namespace n ON n.oid = k.relnamespace \
             CROSS JOIN LATERAL (SELECT pg_get_expr(k.relpartbound, k.oid) AS bound) b \
             LEFT JOIN LATERAL (SELECT regexp_match(b.bound, 'FROM \\(''([^'']+)''\\) TO \\(''([^'']+)''\\)') AS m) r \
               ON true \
             WHERE t.isleaf AND t.relid <> to_regclass($1)",
            &[&name],
        )
        .await
        .map_err(|e| backend(format!("cannot list the partitions of {name}"), e))?;
    let mut segments = Vec::with_capacity(rows.len());
    let mut skipped = Vec::new();
    for row in rows {
        let (schema, part): (String, String) = (row.get(0), row.get(1));
        let shown = super::drop::shown_of(c, &schema, &part);
        if row.get::<_, bool>(9) {
            skipped.push(Skipped {
                name: shown,
                reason: "it is being detached (DETACH PARTITION ... CONCURRENTLY of another session, or interrupted)"
                    .into(),
            });
            continue;
        }
        if row.get::<_, bool>(6) {
            skipped.push(Skipped {
                name: shown,
                reason: "the DEFAULT partition is never a segment".into(),
            });
            continue;
        }
        let (Some(start_ms), Some(end_ms)) = (row.get::<_, Option<i64>>(7), row.get::<_, Option<i64>>(8)) else {
            skipped.push(Skipped {
                name: shown,
                reason: "its bounds are not a time range (MINVALUE or MAXVALUE)".into(),
            });
            continue;
        };
        let mut labels: Labels = super::drop::labels_of(c, &schema, &part)
            .iter()
            .map(|(k, v)| (symbols.intern(k), symbols.intern(v)))
            .collect();
        labels.sort_unstable();
        let estimate: f64 = row.get(5);
        segments.push(Segment {
            locator: super::sql::qualified(&schema, &part),
            name: shown,
            tier: Tier::Hot,
            start_ms,
            end_ms,
            // reltuples is -1 before the first ANALYZE: then unknown.
            rows: (estimate >= 0.0).then_some(estimate as u64),
            bytes: row.get::<_, i64>(4).max(0) as u64,
            labels,
            token: ChangeToken([row.get::<_, i64>(2) as u64, row.get::<_, i64>(3) as u64]),
        });
    }
    segments.sort_by(|a, b| a.end_ms.cmp(&b.end_ms).then_with(|| a.name.cmp(&b.name)));
    Ok(Scan { segments, skipped })
}

/// Checks that the session's role can carry out the store's actions on the table. Partitions: act as the owner of
/// the table and of every partition (`ALTER TABLE ... DETACH/ATTACH PARTITION`, `COMMENT ON`, `SET SCHEMA`, `DROP
/// TABLE` need ownership). Buckets: `SELECT`, `INSERT` and `DELETE` on the table (rows are moved, the table is not
/// altered). Both: create schemas in the database (the engine's `_retention` and the trash schemas).
pub(super) async fn check_privileges(
    client: &tokio_postgres::Client,
    c: &PostgresConfig,
    layout: Layout,
) -> Result<(), StoreError> {
    let name = qualified(c);
    let row = client
        .query_one(
            "SELECT current_user::text, has_database_privilege(current_database(), 'CREATE'), current_database()::text, \
                    (SELECT string_agg(DISTINCT pg_get_userbyid(k.relowner), ', ') FROM pg_partition_tree(to_regclass($1)) t \
                     JOIN pg_class k ON k.oid = t.relid WHERE NOT pg_has_role(k.relowner, 'USAGE')), \
                    (SELECT string_agg(p, ', ') FROM unnest(ARRAY['SELECT', 'INSERT', 'DELETE']) p \
                     WHERE NOT has_table_privilege(to_regclass($1), p)), \
                    (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = to_regclass($1) \
                     AND NOT pg_has_role(relowner, 'USAGE'))",
            &[&name],
        )
        .await
        .map_err(|e| backend(format!("cannot check the privileges on {name}"), e))?;
    let (user, create, db, owners, missing): (String, bool, String, Option<String>, Option<String>) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    let owner: Option<String> = row.get(5);
    match layout {
        Layout::Hypertable => {
            if let Some(owner) = owner {
                return Err(StoreError::Refused(format!(
                    "role {user} cannot act on {name}: compress_chunk and drop_chunks need the hypertable owner's \
                     rights, and {owner} owns it: GRANT {owner} TO {user} (see the README's PostgreSQL privileges); \
                     nothing was applied"
                )));
            }
        }
        Layout::Partitioned => {
            if let Some(owners) = owners {
                return Err(StoreError::Refused(format!(
                    "role {user} cannot act on {name}: detaching, attaching and dropping partitions need their \
                     owner's rights, and {owners} owns (some of) them: GRANT {owners} TO {user} (see the README's \
                     PostgreSQL privileges); nothing was applied"
                )));
            }
        }
        Layout::Buckets => {
            if let Some(missing) = missing {
                return Err(StoreError::Refused(format!(
                    "role {user} cannot move the rows of {name}: it lacks {missing}: GRANT SELECT, INSERT, DELETE ON \
                     {name} TO {user} (see the README's PostgreSQL privileges); nothing was applied"
                )));
            }
        }
    }
    if !create {
        return Err(StoreError::Refused(format!(
            "role {user} cannot create schemas in database {db} (the engine's _retention and its trash schemas): \
             GRANT CREATE ON DATABASE {db} TO {user}; nothing was applied"
        )));
    }
    Ok(())
}

/// Refuses a table whose pg_partman config has its own retention on (`part_config.retention` set): partman's
/// maintenance would drop partitions this dataset's plugin keeps (a legal hold included), and the two would fight.
/// Partman creating partitions (`premake`) is fine.
async fn check_partman(client: &tokio_postgres::Client, c: &PostgresConfig, name: &str) -> Result<(), StoreError> {
    let ns: Option<String> = client
        .query_opt(
            "SELECT n.nspname::text FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace \
             WHERE e.extname = 'pg_partman'",
            &[],
        )
        .await
        .map_err(|e| backend("cannot look for pg_partman", e))?
        .map(|r| r.get(0));
    let Some(ns) = ns else { return Ok(()) };
    let config = super::sql::qualified(&ns, "part_config");
    let retention: Option<Option<String>> = client
        .query_opt(
            &format!("SELECT retention FROM {config} WHERE parent_table = $1"),
            &[&format!("{}.{}", c.schema, c.table)],
        )
        .await
        .map_err(|e| backend(format!("cannot read {config}"), e))?
        .map(|r| r.get(0));
    if let Some(Some(retention)) = retention {
        return Err(StoreError::Refused(format!(
            "table {name} is managed by pg_partman with its own retention (retention = '{retention}' in {ns}.part_config): \
             partman's maintenance would drop partitions this dataset keeps, legal holds included. Let this dataset \
             decide: UPDATE {ns}.part_config SET retention = NULL WHERE parent_table = '{}.{}' (partman keeps \
             creating partitions)",
            c.schema, c.table
        )));
    }
    Ok(())
}
