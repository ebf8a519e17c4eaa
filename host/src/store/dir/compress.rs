//! Compression: each hot file to `<file>.zst` beside it, in phases so that durability costs one `syncfs` per phase
//! for a whole group: (1) compress to tagged temporaries, in parallel; (2) sync; (3) rename into place without
//! replacing anything; (4) sync; (5) remove each source still unchanged and without a writer.

use std::collections::HashMap;
use std::fs::{File, FileTimes, Permissions};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use super::{DirectoryStore, Inner, WHOLE_FILE, ZST, rel_join, seen_of, split_rel};
use crate::crashpoint::hit_for;
use crate::store::beneath::{self, FileId};
use crate::store::durable::{SyncSet, io_err, no_writers, open_checked, remove_ours, run_blocking};
use crate::store::{Applied, StoreError, Work};

#[derive(Debug, Clone)]
pub(super) struct CompressJob {
    /// The source, relative to the root.
    pub(super) src: String,
    /// The file name, in the source's directory, of the `.zst` it becomes.
    pub(super) dst_name: String,
    pub(super) seen: FileId,
}

/// What phase 1 of a compression made.
pub(super) struct Compressed {
    /// The temporary's file name, beside the source.
    pub(super) tmp_name: String,
    pub(super) dev: u64,
    /// The temporary's inode: the copy this action made, which only it may remove.
    pub(super) tmp_ino: u64,
    pub(super) zsize: u64,
    /// A descriptor on the temporary's filesystem, to sync it.
    pub(super) handle: Option<OwnedFd>,
}

/// A compression thread's state: one zstd context and buffers reused across files, as the zstd CLI does.
pub(super) struct Compressor {
    cctx: zstd::zstd_safe::CCtx<'static>,
    input: Vec<u8>,
    output: Vec<u8>,
}

impl Compressor {
    pub(super) fn new(level: i32) -> Compressor {
        use zstd::zstd_safe::{CCtx, CParameter};
        let mut cctx = CCtx::create();
        // Level is validated by the config (1..=19); the checksum lets any reader detect a corrupt copy.
        let _ = cctx.set_parameter(CParameter::CompressionLevel(level));
        let _ = cctx.set_parameter(CParameter::ChecksumFlag(true));
        Compressor {
            cctx,
            input: Vec::new(),
            output: Vec::new(),
        }
    }

    /// Phase 1 for one file: compresses the source into its temporary, beside it.
    pub(super) fn run(&mut self, inner: &Inner, job: &CompressJob) -> Result<Compressed, StoreError> {
        let root = &inner.root;
        let src_path = root.display(&job.src);
        let (dir, _, src, before) = open_checked(root, &job.src, &job.seen)?;
        // A file a process still holds open for writing is not compressed now (its next lines would be lost).
        drop(no_writers(&src, &before, &src_path)?);
        // The key is made when the first temporary is (so a pass that compresses nothing creates nothing).
        let key = inner.temp_key(true)?.expect("temp_key(true) makes a key");
        let tmp_name = key.temp_name(&format!("{}{ZST}", job.src));
        let tmp_path = root.display(&rel_join(split_rel(&job.src).0, &tmp_name));
        let mut out = beneath::create_new(&dir, &tmp_name, 0o600).map_err(io_err("cannot create", &tmp_path))?;
        let r = self.write(job, &src_path, &tmp_path, &src, &before, &mut out);
        let tmp_ino = out.metadata().map(|m| std::os::unix::fs::MetadataExt::ino(&m));
        match (r, tmp_ino) {
            (Ok(zsize), Ok(tmp_ino)) => Ok(Compressed {
                tmp_name,
                dev: before.dev,
                tmp_ino,
                zsize,
                handle: Some(OwnedFd::from(out)),
            }),
            (r, ino) => {
                let _ = beneath::unlink(&dir, &tmp_name);
                Err(match (r, ino) {
                    (Err(e), _) => e,
                    (_, Err(e)) => StoreError::io("cannot write", tmp_path.display(), e),
                    (Ok(_), Ok(_)) => unreachable!(),
                })
            }
        }
    }

    fn write(
        &mut self,
        job: &CompressJob,
        src_path: &Path,
        tmp_path: &Path,
        mut src: &File,
        before: &FileId,
        out: &mut File,
    ) -> Result<u64, StoreError> {
        let len = before.size;
        let changed = || StoreError::Changed {
            what: src_path.display().to_string(),
            detail: "while being compressed".to_string(),
        };
        let _ = job;
        let wr = io_err("cannot write", tmp_path);
        let zsize = if len <= WHOLE_FILE {
            self.input.clear();
            src.take(len + 1)
                .read_to_end(&mut self.input)
                .map_err(io_err("cannot read", src_path))?;
            if self.input.len() as u64 != len {
                return Err(changed());
            }
            self.output.clear();
            self.output.reserve(zstd::zstd_safe::compress_bound(self.input.len()));
            self.cctx
                .compress2(&mut self.output, &self.input)
                .map_err(|c| wr(io::Error::other(zstd::zstd_safe::get_error_name(c))))?;
            let half = self.output.len() / 2;
            out.write_all(&self.output[..half])
                .map_err(io_err("cannot write", tmp_path))?;
            hit_for("compress:tmp-partial", tmp_path).map_err(io_err("cannot write", tmp_path))?;
            out.write_all(&self.output[half..])
                .map_err(io_err("cannot write", tmp_path))?;
            self.output.len() as u64
        } else {
            let mut enc = zstd::stream::write::Encoder::with_context(
                io::BufWriter::with_capacity(1 << 20, &mut *out),
                &mut self.cctx,
            );
            // The frame header then records the size, as the CLI's does; a file that grows breaks the frame.
            enc.set_pledged_src_size(Some(len))
                .map_err(io_err("cannot compress", src_path))?;
            let mut buf = vec![0u8; 1 << 20];
            let mut total = 0u64;
            loop {
                let n = match src.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(StoreError::io("cannot read", src_path.display(), e)),
                };
                total += n as u64;
                if total > len {
                    return Err(changed());
                }
                enc.write_all(&buf[..n]).map_err(io_err("cannot write", tmp_path))?;
                if total == n as u64 {
                    hit_for("compress:tmp-partial", tmp_path).map_err(io_err("cannot write", tmp_path))?;
                }
            }
            if total != len {
                return Err(changed());
            }
            let mut w = enc.finish().map_err(io_err("cannot write", tmp_path))?;
            w.flush().map_err(io_err("cannot write", tmp_path))?;
            drop(w);
            out.metadata().map_err(io_err("cannot write", tmp_path))?.len()
        };
        let after = src.metadata().map_err(io_err("cannot read", src_path))?;
        let after_id = {
            use std::os::unix::fs::MetadataExt;
            FileId {
                dev: after.dev(),
                ino: after.ino(),
                size: after.len(),
                mtime_ns: after
                    .mtime()
                    .saturating_mul(1_000_000_000)
                    .saturating_add(after.mtime_nsec()),
            }
        };
        if after_id != *before {
            return Err(changed());
        }
        // Keep the source's times and permissions, as the zstd CLI does: the segment's age must not restart.
        let mut times = FileTimes::new();
        if let (Ok(a), Ok(m)) = (after.accessed(), after.modified()) {
            times = times.set_accessed(a).set_modified(m);
        }
        out.set_times(times).map_err(io_err("cannot set times of", tmp_path))?;
        out.set_permissions(Permissions::from_mode(
            std::os::unix::fs::PermissionsExt::mode(&after.permissions()) & 0o777,
        ))
        .map_err(io_err("cannot set permissions of", tmp_path))?;
        hit_for("compress:tmp-written", tmp_path).map_err(io_err("cannot write", tmp_path))?;
        Ok(zsize)
    }
}

impl DirectoryStore {
    pub(super) async fn compress_group(
        &self,
        work: &[Work<'_>],
        group: &[(usize, String)],
        parallelism: usize,
        results: &mut [Option<Result<Applied, StoreError>>],
    ) {
        let jobs: Arc<Vec<CompressJob>> = Arc::new(
            group
                .iter()
                .map(|(i, src)| {
                    let dst = format!("{src}{ZST}");
                    CompressJob {
                        dst_name: split_rel(&dst).1.to_string(),
                        src: src.clone(),
                        seen: seen_of(work[*i].segment),
                    }
                })
                .collect(),
        );
        let mut state: Vec<Option<Result<Compressed, StoreError>>> = (0..jobs.len()).map(|_| None).collect();

        // (1) Compress to temporaries, in parallel.
        let level = self.inner.level;
        let all = (0..jobs.len()).collect();
        let inner = self.inner.clone();
        for (j, r) in run_blocking(
            &jobs,
            all,
            parallelism,
            move || (Compressor::new(level), inner.clone()),
            |(c, inner), job| c.run(inner, job),
        )
        .await
        {
            state[j] = Some(r);
        }
        // (2) Make the temporaries durable.
        let ok = |state: &[Option<Result<Compressed, StoreError>>]| -> Vec<usize> {
            (0..state.len()).filter(|&j| matches!(state[j], Some(Ok(_)))).collect()
        };
        let written = ok(&state);
        let mut syncs = SyncSet::new(&self.inner.root);
        for &j in &written {
            let Some(Ok(c)) = &mut state[j] else { unreachable!() };
            let handle = c.handle.take();
            syncs.note(c.dev, || handle);
        }
        let syncs = Arc::new(syncs);
        if written.is_empty() {
            // Nothing to make durable (every file was refused or failed).
        } else if let Err(e) = self.sync_and_hit(syncs.clone(), "compress:synced").await {
            for &j in &written {
                let Some(Ok(c)) = &state[j] else { unreachable!() };
                self.remove_copy(&jobs[j], &c.tmp_name, c.tmp_ino);
                state[j] = Some(Err(e.again()));
            }
        }
        // (3) Rename the temporaries into place.
        let inner = self.inner.clone();
        let tmp_names: Arc<HashMap<usize, String>> = Arc::new(
            ok(&state)
                .into_iter()
                .map(|j| {
                    let Some(Ok(c)) = &state[j] else { unreachable!() };
                    (j, c.tmp_name.clone())
                })
                .collect(),
        );
        let indexed: Arc<Vec<(usize, CompressJob)>> =
            Arc::new(ok(&state).into_iter().map(|j| (j, jobs[j].clone())).collect());
        let renamed = run_blocking(
            &indexed,
            (0..indexed.len()).collect(),
            parallelism,
            move || (inner.clone(), tmp_names.clone()),
            |(inner, tmp_names), (j, job)| {
                let tmp_name = &tmp_names[j];
                let root = &inner.root;
                let dst = root.display(&format!("{}{ZST}", job.src));
                let (dir, _) = root
                    .parent(&job.src)
                    .map_err(|e| StoreError::io("cannot rename into place", dst.display(), e))?;
                beneath::rename_no_replace(&dir, tmp_name, &dir, &job.dst_name)
                    .map_err(|e| {
                        let _ = beneath::unlink(&dir, tmp_name);
                        if e.kind() == io::ErrorKind::AlreadyExists {
                            StoreError::Taken {
                                doing: "compress",
                                name: job.src.clone(),
                                place: dst.display().to_string(),
                            }
                        } else {
                            StoreError::io("cannot rename into place", dst.display(), e)
                        }
                    })
                    .and_then(|()| hit_for("compress:renamed", &dst).map_err(io_err("cannot rename into place", &dst)))
            },
        )
        .await;
        for (k, r) in renamed {
            if let Err(e) = r {
                state[indexed[k].0] = Some(Err(e));
            }
        }
        // (4) Make the renames durable before any source goes.
        let renamed = ok(&state);
        if renamed.is_empty() {
            // Nothing was renamed.
        } else if let Err(e) = self.sync_and_hit(syncs, "compress:dir-synced").await {
            for &j in &renamed {
                // The source is still there: taking the new copy away leaves the segment as it was.
                let Some(Ok(c)) = &state[j] else { unreachable!() };
                self.remove_copy(&jobs[j], &jobs[j].dst_name, c.tmp_ino);
                state[j] = Some(Err(e.again()));
            }
        }
        // (5) Remove the sources that did not change since the scan and that no process holds open for writing.
        let tmp_inos: Arc<HashMap<usize, u64>> = Arc::new(
            ok(&state)
                .into_iter()
                .map(|j| {
                    let Some(Ok(c)) = &state[j] else { unreachable!() };
                    (j, c.tmp_ino)
                })
                .collect(),
        );
        let inner = self.inner.clone();
        let jobs_at: Arc<Vec<(usize, CompressJob)>> =
            Arc::new(ok(&state).into_iter().map(|j| (j, jobs[j].clone())).collect());
        let removed = run_blocking(
            &jobs_at,
            (0..jobs_at.len()).collect(),
            parallelism,
            move || (inner.clone(), tmp_inos.clone()),
            |(inner, inos), (j, job)| {
                let root = &inner.root;
                let src = root.display(&job.src);
                let (dir, name, file, now) = match open_checked(root, &job.src, &job.seen) {
                    Ok(x) => x,
                    Err(e) => {
                        if let Ok((dir, _)) = root.parent(&job.src) {
                            remove_ours(&dir, &job.dst_name, inos[j]);
                        }
                        return Err(e);
                    }
                };
                let lease = match no_writers(&file, &now, &src) {
                    Ok(l) => l,
                    Err(e) => {
                        remove_ours(&dir, &job.dst_name, inos[j]);
                        return Err(e);
                    }
                };
                beneath::unlink(&dir, name).map_err(io_err("cannot remove source", &src))?;
                drop(lease);
                hit_for("compress:source-removed", &src).map_err(io_err("cannot remove source", &src))
            },
        )
        .await;
        for (k, r) in removed {
            let j = jobs_at[k].0;
            if let Err(e) = r {
                state[j] = Some(Err(e));
            }
        }
        for (j, s) in state.into_iter().enumerate() {
            let (i, _) = group[j];
            results[i] = Some(match s.expect("every job has a state") {
                Ok(c) => Ok(Applied {
                    bytes_before: jobs[j].seen.size,
                    bytes_after: c.zsize,
                    trashed: false,
                }),
                Err(e) => Err(e),
            });
        }
    }

    /// Removes a copy a compression made (`name`, beside the source), when it still is that copy.
    pub(super) fn remove_copy(&self, job: &CompressJob, name: &str, ino: u64) {
        if let Ok((dir, _)) = self.inner.root.parent(&job.src) {
            remove_ours(&dir, name, ino);
        }
    }

    /// Syncs the filesystems of `syncs` on a blocking thread, then marks `point`.
    pub(super) async fn sync_and_hit(&self, syncs: Arc<SyncSet>, point: &'static str) -> Result<(), StoreError> {
        let inner = self.inner.clone();
        let root = self.root();
        tokio::task::spawn_blocking(move || syncs.sync(&inner.root))
            .await
            .map_err(|e| StoreError::io("cannot sync", root.display(), io::Error::other(e.to_string())))?
            .map_err(|e| StoreError::io("cannot sync", root.display(), e))?;
        hit_for(point, root).map_err(io_err("cannot sync", root))
    }
}
