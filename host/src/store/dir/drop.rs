//! Dropping: a hot or compressed file renamed into the trash (or, without a grace period, removed), an archived object
//! copied into the archive's trash then deleted (or deleted); each only if still unchanged and without a writer.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use futures::StreamExt;
use rustix::io::Errno;

use super::names::batch_name;
use super::{DirectoryStore, Inner, Located, TRASH_DIR, seen_of, split_rel};
use crate::crashpoint::hit_for;
use crate::store::beneath::{self, DirFd, FileId};
use crate::store::durable::{SyncSet, io_err, no_writers, open_checked, run_blocking};
use crate::store::object::trash::{drop_object, trash_object};
use crate::store::{Applied, StoreError, Work};

/// A local file to drop.
pub(super) struct LocalDrop {
    /// Its path relative to the root (the segment's locator), which it keeps inside the trash.
    pub(super) rel: String,
    pub(super) seen: FileId,
}

impl DirectoryStore {
    pub(super) async fn drop_group(
        &self,
        work: &[Work<'_>],
        group: &[(usize, Located)],
        parallelism: usize,
        now_ms: i64,
        results: &mut [Option<Result<Applied, StoreError>>],
    ) {
        let root = self.root();
        let mut local = Vec::new();
        let mut local_idx = Vec::new();
        let mut objects = Vec::new();
        for (k, (i, loc)) in group.iter().enumerate() {
            let seg = work[*i].segment;
            match loc {
                Located::Local(rel) => {
                    local_idx.push(k);
                    local.push(LocalDrop {
                        rel: rel.clone(),
                        seen: seen_of(seg),
                    });
                }
                Located::Archived(location) => objects.push((*i, location.clone(), seg.bytes, seg.token)),
            }
        }
        // One trash batch per group: the group's files and objects share their trash time and expiry (by the pass's
        // now, the clock purges go by). Its directory is created by the first file moved into it.
        let batch = if self.inner.trash_grace.is_zero() {
            None
        } else {
            match self.blocking(move |inner| inner.new_batch(now_ms)).await {
                Ok(b) => Some(b),
                Err(e) => {
                    for (i, _) in group {
                        results[*i] = Some(Err(e.again()));
                    }
                    return;
                }
            }
        };
        if let Some(archive) = &self.archive {
            let batch_name = batch.as_deref();
            let dropped: Vec<_> = futures::stream::iter(objects)
                .map(|(i, location, bytes, token)| async move {
                    let r = match batch_name {
                        Some(batch) => trash_object(archive, &location, batch, bytes, token, root).await,
                        None => drop_object(archive, &location, bytes, token, root).await,
                    };
                    (i, r)
                })
                .buffer_unordered(parallelism)
                .collect()
                .await;
            for (i, r) in dropped {
                results[i] = Some(r);
            }
        }
        let local = Arc::new(local);
        let inner = self.inner.clone();
        let trash = Arc::new(batch.clone());
        let removed = run_blocking(
            &local,
            (0..local.len()).collect(),
            parallelism,
            move || (inner.clone(), trash.clone()),
            |(inner, trash), job| {
                let root = &inner.root;
                let path = root.display(&job.rel);
                let (dir, name, file, now) = open_checked(root, &job.rel, &job.seen)?;
                let lease = no_writers(&file, &now, &path)?;
                let trashed = match &**trash {
                    Some(batch) => {
                        inner.move_to_trash(&dir, name, &job.rel, batch)?;
                        true
                    }
                    None => {
                        beneath::unlink(&dir, name).map_err(io_err("cannot remove", &path))?;
                        hit_for("drop:removed", &path).map_err(io_err("cannot remove", &path))?;
                        false
                    }
                };
                drop(lease);
                Ok((
                    now.dev,
                    file,
                    Applied {
                        bytes_before: job.seen.size,
                        bytes_after: 0,
                        trashed,
                    },
                ))
            },
        )
        .await;
        let mut syncs = SyncSet::new(&self.inner.root);
        for (j, r) in removed {
            let (i, _) = &group[local_idx[j]];
            results[*i] = Some(r.map(|(dev, file, applied)| {
                syncs.note(dev, || Some(OwnedFd::from(file)));
                applied
            }));
        }
        let any_archived = group.iter().any(|(_, l)| matches!(l, Located::Archived(_)));
        // With a grace period every drop of the group moved something into a trash; without, removed it.
        let point = if batch.is_some() { "trash:synced" } else { "drop:synced" };
        if syncs.is_empty() && !any_archived {
            return;
        }
        let synced = async {
            if !syncs.is_empty() {
                self.sync_and_hit(Arc::new(syncs), point).await?;
            }
            if any_archived && let Some(a) = &self.archive {
                a.sync().await?;
                hit_for(point, root).map_err(io_err("cannot sync", root))?;
            }
            Ok::<(), StoreError>(())
        };
        if let Err(e) = synced.await {
            for (i, _) in group {
                if let Some(Ok(a)) = &results[*i] {
                    let done = if a.trashed { "moved to the trash" } else { "removed" };
                    results[*i] = Some(Err(StoreError::Refused(format!(
                        "{done}, but the {} may not be durable: {e}",
                        if a.trashed { "move" } else { "removal" }
                    ))));
                }
            }
        }
    }
}

impl Inner {
    /// The name of a new trash batch for files trashed at `now_ms` (the pass's now): a batch of that millisecond may
    /// exist (two groups in a row), then the next millisecond is taken. Should another process pick the same name at
    /// the same instant, the no-replace rename still keeps every file.
    pub(super) fn new_batch(&self, now_ms: i64) -> Result<String, StoreError> {
        let grace_ms = i64::try_from(self.trash_grace.as_millis()).unwrap_or(i64::MAX);
        let area = self.area(false, false)?;
        let mut trashed_at = now_ms;
        loop {
            let batch = batch_name(trashed_at, trashed_at.saturating_add(grace_ms));
            if area.as_ref().is_none_or(|a| beneath::stat(a, &batch).is_err()) {
                return Ok(batch);
            }
            trashed_at += 1;
        }
    }

    /// Renames the file `name` of `dir` (the segment at `rel`) into the trash batch `batch` under its relative path:
    /// one atomic step, so the file is in exactly one of the two places at every instant. A failure after the rename
    /// moves it back.
    pub(super) fn move_to_trash(&self, dir: &DirFd<'_>, name: &str, rel: &str, batch: &str) -> Result<(), StoreError> {
        let path = self.root.display(rel);
        let (parent, _) = split_rel(rel);
        let dst_rel = if parent.is_empty() {
            format!("{TRASH_DIR}/{batch}")
        } else {
            format!("{TRASH_DIR}/{batch}/{parent}")
        };
        let dst = self.root.display(&format!("{dst_rel}/{name}"));
        // 0700, the trash itself included: the file's own directories, which may have kept others out, do not come
        // along. Every component is created or opened without following a symlink.
        let to = self.root.create_dirs(&dst_rel, 0o700).map_err(|e| match e.kind() {
            io::ErrorKind::InvalidInput => StoreError::Refused(format!(
                "cannot move {} to the trash: {e}; the trash is only ever a real directory inside the root",
                path.display()
            )),
            _ => StoreError::io(
                "cannot create trash directory",
                self.root.display(&dst_rel).display(),
                e,
            ),
        })?;
        if let Err(e) = beneath::rename_no_replace(dir, name, &to, name) {
            return Err(match e.raw_os_error() {
                Some(code) if code == Errno::XDEV.raw_os_error() => StoreError::Refused(format!(
                    "{} is on another filesystem than the trash {}: it cannot be moved there, so it was left as it \
                     is (trash_grace_secs = 0 deletes at once)",
                    path.display(),
                    self.root.display(TRASH_DIR).display()
                )),
                _ if e.kind() == io::ErrorKind::AlreadyExists => StoreError::Taken {
                    doing: "move to the trash",
                    name: rel.to_string(),
                    place: dst.display().to_string(),
                },
                _ => StoreError::io("cannot move to the trash", path.display(), e),
            });
        }
        if let Err(e) = hit_for("trash:moved", &dst) {
            // Leave the segment as it was: the action failed.
            return Err(match beneath::rename_no_replace(&to, name, dir, name) {
                Ok(()) => StoreError::io("cannot move to the trash", path.display(), e),
                Err(back) => StoreError::Refused(format!(
                    "{} was moved to the trash as {} but the move failed ({e}) and moving it back too ({back}); \
                     restore it with `retention trash restore`",
                    path.display(),
                    dst.display()
                )),
            });
        }
        Ok(())
    }
}
