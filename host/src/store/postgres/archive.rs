//! Archiving a partition as Parquet to the dataset's archive destination, crash-safely; archived partitions in
//! scans (tier archived); dropping one; restoring one into the table.
//!
//! Archive, per partition:
//! 1. Check the partition is what the scan saw, and that every column's type can be held (nothing is written
//!    otherwise), and that its keys are free.
//! 2. Record the intent on the table ([`Intent`] with `kind` archive and the object's key).
//! 3. Detach it as a drop does (`CONCURRENTLY`, or a plain DETACH in a short transaction beside a DEFAULT
//!    partition): the parent's writers no longer reach it.
//! 4. In one transaction holding a SHARE lock on the detached table (so that nothing writes to it between the copy
//!    and the drop: late rows can never be deleted unarchived): read every row by binary COPY into a local Parquet
//!    file (zstd, bounded row groups), upload it under a staging key (`.retention-tmp/<uuid>.parquet`), read it back
//!    and compare size and SHA-256, copy it to its key `<schema>/<table>/<partition>.parquet` (never replacing one),
//!    write the manifest beside it (`.manifest.json`: table, columns and types, rows, time range, the Parquet's
//!    size and SHA-256, the rows' digest), then `DROP TABLE` and commit.
//!
//! Recovery of a table still carrying an archive intent: attached, the copy never began: the intent is cleared;
//! detach-pending: finalised, then as detached; detached: if the manifest is there, its Parquet reads back equal
//! to it and the table's rows digest to the manifest's, the rows are in a verified archive and the table is
//! dropped; otherwise the objects are deleted and the partition attached again (a later pass archives it anew).
//! So every row is always in the table (attached or detached with its intent) or in a verified archive object.
//!
//! Restoring one is `unarchive.rs`.

use serde::{Deserialize, Serialize};

use crate::crashpoint;
use crate::segment::{ChangeToken, Labels, Segment, Symbols, Tier};
use crate::store::object::{Archive, Content, STAGING_DIR};
use crate::store::{Applied, Recovery, Skipped, StoreError};

use super::columnar::{self, Column};
use super::drop::labels_of;
use super::intent::{BucketRef, Intent, Kind, shown};
use super::sql::{exec, literal, qualified};
use super::{PostgresConfig, backend};

/// The failure points of the archive, in protocol order (names for [`crate::crashpoint`]).
pub const CRASH_POINTS: &[&str] = &[
    "pg-archive:intent-recorded",
    "pg-archive:detached",
    "pg-archive:copied",
    "pg-archive:staged",
    "pg-archive:final",
    "pg-archive:manifest",
    "pg-archive:dropped",
];

pub(super) fn hit(c: &PostgresConfig, point: &str) -> Result<(), StoreError> {
    crashpoint::hit_for(point, &c.scope).map_err(|e| StoreError::io("crash point", point, e))
}

/// What the manifest beside an archived partition's Parquet says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// `retention-postgres-archive/1`.
    pub format: String,
    /// The dataset's table, the partition and its direct parent (schema, name).
    pub table: (String, String),
    pub partition: (String, String),
    pub parent: (String, String),
    /// Its bound as the server printed it, which a restore attaches it with.
    pub bound: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub columns: Vec<Column>,
    pub rows: u64,
    /// The order-independent digest of the rows ([`columnar::Read`]), hex.
    pub rows_digest: String,
    pub parquet_bytes: u64,
    pub parquet_sha256: String,
    pub archived_at_ms: i64,
    pub labels: Vec<(String, String)>,
    /// The table's comment before, put back by a restore.
    pub comment: Option<String>,
    /// For a bucket of a plain table: which rows (the object holds the rows moved out of the bucket; `partition` is
    /// then the table itself and `bound` empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<BucketRef>,
}

const FORMAT: &str = "retention-postgres-archive/1";

/// A name as one key part: `%` and `/` escaped (the archive percent-encodes the rest).
pub(super) fn part(name: &str) -> String {
    name.replace('%', "%25").replace('/', "%2F")
}

/// The key of partition `schema.name` of `c`'s table, relative to the archive's prefix.
pub fn rel(c: &PostgresConfig, schema: &str, name: &str) -> String {
    let base = format!("{}/{}/", part(&c.schema), part(&c.table));
    if schema == c.schema {
        format!("{base}{}.parquet", part(name))
    } else {
        format!("{base}{}.{}.parquet", part(schema), part(name))
    }
}

pub(super) fn manifest_rel(rel: &str) -> String {
    format!("{}.manifest.json", rel.strip_suffix(".parquet").unwrap_or(rel))
}

pub(super) fn sha_hex(c: &Content) -> String {
    hex::encode(c.sha256)
}

/// A repeatable-read transaction holding a SHARE lock on the detached table `here` (quoted): nothing writes to it
/// until the transaction ends, so the rows it reads are the rows it may drop.
pub(super) async fn locked<'a>(
    client: &'a mut tokio_postgres::Client,
    here: &str,
) -> Result<tokio_postgres::Transaction<'a>, StoreError> {
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .start()
        .await
        .map_err(|e| backend("cannot begin a transaction", e))?;
    tx.batch_execute(&format!("LOCK TABLE {here} IN SHARE MODE"))
        .await
        .map_err(|e| backend(format!("cannot lock {here}"), e))?;
    Ok(tx)
}

/// Archives the partition of `segment`.
pub(super) async fn archive_partition(
    client: &mut tokio_postgres::Client,
    archive: &Archive,
    c: &PostgresConfig,
    segment: &Segment,
    now_ms: i64,
) -> Result<Applied, StoreError> {
    let p = super::drop::unchanged(client, c, segment).await?;
    let here = qualified(&p.schema, &p.name);
    let cols = columnar::columns(client, p.oid, &here).await?;
    let rel = rel(c, &p.schema, &p.name);
    keys_free(archive, &rel, &segment.name).await?;
    let intent = Intent {
        kind: Kind::Archive,
        key: Some(rel.clone()),
        table: (c.schema.clone(), c.table.clone()),
        origin: (p.schema.clone(), p.name.clone()),
        parent: p.parent.clone(),
        bound: p.bound.clone(),
        trash: false,
        trashed_at_ms: now_ms,
        expires_at_ms: now_ms,
        labels: labels_of(c, &p.schema, &p.name),
        comment: p.comment.clone(),
        bucket: None,
    };
    exec(
        client,
        || format!("cannot record the intent to archive {here}"),
        &format!("COMMENT ON TABLE {here} IS {}", literal(&intent.to_comment())),
    )
    .await?;
    hit(c, "pg-archive:intent-recorded")?;
    // Beside a DEFAULT partition, where CONCURRENTLY is refused, the plain DETACH on its own: its ACCESS EXCLUSIVE lock
    // on the parent lasts that one statement (the copy that follows holds only the detached table).
    let how = if p.parent_has_default { "" } else { " CONCURRENTLY" };
    super::drop::detach(client, c, segment, &p, &intent, how).await?;
    hit(c, "pg-archive:detached")?;
    let (start_ms, end_ms) = (segment.start_ms, segment.end_ms);
    match copy_out(
        client,
        archive,
        c,
        &p.schema,
        &p.name,
        &intent,
        &cols,
        (start_ms, end_ms),
        now_ms,
        &format!("DROP TABLE {here}"),
    )
    .await
    {
        Ok(()) => Ok(Applied {
            bytes_before: segment.bytes,
            bytes_after: 0,
            trashed: false,
        }),
        Err(e) => {
            // The table is detached, still holding every row: settle it now rather than leave it out of the table
            // until the next pass (forward if the archive is verified, else back into the table).
            let mut rec = Recovery::default();
            settle_archive(client, archive, &p.schema, &p.name, &intent, false, &mut rec).await;
            Err(e)
        }
    }
}

/// Step 4: the copy, the verified upload, the manifest, the drop (`drop_sql`), in one transaction holding the table's
/// SHARE lock. (A bucket's archive calls it on the table its rows were moved into, a chunk's on the attached chunk.)
#[allow(clippy::too_many_arguments)]
pub(super) async fn copy_out(
    client: &mut tokio_postgres::Client,
    archive: &Archive,
    c: &PostgresConfig,
    schema: &str,
    name: &str,
    intent: &Intent,
    cols: &[Column],
    (start_ms, end_ms): (i64, i64),
    now_ms: i64,
    drop_sql: &str,
) -> Result<(), StoreError> {
    let here = qualified(schema, name);
    let rel = intent.key.clone().expect("an archive intent has a key");
    let tx = locked(client, &here).await?;
    // The Parquet goes straight to its staging key in a local destination, else to a local file uploaded after.
    let staged = archive.key(&format!("{STAGING_DIR}/{}.parquet", uuid::Uuid::new_v4()));
    let io = |p: &std::path::Path, e: std::io::Error| StoreError::io("cannot write", p.display(), e);
    let (file, temp) = match archive.local_path(&staged) {
        Some(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
            }
            let f = std::fs::File::create_new(&path).map_err(|e| io(&path, e))?;
            (f, None)
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("retention-archive-")
                .suffix(".parquet")
                .tempfile()
                .map_err(|e| StoreError::io("cannot create a temporary file", std::env::temp_dir().display(), e))?;
            (t.reopen().map_err(|e| io(t.path(), e))?, Some(t))
        }
    };
    let writer = columnar::Writer::start(file, cols)?;
    let read = columnar::read(&tx, cols, &here, Some(&writer.batches)).await;
    let written = writer.finish().await;
    let read = read?;
    let (parquet_rows, mut content) = written?;
    if parquet_rows != read.rows {
        return Err(StoreError::Refused(format!(
            "the Parquet of {here} holds {parquet_rows} rows, {} were read",
            read.rows
        )));
    }
    hit(c, "pg-archive:copied")?;
    if let Some(t) = &temp {
        let file = std::fs::File::open(t.path()).map_err(|e| io(t.path(), e))?;
        let uploaded = archive.upload(file, t.path(), &staged).await?;
        if uploaded != content {
            return Err(StoreError::Refused(format!(
                "the Parquet of {here} changed while it was uploaded (sha256 {} instead of {})",
                sha_hex(&uploaded),
                sha_hex(&content)
            )));
        }
        content = uploaded;
    }
    archive.verify(&staged, &content).await?;
    hit(c, "pg-archive:staged")?;
    let key = archive.key(&rel);
    archive.copy_new(&staged, &key).await?;
    archive.delete(&staged).await?;
    hit(c, "pg-archive:final")?;
    let manifest = Manifest {
        format: FORMAT.into(),
        table: intent.table.clone(),
        partition: intent.origin.clone(),
        parent: intent.parent.clone(),
        bound: intent.bound.clone(),
        start_ms,
        end_ms,
        columns: cols.to_vec(),
        rows: read.rows,
        rows_digest: read.digest_hex(),
        parquet_bytes: content.size,
        parquet_sha256: sha_hex(&content),
        archived_at_ms: now_ms,
        labels: intent.labels.clone(),
        comment: intent.comment.clone(),
        bucket: intent.bucket.clone(),
    };
    let mut json = serde_json::to_vec_pretty(&manifest).expect("a manifest serialises");
    json.push(b'\n');
    let manifest_key = archive.key(&manifest_rel(&rel));
    archive.put_new(&manifest_key, json.into()).await?;
    archive.sync_objects(&[key, manifest_key]).await?;
    hit(c, "pg-archive:manifest")?;
    tx.batch_execute(drop_sql)
        .await
        .map_err(|e| backend(format!("cannot drop {here} after archiving it"), e))?;
    tx.commit()
        .await
        .map_err(|e| backend(format!("cannot commit the archive of {here}"), e))?;
    hit(c, "pg-archive:dropped")?;
    Ok(())
}

/// The manifest at `rel`'s manifest key, if there is one that parses.
pub(super) async fn manifest(archive: &Archive, rel: &str) -> Result<Option<Manifest>, StoreError> {
    let Some(bytes) = archive.get_small(&archive.key(&manifest_rel(rel))).await? else {
        return Ok(None);
    };
    Ok(serde_json::from_slice(&bytes)
        .ok()
        .filter(|m: &Manifest| m.format == FORMAT))
}

/// Whether the Parquet at `rel` reads back as `m` says (size and SHA-256).
pub(super) async fn verified(archive: &Archive, rel: &str, m: &Manifest) -> bool {
    let Ok(sha) = hex::decode(&m.parquet_sha256) else {
        return false;
    };
    let Ok(sha256) = <[u8; 32]>::try_from(sha) else {
        return false;
    };
    let expected = Content {
        size: m.parquet_bytes,
        sha256,
    };
    archive.verify(&archive.key(rel), &expected).await.is_ok()
}

pub(super) async fn delete_objects(archive: &Archive, rel: &str) -> Result<(), StoreError> {
    for key in [manifest_rel(rel), rel.to_string()] {
        let key = archive.key(&key);
        match archive.delete(&key).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    archive.sync().await
}

/// Drops table `here` (quoted) if the manifest of `rel` is there, its Parquet reads back as it says, and the table's
/// rows digest to the manifest's (read under the SHARE lock the drop is made in): an interrupted archive finished.
pub(super) async fn drop_if_archived(
    client: &mut tokio_postgres::Client,
    archive: &Archive,
    here: &str,
    rel: &str,
) -> Result<bool, StoreError> {
    let Some(m) = manifest(archive, rel).await? else {
        return Ok(false);
    };
    if !verified(archive, rel, &m).await {
        return Ok(false);
    }
    let tx = locked(client, here).await?;
    let read = columnar::read(&tx, &m.columns, here, None).await?;
    if read.rows != m.rows || read.digest_hex() != m.rows_digest {
        return Ok(false);
    }
    tx.batch_execute(&format!("DROP TABLE {here}"))
        .await
        .map_err(|e| backend(format!("cannot drop {here}"), e))?;
    tx.commit()
        .await
        .map_err(|e| backend(format!("cannot commit the drop of {here}"), e))?;
    Ok(true)
}

/// Refuses an archive of `name` to `rel` when its object or manifest key is taken.
pub(super) async fn keys_free(archive: &Archive, rel: &str, name: &str) -> Result<(), StoreError> {
    for key in [rel.to_string(), manifest_rel(rel)] {
        let key = archive.key(&key);
        if archive.head(&key).await?.is_some() {
            return Err(StoreError::Taken {
                doing: "archive",
                name: name.to_string(),
                place: archive.display(&key),
            });
        }
    }
    Ok(())
}

/// Settles a detached table carrying an archive intent (see the module's doc): forward when a verified object holds
/// exactly its rows, else back into the table. Records what it did in `rec`.
pub(super) async fn settle_archive(
    client: &mut tokio_postgres::Client,
    archive: &Archive,
    schema: &str,
    name: &str,
    intent: &Intent,
    pending: bool,
    rec: &mut Recovery,
) {
    let here = qualified(schema, name);
    let shown = intent.shown();
    let result: Result<&str, StoreError> = async {
        let parent = qualified(&intent.parent.0, &intent.parent.1);
        if pending {
            exec(
                client,
                || format!("cannot finish detaching {here} from {parent}"),
                &format!("ALTER TABLE {parent} DETACH PARTITION {here} FINALIZE"),
            )
            .await?;
        }
        let rel = intent.key.clone().unwrap_or_default();
        if drop_if_archived(client, archive, &here, &rel).await? {
            return Ok(
                "an interrupted archive had verified its object, which holds exactly the table's rows: the table \
                 dropped",
            );
        }
        delete_objects(archive, &rel).await?;
        let old = intent.comment.as_deref().map_or("NULL".to_string(), literal);
        let tx = client
            .transaction()
            .await
            .map_err(|e| backend("cannot begin a transaction", e))?;
        tx.batch_execute(&format!(
            "ALTER TABLE {parent} ATTACH PARTITION {here} {}; COMMENT ON TABLE {here} IS {old}",
            checked_bound(&intent.bound)?
        ))
        .await
        .map_err(|e| backend(format!("cannot attach {here} to {parent} again"), e))?;
        tx.commit()
            .await
            .map_err(|e| backend(format!("cannot commit the attach of {here}"), e))?;
        Ok("an interrupted archive had no verified object: what it wrote deleted, the partition attached again")
    }
    .await;
    match result {
        Ok(what) => rec.settled.push(Skipped {
            name: shown,
            reason: what.to_string(),
        }),
        Err(e) => rec.conflicts.push(Skipped {
            name: shown,
            reason: format!(
                "an interrupted archive could not be settled ({e}); its rows stay in {here}; the next pass tries again"
            ),
        }),
    }
}

/// The bound a comment or manifest records, if it has the shape the server prints for a time range (it goes into a
/// statement as text, and a comment is the table owner's to change).
pub(super) fn checked_bound(bound: &str) -> Result<&str, StoreError> {
    let shape = regex::Regex::new(r"^FOR VALUES FROM \('[^'\\]*'\) TO \('[^'\\]*'\)$").expect("a valid regex");
    if shape.is_match(bound) {
        Ok(bound)
    } else {
        Err(StoreError::Refused(format!(
            "the recorded bound {bound:?} is not a time range's"
        )))
    }
}

/// Removes staged uploads an interrupted archive left (`.retention-tmp/`): never a verified object, never needed.
pub(super) async fn remove_staged(archive: &Archive, repair: bool, rec: &mut Recovery) -> Result<(), StoreError> {
    let listing = archive.list_all().await?;
    for staged in listing.staged {
        if repair {
            match archive.delete(&staged).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        rec.temp_removed.push(archive.display(&staged));
    }
    Ok(())
}

/// The `seq` of an archived bucket's key (`<...>_<now_ms>[-<seq>].parquet`, `bucket_archive.rs`).
pub(super) fn seq_of(rel: &str) -> u32 {
    let stem = rel.strip_suffix(".parquet").unwrap_or(rel);
    let last = stem.rsplit('_').next().unwrap_or_default();
    last.split_once('-').and_then(|(_, n)| n.parse().ok()).unwrap_or(0)
}

/// An archived bucket's name: the bucket's and when it was archived (a bucket can be archived more than once: rows
/// written into it later are archived by a later pass), `2026-01-01T00:00Z/acme@20260112T000000Z`.
/// A bucket archived again at the same instant (a clock set by `--now`) is told by its key's `seq`: `...Z-1`.
pub(super) fn archived_bucket_name(b: &BucketRef, archived_at_ms: i64, seq: u32) -> String {
    let at = chrono::DateTime::from_timestamp_millis(archived_at_ms).map_or_else(
        || archived_at_ms.to_string(),
        |t| t.format("%Y%m%dT%H%M%S%.3fZ").to_string(),
    );
    match seq {
        0 => format!("{}@{at}", b.name()),
        n => format!("{}@{at}-{n}", b.name()),
    }
}

/// The archived partitions (and buckets) of the table: a segment each (tier archived), from the manifests.
pub(super) async fn scan(
    archive: &Archive,
    c: &PostgresConfig,
    symbols: &mut Symbols,
) -> Result<(Vec<Segment>, Vec<Skipped>), StoreError> {
    let base = format!("{}/{}/", part(&c.schema), part(&c.table));
    let listing = archive.list_all().await?;
    let mut segments = Vec::new();
    let mut skipped = Vec::new();
    for o in &listing.objects {
        let Some(rest) = o.rel.strip_prefix(&base) else {
            continue;
        };
        if rest.contains('/') || !rest.ends_with(".parquet") {
            continue;
        }
        let Some(m) = manifest(archive, &o.rel).await? else {
            skipped.push(Skipped {
                name: archive.display(&o.location),
                reason: "an archive object without its manifest (an interrupted archive, settled by its table's next \
                         pass)"
                    .into(),
            });
            continue;
        };
        let mut labels: Labels = m
            .labels
            .iter()
            .map(|(k, v)| (symbols.intern(k), symbols.intern(v)))
            .collect();
        labels.sort_unstable();
        let name = match &m.bucket {
            Some(b) => archived_bucket_name(b, m.archived_at_ms, seq_of(&o.rel)),
            None => shown(&c.schema, &m.partition.0, &m.partition.1),
        };
        segments.push(Segment {
            locator: o.rel.clone(),
            name,
            tier: Tier::Archived,
            start_ms: m.start_ms,
            end_ms: m.end_ms,
            rows: Some(m.rows),
            bytes: o.size,
            labels,
            token: ChangeToken([o.size, m.archived_at_ms as u64]),
        });
    }
    Ok((segments, skipped))
}

/// Deletes an archived partition's objects (a drop of tier archived: the manifest first, so that a crash between
/// the two leaves an object no scan lists rather than a manifest without its data).
pub(super) async fn drop_archived(archive: &Archive, segment: &Segment) -> Result<Applied, StoreError> {
    let key = archive.key(&segment.locator);
    match archive.head(&key).await? {
        Some((size, _)) if size == segment.bytes => {}
        _ => {
            return Err(StoreError::Changed {
                what: format!("archived partition {}", segment.name),
                detail: "its object is gone or of another size".into(),
            });
        }
    }
    delete_objects(archive, &segment.locator).await?;
    Ok(Applied {
        bytes_before: segment.bytes,
        bytes_after: 0,
        trashed: false,
    })
}

/// The identifier of a key part, for the tests.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_name_is_one_key_part_whatever_it_holds() {
        assert_eq!(part("a/b%c"), "a%2Fb%25c");
        assert_eq!(
            manifest_rel("public/events/p1.parquet"),
            "public/events/p1.manifest.json"
        );
        assert!(checked_bound("FOR VALUES FROM ('2026-01-01 00:00:00+00') TO ('2026-01-02 00:00:00+00')").is_ok());
        assert!(checked_bound("FOR VALUES FROM ('x') TO ('y'); DROP TABLE t").is_err());
        assert!(checked_bound("DEFAULT").is_err());
    }
}
