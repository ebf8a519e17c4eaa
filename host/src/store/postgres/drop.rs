//! Dropping a partition, crash-safely, without blocking the parent's writers where the server allows it.
//!
//! 1. Check that the partition is what the scan saw (its oid and relfilenode: a `TRUNCATE` or `VACUUM FULL` gives a new
//!    one), still a leaf of the dataset's table, not being detached.
//! 2. Record the intent on the table itself ([`Intent`], a comment, committed): from here on the table says what it
//!    is and how to finish.
//! 3. Detach it. `DETACH PARTITION ... CONCURRENTLY` takes only a SHARE UPDATE EXCLUSIVE lock on the parent, so
//!    writers and readers go on; it cannot run in a transaction block (it is two transactions of the server's) and is
//!    refused while the parent has a DEFAULT partition (pg_partman makes one). Then a plain `DETACH` runs in the
//!    transaction of step 4 instead: it takes an ACCESS EXCLUSIVE lock on the parent for that short transaction, under
//!    `lock_timeout`, so it waits at most that long for running queries and then fails (the next pass tries again).
//! 4. Move it into the batch's trash schema (`SET SCHEMA`, renamed only when that name is taken there), or with no
//!    grace period `DROP TABLE`: one transaction.
//!
//! At every instant every row is in the table (attached, the intent only recorded), in a detached table of the
//! dataset's schema carrying the intent, or in the trash schema; [`super::recover`] finishes steps 3-4 from the first
//! two and clears an intent that never got to detach.

use crate::crashpoint;
use crate::segment::Segment;
use crate::store::{Applied, StoreError};

use super::intent::{Intent, Kind, shown};
use super::sql::{exec, ident, literal, qualified};
use super::{PostgresConfig, backend};

/// The failure points of the drop, in protocol order (names for [`crate::crashpoint`]).
pub const CRASH_POINTS: &[&str] = &[
    "pg-drop:intent",
    "pg-drop:intent-recorded",
    "pg-drop:detached",
    "pg-drop:moved",
];

pub(super) fn hit(c: &PostgresConfig, point: &str) -> Result<(), StoreError> {
    crashpoint::hit_for(point, &c.scope).map_err(|e| StoreError::io("crash point", point, e))
}

/// A leaf partition as the catalog shows it now.
pub(super) struct Partition {
    pub oid: u32,
    pub relfilenode: u32,
    pub schema: String,
    pub name: String,
    pub parent: (String, String),
    pub detach_pending: bool,
    pub bound: String,
    pub comment: Option<String>,
    pub parent_has_default: bool,
}

/// The partition `locator` names, if it is a leaf partition of the dataset's table.
pub(super) async fn lookup(
    client: &tokio_postgres::Client,
    c: &PostgresConfig,
    locator: &str,
) -> Result<Option<Partition>, StoreError> {
    let row = client
        .query_opt(
            "SELECT k.oid, k.relfilenode::bigint, n.nspname::text, k.relname::text, pn.nspname::text, p.relname::text, \
                    i.inhdetachpending, pg_get_expr(k.relpartbound, k.oid), obj_description(k.oid, 'pg_class'), \
                    EXISTS (SELECT 1 FROM pg_inherits d JOIN pg_class dk ON dk.oid = d.inhrelid \
                            WHERE d.inhparent = p.oid AND pg_get_expr(dk.relpartbound, dk.oid) = 'DEFAULT') \
             FROM pg_class k \
             JOIN pg_namespace n ON n.oid = k.relnamespace \
             JOIN pg_inherits i ON i.inhrelid = k.oid \
             JOIN pg_class p ON p.oid = i.inhparent \
             JOIN pg_namespace pn ON pn.oid = p.relnamespace \
             WHERE k.oid = to_regclass($1) AND k.relispartition \
               AND k.oid IN (SELECT relid FROM pg_partition_tree(to_regclass($2)) WHERE isleaf)",
            &[&locator, &qualified(&c.schema, &c.table)],
        )
        .await
        .map_err(|e| backend(format!("cannot look up partition {locator}"), e))?;
    Ok(row.map(|r| Partition {
        oid: r.get(0),
        relfilenode: r.get::<_, i64>(1) as u32,
        schema: r.get(2),
        name: r.get(3),
        parent: (r.get(4), r.get(5)),
        detach_pending: r.get(6),
        bound: r.get::<_, Option<String>>(7).unwrap_or_default(),
        comment: r.get(8),
        parent_has_default: r.get(9),
    }))
}

/// The partition of `segment`, checked to be what the scan saw: still a leaf of the dataset's table, the same oid and
/// relfilenode (a `TRUNCATE` or `VACUUM FULL` gives a new one), not being detached.
pub(super) async fn unchanged(
    client: &tokio_postgres::Client,
    c: &PostgresConfig,
    segment: &Segment,
) -> Result<Partition, StoreError> {
    let changed = |detail: String| StoreError::Changed {
        what: format!("partition {}", segment.name),
        detail,
    };
    let Some(p) = lookup(client, c, &segment.locator).await? else {
        return Err(changed("it is no longer a partition of the table".into()));
    };
    if [p.oid as u64, p.relfilenode as u64] != segment.token.0 {
        return Err(changed(format!(
            "it is another table now (oid {}, relfilenode {}: truncated, rewritten or re-created)",
            p.oid, p.relfilenode
        )));
    }
    if p.detach_pending {
        return Err(changed("another session is detaching it".into()));
    }
    Ok(p)
}

/// The labels of partition `name` of `schema`: `schema`, `table` and the named captures of `labels` (sorted by key).
pub(super) fn labels_of(c: &PostgresConfig, schema: &str, name: &str) -> Vec<(String, String)> {
    let mut labels = vec![
        ("schema".to_string(), schema.to_string()),
        ("table".to_string(), c.table.clone()),
    ];
    if let Some(re) = &c.labels
        && let Some(caps) = re.captures(name)
    {
        for key in re.capture_names().flatten() {
            if let Some(m) = caps.name(key)
                && !labels.iter().any(|(k, _)| k == key)
            {
                labels.push((key.to_string(), m.as_str().to_string()));
            }
        }
    }
    labels.sort();
    labels
}

/// Drops the partition of `segment`: into the trash when the dataset has a grace period, else for good.
pub(super) async fn drop_partition(
    client: &mut tokio_postgres::Client,
    c: &PostgresConfig,
    segment: &Segment,
    now_ms: i64,
) -> Result<Applied, StoreError> {
    let p = unchanged(client, c, segment).await?;
    let grace_ms = c.trash_grace.as_millis() as i64;
    let intent = Intent {
        kind: Kind::Drop,
        key: None,
        table: (c.schema.clone(), c.table.clone()),
        origin: (p.schema.clone(), p.name.clone()),
        parent: p.parent.clone(),
        bound: p.bound.clone(),
        trash: grace_ms > 0,
        trashed_at_ms: now_ms,
        expires_at_ms: now_ms + grace_ms,
        labels: labels_of(c, &p.schema, &p.name),
        comment: p.comment.clone(),
        bucket: None,
    };
    let here = qualified(&p.schema, &p.name);
    let parent = qualified(&p.parent.0, &p.parent.1);
    hit(c, "pg-drop:intent")?;
    exec(
        client,
        || format!("cannot record the intent to drop {here}"),
        &format!("COMMENT ON TABLE {here} IS {}", literal(&intent.to_comment())),
    )
    .await?;
    hit(c, "pg-drop:intent-recorded")?;
    if p.parent_has_default {
        // CONCURRENTLY is refused beside a DEFAULT partition: the plain DETACH, in the same transaction as the move.
        let tx = client
            .transaction()
            .await
            .map_err(|e| backend("cannot begin a transaction", e))?;
        let detached = tx
            .batch_execute(&format!("ALTER TABLE {parent} DETACH PARTITION {here}"))
            .await
            .map_err(|e| backend(format!("cannot detach {here} from {parent}"), e));
        if let Err(e) = detached {
            drop(tx);
            clear_intent(client, &here, &intent).await;
            return Err(e);
        }
        // Dying here rolls the detach back: the same state as before it.
        hit(c, "pg-drop:detached")?;
        finish_in(&tx, &p.schema, &p.name, &intent).await?;
        tx.commit()
            .await
            .map_err(|e| backend(format!("cannot commit the drop of {here}"), e))?;
    } else {
        detach(client, c, segment, &p, &intent, " CONCURRENTLY").await?;
        hit(c, "pg-drop:detached")?;
        finish(client, &p.schema, &p.name, &intent).await?;
    }
    hit(c, "pg-drop:moved")?;
    Ok(Applied {
        bytes_before: segment.bytes,
        bytes_after: 0,
        trashed: intent.trash,
    })
}

/// Detaches partition `p` (of `segment`, carrying `intent`) on its own, `how` being `" CONCURRENTLY"` or `""`. When it
/// fails before the detach began (refused, a lock timeout) nothing changed but the comment, which is put back; when it
/// was interrupted between the server's two transactions of a `CONCURRENTLY`, the partition is detach-pending and
/// keeps its intent, which the next pass's recovery finishes.
pub(super) async fn detach(
    client: &tokio_postgres::Client,
    c: &PostgresConfig,
    segment: &Segment,
    p: &Partition,
    intent: &Intent,
    how: &str,
) -> Result<(), StoreError> {
    let here = qualified(&p.schema, &p.name);
    let parent = qualified(&p.parent.0, &p.parent.1);
    let Err(e) = exec(
        client,
        || format!("cannot detach {here} from {parent}"),
        &format!("ALTER TABLE {parent} DETACH PARTITION {here}{how}"),
    )
    .await
    else {
        return Ok(());
    };
    if lookup(client, c, &segment.locator)
        .await
        .ok()
        .flatten()
        .is_some_and(|now| !now.detach_pending)
    {
        clear_intent(client, &here, intent).await;
    }
    Err(e)
}

/// Puts back the comment a drop that did not get to detach replaced (best effort: recovery does it otherwise).
pub(super) async fn clear_intent(client: &tokio_postgres::Client, here: &str, intent: &Intent) {
    let old = intent.comment.as_deref().map_or("NULL".to_string(), literal);
    if let Err(e) = client.batch_execute(&format!("COMMENT ON TABLE {here} IS {old}")).await {
        tracing::warn!("cannot clear the intent to drop {here} (the next pass does): {e}");
    }
}

/// Step 4 of a detached table `schema.name`, in a transaction of its own.
pub(super) async fn finish(
    client: &mut tokio_postgres::Client,
    schema: &str,
    name: &str,
    intent: &Intent,
) -> Result<(), StoreError> {
    let here = qualified(schema, name);
    let tx = client
        .transaction()
        .await
        .map_err(|e| backend("cannot begin a transaction", e))?;
    finish_in(&tx, schema, name, intent).await?;
    tx.commit()
        .await
        .map_err(|e| backend(format!("cannot commit the drop of {here}"), e))
}

/// Moves the detached table into its batch's trash schema (created when it is the batch's first), or drops it.
pub(super) async fn finish_in(
    tx: &tokio_postgres::Transaction<'_>,
    schema: &str,
    name: &str,
    intent: &Intent,
) -> Result<(), StoreError> {
    let here = qualified(schema, name);
    if !intent.trash {
        return tx
            .batch_execute(&format!("DROP TABLE {here}"))
            .await
            .map_err(|e| backend(format!("cannot drop {here}"), e));
    }
    let trash = intent.trash_schema();
    tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {}", ident(&trash)))
        .await
        .map_err(|e| backend(format!("cannot create the trash schema {trash}"), e))?;
    // Two partitions of one name (from two schemas) in one batch: the second is renamed, the comment keeps its name.
    let taken: bool = tx
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&qualified(&trash, name)])
        .await
        .map_err(|e| backend(format!("cannot look up {trash}"), e))?
        .get(0);
    let mut current = here.clone();
    if taken {
        let oid: u32 = tx
            .query_one("SELECT to_regclass($1)::oid", &[&here])
            .await
            .map_err(|e| backend(format!("cannot look up {here}"), e))?
            .get(0);
        let cut: String = name
            .chars()
            .scan(0, |n, ch| {
                *n += ch.len_utf8();
                (*n <= 48).then_some(ch)
            })
            .collect();
        let renamed = format!("{cut}_{oid}");
        tx.batch_execute(&format!("ALTER TABLE {here} RENAME TO {}", ident(&renamed)))
            .await
            .map_err(|e| backend(format!("cannot rename {here}"), e))?;
        current = qualified(schema, &renamed);
    }
    tx.batch_execute(&format!("ALTER TABLE {current} SET SCHEMA {}", ident(&trash)))
        .await
        .map_err(|e| {
            backend(
                format!("cannot move {} into the trash schema {trash}", intent.shown()),
                e,
            )
        })
}

/// The shown name of partition `name` of `schema` of `c`'s table.
pub(super) fn shown_of(c: &PostgresConfig, schema: &str, name: &str) -> String {
    shown(&c.schema, schema, name)
}
