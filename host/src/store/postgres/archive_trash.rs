//! Archived segments (partitions, chunks, buckets) dropped into the archive's own trash, as the directory store's
//! archived files are: an object store cannot rename, so the manifest and the Parquet are copied to
//! `<prefix>/.retention-trash/<trashed_at_ms>-<expires_at_ms>/<key as it was>` and then deleted from their keys (the
//! manifest first: without it a scan no longer lists the segment). A restore copies them back (the Parquet first)
//! and deletes the trash's copies; a purge deletes the trash's copies.
//!
//! **Recovery**, for each pair in the trash of this table's keys:
//! - its manifest and Parquet at their keys as well, the manifest equal to the trash's: an interrupted drop (or a
//!   restore that had copied both back): the trash's copies are removed, the segment stays archived;
//! - the Parquet at its key without its manifest, and the Parquet equal to what the trash's manifest says (size and
//!   SHA-256): a drop interrupted after the manifest's deletion (or a restore before the manifest's copy): the key's
//!   Parquet is deleted, the segment stays in the trash;
//! - anything else (another archive written under the key since) is left as it is.

use crate::segment::{Segment, Tier};
use crate::store::object::{Archive, TrashedObject};
use crate::store::{Applied, Recovery, Skipped, StoreError, TrashEntry};

use super::PostgresConfig;
use super::archive::{self, Manifest, hit, manifest_rel, part, verified};
use super::intent::shown;

/// The failure points of an archived segment's drop into the trash, and of its restore, in protocol order.
pub const CRASH_POINTS: &[&str] = &[
    "pg-archive-trash:copied",
    "pg-archive-trash:manifest-deleted",
    "pg-archive-trash:moved",
];
pub const RESTORE_POINTS: &[&str] = &["pg-archive-untrash:parquet-back", "pg-archive-untrash:back"];

/// An archived segment in the archive's trash.
pub(super) struct TrashedArchive {
    pub entry: TrashEntry,
    /// The Parquet's key as it was (relative to the archive's prefix), and its batch.
    pub rel: String,
    pub batch: String,
    pub manifest: Manifest,
}

/// `<trashed_at_ms>-<expires_at_ms>`, as the directory store names its batches.
fn batch_name(trashed_at_ms: i64, expires_at_ms: i64) -> String {
    format!("{trashed_at_ms}-{expires_at_ms}")
}

fn parse_batch(name: &str) -> Option<(i64, i64)> {
    let (t, e) = name.split_once('-')?;
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
    (digits(t) && digits(e)).then_some(())?;
    Some((t.parse().ok()?, e.parse().ok()?))
}

/// The manifest the trash holds beside a trashed Parquet, if it parses.
async fn trash_manifest(archive: &Archive, batch: &str, rel: &str) -> Result<Option<Manifest>, StoreError> {
    let Some(bytes) = archive.get_small(&archive.trash_key(batch, &manifest_rel(rel))).await? else {
        return Ok(None);
    };
    Ok(serde_json::from_slice(&bytes).ok())
}

/// The Parquets of this table's keys in the archive's trash (`listed`), with their manifests.
async fn pairs(
    archive: &Archive,
    c: &PostgresConfig,
    listed: &[TrashedObject],
) -> Result<Vec<TrashedArchive>, StoreError> {
    let base = format!("{}/{}/", part(&c.schema), part(&c.table));
    let mut out = Vec::new();
    for t in listed {
        let rel = &t.object.rel;
        let Some(rest) = rel.strip_prefix(&base) else {
            continue;
        };
        if rest.contains('/') || !rest.ends_with(".parquet") {
            continue;
        }
        let Some((trashed_at_ms, expires_at_ms)) = parse_batch(&t.batch) else {
            continue;
        };
        let Some(m) = trash_manifest(archive, &t.batch, rel).await? else {
            continue;
        };
        let name = match &m.bucket {
            Some(b) => archive::archived_bucket_name(b, m.archived_at_ms, archive::seq_of(rel)),
            None => shown(&c.schema, &m.partition.0, &m.partition.1),
        };
        out.push(TrashedArchive {
            entry: TrashEntry {
                name,
                tier: Tier::Archived,
                bytes: t.object.size,
                trashed_at_ms,
                expires_at_ms,
                locator: t.object.location.to_string(),
                labels: m.labels.clone(),
            },
            rel: rel.clone(),
            batch: t.batch.clone(),
            manifest: m,
        });
    }
    out.sort_by(|a, b| (a.entry.trashed_at_ms, &a.entry.name).cmp(&(b.entry.trashed_at_ms, &b.entry.name)));
    Ok(out)
}

/// This table's archived segments in the archive's trash, oldest first.
pub(super) async fn list(archive: &Archive, c: &PostgresConfig) -> Result<Vec<TrashedArchive>, StoreError> {
    pairs(archive, c, &archive.list_trash().await?).await
}

async fn delete_quietly(archive: &Archive, key: &object_store::path::Path) -> Result<(), StoreError> {
    match archive.delete(key).await {
        Ok(()) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Moves the archived segment of `segment` into the archive's trash.
pub(super) async fn trash_archived(
    archive: &Archive,
    c: &PostgresConfig,
    segment: &Segment,
    now_ms: i64,
) -> Result<Applied, StoreError> {
    let rel = &segment.locator;
    let key = archive.key(rel);
    match archive.head(&key).await? {
        Some((size, _)) if size == segment.bytes => {}
        _ => {
            return Err(StoreError::Changed {
                what: format!("archived segment {}", segment.name),
                detail: "its object is gone or of another size".into(),
            });
        }
    }
    let batch = batch_name(now_ms, now_ms + c.trash_grace.as_millis() as i64);
    let (manifest_key, parquet_trash) = (archive.key(&manifest_rel(rel)), archive.trash_key(&batch, rel));
    let manifest_trash = archive.trash_key(&batch, &manifest_rel(rel));
    let copied = async {
        archive.copy_new(&manifest_key, &manifest_trash).await?;
        archive.copy_new(&key, &parquet_trash).await?;
        archive
            .sync_objects(&[manifest_trash.clone(), parquet_trash.clone()])
            .await?;
        hit(c, "pg-archive-trash:copied")
    }
    .await;
    if let Err(e) = copied {
        // The segment stays archived as it was: the trash's copies go (recovery would remove them too).
        let _ = delete_quietly(archive, &manifest_trash).await;
        let _ = delete_quietly(archive, &parquet_trash).await;
        return Err(e);
    }
    archive.delete(&manifest_key).await?;
    if let Err(e) = hit(c, "pg-archive-trash:manifest-deleted") {
        // Put the manifest back (the segment stays archived); should that fail, recovery finishes the move.
        if archive.copy_new(&manifest_trash, &manifest_key).await.is_ok() {
            let _ = delete_quietly(archive, &manifest_trash).await;
            let _ = delete_quietly(archive, &parquet_trash).await;
        }
        return Err(e);
    }
    archive.delete(&key).await?;
    archive.sync().await?;
    hit(c, "pg-archive-trash:moved")?;
    Ok(Applied {
        bytes_before: segment.bytes,
        bytes_after: 0,
        trashed: true,
    })
}

/// Deletes the trash's copies of `t` (the manifest first: a Parquet without its manifest is listed by no one).
async fn delete_trashed(archive: &Archive, t: &TrashedArchive) -> Result<(), StoreError> {
    delete_quietly(archive, &archive.trash_key(&t.batch, &manifest_rel(&t.rel))).await?;
    delete_quietly(archive, &archive.trash_key(&t.batch, &t.rel)).await?;
    archive.sync().await
}

/// Purges `entries` that are archived segments in the archive's trash (found by their locators as listed now).
pub(super) async fn purge(
    archive: &Archive,
    c: &PostgresConfig,
    entries: &[TrashEntry],
) -> Result<Vec<TrashEntry>, StoreError> {
    let now = list(archive, c).await?;
    let mut purged = Vec::new();
    for e in entries {
        let Some(t) = now
            .iter()
            .find(|t| t.entry.locator == e.locator && t.entry.name == e.name)
        else {
            continue;
        };
        delete_trashed(archive, t).await?;
        super::drop::hit(c, "pg-purge:dropped")?;
        purged.push(e.clone());
    }
    Ok(purged)
}

/// Puts `t` back at its keys: the Parquet, then the manifest (from then on scans list it), then the trash's copies
/// deleted.
pub(super) async fn restore(archive: &Archive, c: &PostgresConfig, t: &TrashedArchive) -> Result<(), StoreError> {
    let taken = |e: StoreError| match e {
        StoreError::Taken { place, .. } => StoreError::Taken {
            doing: "restore",
            name: t.entry.name.clone(),
            place,
        },
        e => e,
    };
    let key = archive.key(&t.rel);
    let manifest_key = archive.key(&manifest_rel(&t.rel));
    if archive.head(&manifest_key).await?.is_some() {
        return Err(StoreError::Taken {
            doing: "restore",
            name: t.entry.name.clone(),
            place: archive.display(&manifest_key),
        });
    }
    archive
        .copy_new(&archive.trash_key(&t.batch, &t.rel), &key)
        .await
        .map_err(taken)?;
    hit(c, "pg-archive-untrash:parquet-back")?;
    archive
        .copy_new(&archive.trash_key(&t.batch, &manifest_rel(&t.rel)), &manifest_key)
        .await
        .map_err(taken)?;
    archive.sync_objects(&[key, manifest_key]).await?;
    hit(c, "pg-archive-untrash:back")?;
    delete_trashed(archive, t).await
}

/// Settles what an interrupted move into or out of the archive's trash left (see the module's doc).
pub(super) async fn recover(
    archive: &Archive,
    c: &PostgresConfig,
    repair: bool,
    rec: &mut Recovery,
) -> Result<(), StoreError> {
    for t in list(archive, c).await? {
        let key = archive.key(&t.rel);
        let manifest_key = archive.key(&manifest_rel(&t.rel));
        if archive.head(&key).await?.is_none() {
            continue;
        }
        let at_key = archive::manifest(archive, &t.rel).await?;
        match at_key {
            Some(m) if m == t.manifest => {
                if repair {
                    delete_trashed(archive, &t).await?;
                }
                rec.trash_copies_removed.push(t.entry.name.clone());
            }
            None if archive.get_small(&manifest_key).await?.is_none()
                && verified(archive, &t.rel, &t.manifest).await =>
            {
                if repair {
                    archive.delete(&key).await?;
                    archive.sync().await?;
                }
                rec.settled.push(Skipped {
                    name: t.entry.name.clone(),
                    reason: "an interrupted move into the archive's trash had deleted its manifest: its object \
                             deleted too, it is in the trash"
                        .into(),
                });
            }
            _ => {}
        }
    }
    Ok(())
}
