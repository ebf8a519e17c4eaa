//! The trash of a table dataset: dropped partitions, detached and moved into a trash schema of the same database
//! (`_retention_trash_<trashed_at_ms>_<expires_at_ms>`, pg_partman's `retention_schema` idea), each carrying its
//! [`Intent`] (where it came from, its bound, its labels). A restore moves it back and attaches it again with its
//! bound, in one transaction (the server checks every row against the bound); a purge drops it. An emptied trash
//! schema is dropped with its last table.

use crate::segment::Tier;
use crate::store::{StoreError, TrashEntry};

use super::intent::{Intent, PREFIX, trash_prefix, trash_times};
use super::sql::{code, ident, literal, qualified};
use super::{PostgresConfig, backend};

/// A trashed partition, as listed.
pub(super) struct Trashed {
    pub entry: TrashEntry,
    pub schema: String,
    pub name: String,
    pub intent: Intent,
}

pub(super) async fn list(client: &tokio_postgres::Client, c: &PostgresConfig) -> Result<Vec<Trashed>, StoreError> {
    let rows = client
        .query(
            "SELECT n.nspname::text, k.relname::text, d.description, pg_total_relation_size(k.oid)::bigint \
             FROM pg_class k \
             JOIN pg_namespace n ON n.oid = k.relnamespace \
             JOIN pg_description d ON d.objoid = k.oid AND d.classoid = 'pg_class'::regclass AND d.objsubid = 0 \
             WHERE starts_with(n.nspname, $1) AND starts_with(d.description, $2) AND k.relkind IN ('r', 'p')",
            &[&trash_prefix(), &PREFIX],
        )
        .await
        .map_err(|e| backend("cannot list the trash schemas", e))?;
    let mut out = Vec::new();
    for row in rows {
        let (schema, name, comment): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        let (Some(intent), Some((trashed_at_ms, expires_at_ms))) = (Intent::parse(&comment), trash_times(&schema))
        else {
            continue;
        };
        if !intent.of(c) || intent.kind != super::intent::Kind::Drop {
            continue;
        }
        out.push(Trashed {
            entry: TrashEntry {
                name: intent.shown(),
                tier: Tier::Hot,
                bytes: row.get::<_, i64>(3).max(0) as u64,
                trashed_at_ms,
                expires_at_ms,
                locator: qualified(&schema, &name),
                labels: intent.labels.clone(),
            },
            schema,
            name,
            intent,
        });
    }
    out.sort_by(|a, b| (a.entry.trashed_at_ms, &a.entry.name).cmp(&(b.entry.trashed_at_ms, &b.entry.name)));
    Ok(out)
}

/// Drops a trash schema when it holds nothing any more (another pass may be adding to it: then it stays).
async fn drop_schema_if_empty(client: &tokio_postgres::Client, schema: &str) {
    let empty = client
        .query_one(
            "SELECT NOT EXISTS (SELECT 1 FROM pg_class k JOIN pg_namespace n ON n.oid = k.relnamespace \
             WHERE n.nspname = $1)",
            &[&schema],
        )
        .await
        .is_ok_and(|r| r.get::<_, bool>(0));
    if empty
        && let Err(e) = client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {}", ident(schema)))
            .await
    {
        tracing::debug!("trash schema {schema} not dropped: {e}");
    }
}

pub(super) async fn purge(
    client: &tokio_postgres::Client,
    c: &PostgresConfig,
    entries: &[TrashEntry],
) -> Result<Vec<TrashEntry>, StoreError> {
    let now = list(client, c).await?;
    let mut purged = Vec::new();
    for e in entries {
        // Only what the trash lists now: a locator is never trusted to point elsewhere.
        let Some(t) = now
            .iter()
            .find(|t| t.entry.locator == e.locator && t.entry.name == e.name)
        else {
            continue;
        };
        client
            .batch_execute(&format!("DROP TABLE {}", t.entry.locator))
            .await
            .map_err(|err| backend(format!("cannot purge {} ({})", e.name, e.locator), err))?;
        super::drop::hit(c, "pg-purge:dropped")?;
        drop_schema_if_empty(client, &t.schema).await;
        purged.push(e.clone());
    }
    Ok(purged)
}

pub(super) async fn restore(
    client: &mut tokio_postgres::Client,
    c: &PostgresConfig,
    name: &str,
) -> Result<TrashEntry, StoreError> {
    let all = list(client, c).await?;
    let Some(t) = all.into_iter().rev().find(|t| t.entry.name == name) else {
        return Err(StoreError::NotInTrash {
            name: name.to_string(),
            store: format!("{}.{}", c.schema, c.table),
        });
    };
    if t.intent.bucket.is_some() {
        super::bucket::restore(client, c, &t.entry.locator, name).await?;
        drop_schema_if_empty(client, &t.schema).await;
        return Ok(t.entry);
    }
    if t.intent.bound.starts_with('{') {
        // A TimescaleDB chunk: its bound is the slice it covers.
        super::chunk::restore(client, &t.schema, &t.name, &t.intent).await?;
        drop_schema_if_empty(client, &t.schema).await;
        return Ok(t.entry);
    }
    let (schema, orig) = &t.intent.origin;
    let target = qualified(schema, orig);
    super::sql::free_for_restore(client, &target, name).await?;
    // The bound goes into the statement as text: only the shape the server prints for a time range is accepted
    // (a comment is the table owner's to change).
    let bound_shape = regex::Regex::new(r"^FOR VALUES FROM \('[^'\\]*'\) TO \('[^'\\]*'\)$").expect("a valid regex");
    if !bound_shape.is_match(&t.intent.bound) {
        return Err(StoreError::Refused(format!(
            "cannot restore {name:?}: the bound its comment records ({:?}) is not a time range's",
            t.intent.bound
        )));
    }
    let parent = qualified(&t.intent.parent.0, &t.intent.parent.1);
    let old = t.intent.comment.as_deref().map_or("NULL".to_string(), literal);
    let tx = client
        .transaction()
        .await
        .map_err(|e| backend("cannot begin a transaction", e))?;
    let mut current = t.entry.locator.clone();
    if t.name != *orig {
        tx.batch_execute(&format!("ALTER TABLE {current} RENAME TO {}", ident(orig)))
            .await
            .map_err(|e| backend(format!("cannot rename {current}"), e))?;
        current = qualified(&t.schema, orig);
    }
    tx.batch_execute(&format!(
        "ALTER TABLE {current} SET SCHEMA {}; ALTER TABLE {parent} ATTACH PARTITION {target} {}; \
         COMMENT ON TABLE {target} IS {old}",
        ident(schema),
        t.intent.bound
    ))
    .await
    .map_err(|e| {
        let e = backend(format!("cannot attach {target} to {parent} again"), e);
        match code(&e).as_deref() {
            // "would overlap partition ...", "partition constraint ... is violated by some row" (of the DEFAULT).
            Some("42P17") | Some("23514") => StoreError::Refused(format!(
                "cannot restore {name:?}: {e}; the table now has a partition overlapping its bound (or rows of it in \
                 its DEFAULT partition): move those away first"
            )),
            _ => e,
        }
    })?;
    tx.commit()
        .await
        .map_err(|e| backend(format!("cannot commit the restore of {target}"), e))?;
    drop_schema_if_empty(client, &t.schema).await;
    Ok(t.entry)
}
