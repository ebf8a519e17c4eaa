//! Restoring an archived segment from its verified Parquet: finding it by the name scans show, checking the
//! table's columns are still the archive's, reading the object back into a local file checked against its manifest,
//! and filling a table by `COPY ... FROM STDIN`; a partition's restore (`unarchive`); the recovery of one that was
//! interrupted. A bucket's and a chunk's restores (`bucket_archive.rs`, `chunk_archive.rs`) use the same pieces.
//!
//! Restore (`retention archive restore`): the Parquet is read back and checked against the manifest, and in one
//! transaction a table like the parent is created, filled by `COPY ... FROM STDIN` (each value in its type's text
//! form), attached with the recorded bound and marked with a restore intent; then the manifest and the Parquet are
//! deleted and the intent cleared. Recovery of a table carrying a restore intent deletes what is left of its
//! objects.

use std::io::Write as _;

use crate::segment::Symbols;
use crate::store::object::{Archive, Content};
use crate::store::{Recovery, Skipped, StoreError};

use super::archive::{Manifest, checked_bound, delete_objects, hit, manifest, manifest_rel, scan, sha_hex};
use super::columnar::{self, Column};
use super::drop::clear_intent;
use super::intent::{Intent, Kind};
use super::sql::{ident, literal, qualified};
use super::{PostgresConfig, backend};

/// The failure points of a restore from the archive, in protocol order.
pub const RESTORE_POINTS: &[&str] = &["pg-unarchive:attached", "pg-unarchive:manifest-deleted"];

/// The intent a restore of `m` (at `rel`) records while it is under way: what the manifest says of where the rows
/// came from.
pub(super) fn restore_intent(m: &Manifest, rel: &str) -> Intent {
    Intent {
        kind: Kind::Restore,
        key: Some(rel.to_string()),
        table: m.table.clone(),
        origin: m.partition.clone(),
        parent: m.parent.clone(),
        bound: m.bound.clone(),
        trash: false,
        trashed_at_ms: m.archived_at_ms,
        expires_at_ms: m.archived_at_ms,
        labels: m.labels.clone(),
        comment: m.comment.clone(),
        bucket: m.bucket.clone(),
    }
}

/// Settles a table carrying a restore intent: the restore committed, so what is left of its objects is deleted.
pub(super) async fn settle_restore(
    client: &tokio_postgres::Client,
    archive: &Archive,
    schema: &str,
    name: &str,
    intent: &Intent,
    rec: &mut Recovery,
) {
    let here = qualified(schema, name);
    match delete_objects(archive, intent.key.as_deref().unwrap_or_default()).await {
        Ok(()) => {
            clear_intent(client, &here, intent).await;
            rec.settled.push(Skipped {
                name: intent.shown(),
                reason: "an interrupted restore from the archive had attached it: its archive objects deleted".into(),
            });
        }
        Err(e) => rec.conflicts.push(Skipped {
            name: intent.shown(),
            reason: format!(
                "an interrupted restore's archive objects could not be deleted ({e}); the next pass tries again"
            ),
        }),
    }
}

/// What a restore from the archive put back.
#[derive(Debug, Clone)]
pub struct Unarchived {
    pub name: String,
    pub rows: u64,
    pub bytes: u64,
    pub archived_at_ms: i64,
}

/// The archived segment shown as `name`: its key and manifest.
pub(super) async fn lookup(
    archive: &Archive,
    c: &PostgresConfig,
    name: &str,
) -> Result<(String, Manifest), StoreError> {
    let (segments, _) = scan(archive, c, &mut Symbols::new()).await?;
    let Some(seg) = segments.into_iter().find(|s| s.name == name) else {
        return Err(StoreError::Refused(format!(
            "no archived partition {name:?} of {}.{} in {}",
            c.schema,
            c.table,
            archive.url()
        )));
    };
    let m = manifest(archive, &seg.locator)
        .await?
        .ok_or_else(|| StoreError::Refused(format!("the manifest of {name:?} is gone")))?;
    Ok((seg.locator, m))
}

/// Refuses a restore of `name` into `table` (quoted) when its columns are not the archive's any more.
pub(super) async fn same_columns(
    client: &tokio_postgres::Client,
    archive: &Archive,
    table: &str,
    rel: &str,
    m: &Manifest,
    name: &str,
) -> Result<(), StoreError> {
    let oid: Option<u32> = client
        .query_one("SELECT to_regclass($1)::oid", &[&table])
        .await
        .map_err(|e| backend(format!("cannot look up {table}"), e))?
        .get(0);
    let oid = oid.ok_or_else(|| StoreError::Refused(format!("cannot restore {name:?}: its table {table} is gone")))?;
    let now_cols = columnar::columns(client, oid, table).await?;
    let names = |cols: &[Column]| {
        cols.iter()
            .map(|c| (c.name.clone(), c.pg_type.clone()))
            .collect::<Vec<_>>()
    };
    if names(&now_cols) != names(&m.columns) {
        return Err(StoreError::Refused(format!(
            "cannot restore {name:?}: the columns of {table} are {:?} now, the archive's are {:?}; restore it into \
             a table of the archive's columns by hand (the Parquet is {})",
            names(&now_cols),
            names(&m.columns),
            archive.display(&archive.key(rel))
        )));
    }
    Ok(())
}

/// The Parquet at `rel`, read back into a local file and checked against its manifest before anything is written,
/// and a reader of its record batches.
pub(super) async fn fetch(
    archive: &Archive,
    rel: &str,
    m: &Manifest,
    name: &str,
) -> Result<
    (
        tempfile::NamedTempFile,
        parquet::arrow::arrow_reader::ParquetRecordBatchReader,
    ),
    StoreError,
> {
    let local = tempfile::Builder::new()
        .prefix("retention-restore-")
        .suffix(".parquet")
        .tempfile()
        .map_err(|e| StoreError::io("cannot create a temporary file", std::env::temp_dir().display(), e))?;
    let mut reader = archive.reader(&archive.key(rel)).await?;
    let mut out = local
        .reopen()
        .map_err(|e| StoreError::io("cannot write", local.path().display(), e))?;
    let copied = tokio::task::spawn_blocking(move || -> std::io::Result<Content> {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = std::io::Read::read(&mut reader, &mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            out.write_all(&buf[..n])?;
            size += n as u64;
        }
        out.flush()?;
        Ok(Content {
            size,
            sha256: h.finalize().into(),
        })
    })
    .await
    .map_err(|e| StoreError::io("cannot read back", rel, std::io::Error::other(e.to_string())))?
    .map_err(|e| StoreError::io("cannot read back", archive.display(&archive.key(rel)), e))?;
    if copied.size != m.parquet_bytes || sha_hex(&copied) != m.parquet_sha256 {
        return Err(StoreError::Refused(format!(
            "cannot restore {name:?}: its Parquet {} does not read back as its manifest says (size {} for {}, sha256 \
             {} for {}); nothing was written",
            archive.display(&archive.key(rel)),
            copied.size,
            m.parquet_bytes,
            sha_hex(&copied),
            m.parquet_sha256
        )));
    }
    let file =
        std::fs::File::open(local.path()).map_err(|e| StoreError::io("cannot read", local.path().display(), e))?;
    let batches = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.with_batch_size(8192).build())
        .map_err(|e| StoreError::Backend {
            what: format!("cannot read the Parquet of {name:?}"),
            source: Box::new(e),
        })?;
    Ok((local, batches))
}

/// Fills `target` (quoted, created by the caller in `tx`) with the rows of `batches` by `COPY ... FROM STDIN`, the
/// columns that are not generated; refused when they are not the manifest's count.
pub(super) async fn fill(
    tx: &tokio_postgres::Transaction<'_>,
    target: &str,
    m: &Manifest,
    batches: parquet::arrow::arrow_reader::ParquetRecordBatchReader,
    name: &str,
) -> Result<u64, StoreError> {
    let writable: Vec<String> = m
        .columns
        .iter()
        .filter(|c| !c.generated)
        .map(|c| ident(&c.name))
        .collect();
    let sink = tx
        .copy_in::<_, bytes::Bytes>(&format!(
            "COPY {target} ({}) FROM STDIN (FORMAT csv)",
            writable.join(", ")
        ))
        .await
        .map_err(|e| backend(format!("cannot fill {target}"), e))?;
    let mut sink = std::pin::pin!(sink);
    let mut rows = 0u64;
    for batch in batches {
        let batch = batch.map_err(|e| StoreError::Backend {
            what: format!("cannot read the Parquet of {name:?}"),
            source: Box::new(e),
        })?;
        rows += batch.num_rows() as u64;
        let csv = columnar::csv(&batch, &m.columns)
            .map_err(|e| StoreError::Refused(format!("cannot restore {name:?}: {e}")))?;
        futures::SinkExt::send(&mut sink, bytes::Bytes::from(csv))
            .await
            .map_err(|e| backend(format!("cannot fill {target}"), e))?;
    }
    sink.as_mut()
        .finish()
        .await
        .map_err(|e| backend(format!("cannot fill {target}"), e))?;
    if rows != m.rows {
        return Err(StoreError::Refused(format!(
            "cannot restore {name:?}: its Parquet holds {rows} rows, its manifest says {}; nothing was written",
            m.rows
        )));
    }
    Ok(rows)
}

/// Restores the archived partition shown as `name` (key `rel`, manifest `m`) into the table.
pub(super) async fn unarchive(
    client: &mut tokio_postgres::Client,
    archive: &Archive,
    c: &PostgresConfig,
    name: &str,
    rel: &str,
    m: Manifest,
) -> Result<Unarchived, StoreError> {
    let (schema, orig) = &m.partition;
    let target = qualified(schema, orig);
    let parent = qualified(&m.parent.0, &m.parent.1);
    super::sql::free_for_restore(client, &target, name).await?;
    same_columns(client, archive, &parent, rel, &m, name).await?;
    let bound = checked_bound(&m.bound)?.to_string();
    let (_local, batches) = fetch(archive, rel, &m, name).await?;
    let intent = restore_intent(&m, rel);
    let tx = client
        .transaction()
        .await
        .map_err(|e| backend("cannot begin a transaction", e))?;
    tx.batch_execute(&format!(
        "CREATE TABLE {target} (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED \
         INCLUDING STORAGE)"
    ))
    .await
    .map_err(|e| backend(format!("cannot create {target}"), e))?;
    let rows = fill(&tx, &target, &m, batches, name).await?;
    tx.batch_execute(&format!(
        "ALTER TABLE {parent} ATTACH PARTITION {target} {bound}; COMMENT ON TABLE {target} IS {}",
        literal(&intent.to_comment())
    ))
    .await
    .map_err(|e| {
        let e = backend(format!("cannot attach {target} to {parent}"), e);
        match super::sql::code(&e).as_deref() {
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
    hit(c, "pg-unarchive:attached")?;
    archive.delete(&archive.key(&manifest_rel(rel))).await?;
    hit(c, "pg-unarchive:manifest-deleted")?;
    archive.delete(&archive.key(rel)).await?;
    archive.sync().await?;
    clear_intent(client, &target, &intent).await;
    Ok(Unarchived {
        name: name.to_string(),
        rows,
        bytes: m.parquet_bytes,
        archived_at_ms: m.archived_at_ms,
    })
}
