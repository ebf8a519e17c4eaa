//! Archiving: each file uploaded to the archive destination (never over an existing object), read back and compared,
//! the destination made durable, then each source still unchanged and without a writer removed.

use std::fs::File;
use std::io;
use std::sync::Arc;

use futures::StreamExt;
use object_store::path::Path as ObjectPath;

use super::{DirectoryStore, seen_of};
use crate::crashpoint::hit_for;
use crate::store::beneath::{self, FileId};
use crate::store::durable::{io_err, no_writers, open_checked, run_blocking};
use crate::store::object::Archive;
use crate::store::{Applied, StoreError, Work};

pub(super) struct ArchiveJob {
    pub(super) src: String,
    pub(super) location: ObjectPath,
    pub(super) seen: FileId,
}

impl DirectoryStore {
    pub(super) async fn archive_group(
        &self,
        work: &[Work<'_>],
        group: &[(usize, String)],
        parallelism: usize,
        results: &mut [Option<Result<Applied, StoreError>>],
    ) {
        let archive = self.archive.as_ref().expect("checked before");
        let root = self.root();
        let jobs: Vec<ArchiveJob> = group
            .iter()
            .map(|(i, src)| {
                let seg = work[*i].segment;
                ArchiveJob {
                    src: src.clone(),
                    location: archive.key(&seg.locator),
                    seen: seen_of(seg),
                }
            })
            .collect();
        // (1) Upload and verify.
        let mut state: Vec<Result<(), StoreError>> = futures::stream::iter(0..jobs.len())
            .map(|j| self.upload_one(archive, &jobs[j]))
            .buffered(parallelism)
            .collect()
            .await;
        // (2) Make a local destination durable.
        let uploaded: Vec<usize> = (0..jobs.len()).filter(|&j| state[j].is_ok()).collect();
        if !uploaded.is_empty() {
            let synced = async {
                archive.sync().await?;
                hit_for("archive:synced", root).map_err(io_err("cannot sync archive", root))
            };
            if let Err(e) = synced.await {
                for &j in &uploaded {
                    let _ = archive.delete(&jobs[j].location).await;
                    state[j] = Err(e.again());
                }
            }
        }
        // (3) Remove the sources that did not change since the scan and that no process holds open for writing.
        let jobs = Arc::new(jobs);
        let uploaded: Vec<usize> = (0..jobs.len()).filter(|&j| state[j].is_ok()).collect();
        let inner = self.inner.clone();
        let removed = run_blocking(
            &jobs,
            uploaded,
            parallelism,
            move || inner.clone(),
            |inner, job| {
                let root = &inner.root;
                let src = root.display(&job.src);
                let (dir, name, file, now) = match open_checked(root, &job.src, &job.seen) {
                    Ok(x) => x,
                    Err(e) => return Ok(Err(e)),
                };
                let lease = match no_writers(&file, &now, &src) {
                    Ok(l) => l,
                    Err(e) => return Ok(Err(e)),
                };
                beneath::unlink(&dir, name).map_err(io_err("cannot remove source", &src))?;
                drop(lease);
                hit_for("archive:source-removed", &src).map_err(io_err("cannot remove source", &src))?;
                Ok(Ok(()))
            },
        )
        .await;
        for (j, r) in removed {
            state[j] = match r {
                Ok(Ok(())) => Ok(()),
                Ok(Err(refused)) => {
                    // The source stays: the archived copy it no longer matches (or that a writer would outdate) goes.
                    let _ = archive.delete(&jobs[j].location).await;
                    Err(refused)
                }
                Err(e) => Err(e),
            };
        }
        for (j, s) in state.into_iter().enumerate() {
            results[group[j].0] = Some(s.map(|()| Applied {
                bytes_before: jobs[j].seen.size,
                bytes_after: 0,
                trashed: false,
            }));
        }
    }

    /// Phase 1 of an archive for one file: upload, then read back and compare; on failure the object is taken back.
    pub(super) async fn upload_one(&self, archive: &Archive, job: &ArchiveJob) -> Result<(), StoreError> {
        let inner = self.inner.clone();
        let (rel, seen) = (job.src.clone(), job.seen);
        let src = self.inner.root.display(&job.src);
        let file = tokio::task::spawn_blocking(move || -> Result<File, StoreError> {
            let root = &inner.root;
            let (_, _, file, now) = open_checked(root, &rel, &seen)?;
            // A writer still holding the file: not archived now (its later lines would miss the archive).
            drop(no_writers(&file, &now, &root.display(&rel))?);
            Ok(file)
        })
        .await
        .map_err(|e| StoreError::io("cannot read", src.display(), io::Error::other(e.to_string())))??;
        let content = archive.upload(file, &src, &job.location).await?;
        let verified = async {
            hit_for("archive:uploaded", &src).map_err(io_err("cannot archive", &src))?;
            archive.verify(&job.location, &content).await?;
            hit_for("archive:verified", &src).map_err(io_err("cannot archive", &src))
        };
        if let Err(e) = verified.await {
            // We created the object (upload refuses to overwrite): take it back.
            let _ = archive.delete(&job.location).await;
            return Err(e);
        }
        Ok(())
    }
}
