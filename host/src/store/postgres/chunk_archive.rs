//! Archiving a TimescaleDB chunk as Parquet, crash-safely, compressed or not, and restoring one.
//!
//! **Archive**: the chunk's [`Intent`] recorded on it (kind archive, the object's key, the slice it covers), then in
//! one transaction holding a SHARE lock on the chunk (so nothing writes into it between the copy and the drop: late
//! rows can never be deleted unarchived) the rows are read by binary `COPY` (a compressed chunk's come back
//! decompressed), written as Parquet, uploaded under a staging key, read back and verified, copied to their key
//! `<schema>/<table>/<chunk>.parquet`, the manifest written, and the chunk dropped with `drop_chunks` over exactly
//! its range; then the transaction commits. The chunk is not detached first (TimescaleDB detaches only uncompressed
//! chunks): writers of that time range wait for the copy instead, while every other chunk is written as usual.
//!
//! **Recovery** of a chunk still carrying an archive intent: it is attached and holds every row (the drop commits
//! with the transaction that read them), so what the interrupted archive wrote is deleted and the intent cleared; a
//! later pass archives it anew.
//!
//! **Restore** (`retention archive restore`): the Parquet is read back and checked against its manifest; in one
//! transaction its rows are inserted into the hypertable (`json_populate_recordset` of each batch's values in
//! their text form: TimescaleDB's WebAssembly build has no `COPY ... FROM`), which puts them into a chunk of its
//! current interval (uncompressed: a later pass may compress it again), and the chunks covering the range are
//! marked with a restore intent; then the objects are deleted and the intents cleared (as for a partition, recovery
//! of a restore intent deletes what is left of the objects).

use chrono::{DateTime, Utc};

use crate::segment::Segment;
use crate::store::object::Archive;
use crate::store::{Applied, StoreError};

use super::archive::{self, Manifest, copy_out, delete_objects, hit};
use super::chunk::{self, Hypertable};
use super::columnar;
use super::drop::clear_intent;
use super::intent::{Intent, Kind};
use super::sql::{exec, ident, literal, qualified};
use super::unarchive::{self, Unarchived};
use super::{PostgresConfig, backend};

/// The failure points of a chunk's archive before the copy (the copy's are [`archive::CRASH_POINTS`] from
/// `pg-archive:copied` on).
pub const CRASH_POINTS: &[&str] = &["pg-chunk-archive:intent-recorded"];

/// The failure points of a chunk's restore from the archive, in protocol order.
pub const RESTORE_POINTS: &[&str] = &["pg-chunk-unarchive:inserted", "pg-chunk-unarchive:manifest-deleted"];

fn at(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Refused(format!("chunk time {ms} ms is out of range")))
}

/// Archives the chunk of `segment`.
pub(super) async fn archive_chunk(
    client: &mut tokio_postgres::Client,
    archive: &Archive,
    c: &PostgresConfig,
    h: &Hypertable,
    segment: &Segment,
    now_ms: i64,
) -> Result<Applied, StoreError> {
    chunk::check(client, c, segment).await?;
    let (schema, name, comment, bound) = chunk::slice(client, c, segment).await?;
    let here = qualified(&schema, &name);
    let hyper = qualified(&c.schema, &c.table);
    let oid: u32 = client
        .query_one("SELECT to_regclass($1)::oid", &[&hyper])
        .await
        .map_err(|e| backend(format!("cannot look up {hyper}"), e))?
        .get(0);
    // Every column's type checked before anything is written (the hypertable's: a chunk has its columns).
    let cols = columnar::columns(client, oid, &hyper).await?;
    let rel = archive::rel(c, &schema, &name);
    archive::keys_free(archive, &rel, &segment.name).await?;
    let intent = Intent {
        kind: Kind::Archive,
        key: Some(rel),
        table: (c.schema.clone(), c.table.clone()),
        origin: (schema.clone(), name.clone()),
        parent: (c.schema.clone(), c.table.clone()),
        bound,
        trash: false,
        trashed_at_ms: now_ms,
        expires_at_ms: now_ms,
        labels: super::drop::labels_of(c, &c.schema, &name),
        comment,
        bucket: None,
    };
    exec(
        client,
        || format!("cannot record the intent to archive {here}"),
        &format!("COMMENT ON TABLE {here} IS {}", literal(&intent.to_comment())),
    )
    .await?;
    hit(c, "pg-chunk-archive:intent-recorded")?;
    // drop_chunks over exactly the chunk's range, its bounds in the time column's type (a timestamp or date type,
    // from the catalog), the values quoted.
    let drop_sql = format!(
        "SELECT drop_chunks({}::regclass, older_than => {}::timestamptz::{ty}, newer_than => {}::timestamptz::{ty})",
        literal(&hyper),
        literal(&at(segment.end_ms)?.to_rfc3339()),
        literal(&at(segment.start_ms)?.to_rfc3339()),
        ty = h.time_type
    );
    let copied = copy_out(
        client,
        archive,
        c,
        &schema,
        &name,
        &intent,
        &cols,
        (segment.start_ms, segment.end_ms),
        now_ms,
        &drop_sql,
    )
    .await;
    if let Err(e) = copied {
        // Still a chunk: the drop did not commit and it holds every row, so what was written goes, the intent too.
        // Gone: the drop committed (the error came after, or the commit's answer was lost) and the verified object
        // is the rows' one place: it stays.
        let still_there = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&here])
            .await
            .map(|r| r.get::<_, bool>(0));
        if let Ok(true) = still_there
            && delete_objects(archive, intent.key.as_deref().unwrap_or_default())
                .await
                .is_ok()
        {
            clear_intent(client, &here, &intent).await;
        }
        return Err(e);
    }
    Ok(Applied {
        bytes_before: segment.bytes,
        bytes_after: 0,
        trashed: false,
    })
}

/// Settles an attached chunk carrying an archive intent: its objects deleted, its intent cleared.
pub(super) async fn settle(
    client: &tokio_postgres::Client,
    archive: &Archive,
    here: &str,
    intent: &Intent,
) -> Result<(), StoreError> {
    delete_objects(archive, intent.key.as_deref().unwrap_or_default()).await?;
    clear_intent(client, here, intent).await;
    Ok(())
}

/// Restores the archived chunk shown as `name` (key `rel`, manifest `m`) into the hypertable.
pub(super) async fn unarchive(
    client: &mut tokio_postgres::Client,
    archive: &Archive,
    c: &PostgresConfig,
    name: &str,
    rel: &str,
    m: Manifest,
) -> Result<Unarchived, StoreError> {
    let hyper = qualified(&m.parent.0, &m.parent.1);
    if m.parent != (c.schema.clone(), c.table.clone()) {
        return Err(StoreError::Refused(format!(
            "cannot restore {name:?}: it was archived from {hyper}, not {}.{}",
            c.schema, c.table
        )));
    }
    unarchive::same_columns(client, archive, &hyper, rel, &m, name).await?;
    let (_local, batches) = unarchive::fetch(archive, rel, &m, name).await?;
    let writable: Vec<String> = m
        .columns
        .iter()
        .filter(|c| !c.generated)
        .map(|c| ident(&c.name))
        .collect();
    let cols = writable.join(", ");
    let insert = format!(
        "INSERT INTO {hyper} ({cols}) OVERRIDING SYSTEM VALUE SELECT {cols} FROM \
         json_populate_recordset(NULL::{hyper}, $1::text::json)"
    );
    let tx = client
        .transaction()
        .await
        .map_err(|e| backend("cannot begin a transaction", e))?;
    let mut rows = 0u64;
    for batch in batches {
        let batch = batch.map_err(|e| StoreError::Backend {
            what: format!("cannot read the Parquet of {name:?}"),
            source: Box::new(e),
        })?;
        let json = columnar::json_rows(&batch, &m.columns)
            .map_err(|e| StoreError::Refused(format!("cannot restore {name:?}: {e}")))?;
        rows += tx
            .execute(&insert, &[&json])
            .await
            .map_err(|e| backend(format!("cannot insert the rows of {name:?} into {hyper}"), e))?;
    }
    if rows != m.rows {
        return Err(StoreError::Refused(format!(
            "cannot restore {name:?}: its Parquet holds {rows} rows, its manifest says {}; nothing was written",
            m.rows
        )));
    }
    // The chunks now overlapping the range (of whatever interval), each marked with the restore's intent (and its
    // own comment to put back).
    let marks = tx
        .query(
            "SELECT format('%I.%I', ch.chunk_schema, ch.chunk_name), \
                    obj_description(to_regclass(format('%I.%I', ch.chunk_schema, ch.chunk_name)), 'pg_class') \
             FROM timescaledb_information.chunks ch \
             WHERE ch.hypertable_schema = $1 AND ch.hypertable_name = $2 \
               AND ch.range_start < $3::timestamptz AND ch.range_end > $4::timestamptz",
            &[&m.parent.0, &m.parent.1, &at(m.end_ms)?, &at(m.start_ms)?],
        )
        .await
        .map_err(|e| backend(format!("cannot list the chunks of {hyper}"), e))?;
    let mut marked = Vec::new();
    for r in marks {
        let (chunk, comment): (String, Option<String>) = (r.get(0), r.get(1));
        let intent = Intent {
            comment,
            ..unarchive::restore_intent(&m, rel)
        };
        tx.batch_execute(&format!(
            "COMMENT ON TABLE {chunk} IS {}",
            literal(&intent.to_comment())
        ))
        .await
        .map_err(|e| backend(format!("cannot mark {chunk}"), e))?;
        marked.push((chunk, intent));
    }
    tx.commit()
        .await
        .map_err(|e| backend(format!("cannot commit the restore of {name:?}"), e))?;
    hit(c, "pg-chunk-unarchive:inserted")?;
    archive.delete(&archive.key(&archive::manifest_rel(rel))).await?;
    hit(c, "pg-chunk-unarchive:manifest-deleted")?;
    archive.delete(&archive.key(rel)).await?;
    archive.sync().await?;
    for (chunk, intent) in &marked {
        clear_intent(client, chunk, intent).await;
    }
    Ok(Unarchived {
        name: name.to_string(),
        rows,
        bytes: m.parquet_bytes,
        archived_at_ms: m.archived_at_ms,
    })
}
