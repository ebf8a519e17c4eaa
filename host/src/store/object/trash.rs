//! The archive's trash protocols: an object store cannot rename, so a dropped object is copied into
//! `<prefix>/.retention-trash/<batch>/<key as it was>` and then deleted from its key (a restore the other way round);
//! for that one step it exists twice, equal, which recovery settles in favour of the copy at the object's key.

use std::path::Path;

use object_store::path::Path as ObjectPath;

use super::Archive;
use crate::crashpoint::hit_for;
use crate::store::durable::io_err;
use crate::store::{Applied, ChangeToken, StoreError};

/// Deletes an archived object (a drop without grace) unless it changed since the scan.
pub(crate) async fn drop_object(
    archive: &Archive,
    location: &ObjectPath,
    bytes: u64,
    token: ChangeToken,
    root: &Path,
) -> Result<Applied, StoreError> {
    check_object_unchanged(archive, location, bytes, token).await?;
    archive.delete(location).await?;
    hit_for("drop:removed", root).map_err(io_err("cannot drop", root))?;
    Ok(Applied {
        bytes_before: bytes,
        bytes_after: 0,
        trashed: false,
    })
}

/// Moves an archived object into the archive's trash batch `batch`, unless it changed since the scan: a copy under
/// the trash key, then the deletion of the original. A crash between the two leaves two equal copies, which `recover`
/// settles by removing the trash's (the drop is then undone, never lost); a failure after the copy takes it back.
pub(crate) async fn trash_object(
    archive: &Archive,
    location: &ObjectPath,
    batch: &str,
    bytes: u64,
    token: ChangeToken,
    root: &Path,
) -> Result<Applied, StoreError> {
    check_object_unchanged(archive, location, bytes, token).await?;
    let rel = archive.rel_of(location).ok_or_else(|| {
        StoreError::Refused(format!(
            "archive object {} is outside the archive's prefix",
            archive.display(location)
        ))
    })?;
    let dst = archive.trash_key(batch, &rel);
    archive.copy_new(location, &dst).await?;
    if let Err(e) = hit_for("trash:copied", root) {
        let _ = archive.delete(&dst).await;
        return Err(StoreError::io("cannot move to the trash", archive.display(location), e));
    }
    // Should the deletion fail (or its answer be lost), both copies stay: `recover` removes the trash's if they are
    // equal. Taking the trash's copy back here could lose the object if the deletion did happen.
    archive.delete(location).await?;
    if let Err(e) = hit_for("trash:moved", root) {
        // Leave the segment as it was: the action failed.
        let back = match archive.copy_new(&dst, location).await {
            Ok(()) => archive.delete(&dst).await,
            Err(e) => Err(e),
        };
        return Err(match back {
            Ok(()) => StoreError::io("cannot move to the trash", archive.display(location), e),
            Err(back) => StoreError::Refused(format!(
                "{} was moved to the trash as {} but the move failed ({e}) and moving it back too ({back}); \
                 restore it with `retention trash restore`",
                archive.display(location),
                archive.display(&dst)
            )),
        });
    }
    Ok(Applied {
        bytes_before: bytes,
        bytes_after: 0,
        trashed: true,
    })
}

/// The change token of an archived object: its last-modified time, in nanoseconds.
pub(crate) fn token_of(last_modified: chrono::DateTime<chrono::Utc>) -> ChangeToken {
    let ns = last_modified
        .timestamp_nanos_opt()
        .unwrap_or(last_modified.timestamp_millis().saturating_mul(1_000_000));
    ChangeToken([ns as u64, 0])
}

/// Refuses an archived object that is gone, or has another size or last-modified time than the scan saw (an object
/// written anew under the key). Times are compared to the second: a listing and a `HEAD` may give them at different
/// precisions.
pub(crate) async fn check_object_unchanged(
    archive: &Archive,
    location: &ObjectPath,
    bytes: u64,
    token: ChangeToken,
) -> Result<(), StoreError> {
    let what = || format!("archive object {}", archive.display(location));
    let Some((size, modified)) = archive.head(location).await? else {
        return Err(StoreError::Changed {
            what: what(),
            detail: "it is gone".to_string(),
        });
    };
    let seen_s = (token.0[0] as i64).div_euclid(1_000_000_000);
    if size != bytes || modified.timestamp() != seen_s {
        return Err(StoreError::Changed {
            what: what(),
            detail: format!(
                "{bytes} -> {size} bytes, last modified {} -> {}",
                chrono::DateTime::from_timestamp(seen_s, 0).map_or_else(|| seen_s.to_string(), |t| t.to_rfc3339()),
                modified.to_rfc3339()
            ),
        });
    }
    Ok(())
}
