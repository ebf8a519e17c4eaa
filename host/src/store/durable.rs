//! Durability and safety helpers shared by the file-based action protocols: blocking work on a pool of threads, one
//! `syncfs` per filesystem a group wrote to, and the checks before acting on a file (still the file the scan saw,
//! unchanged, no writer holding it).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::StoreError;
use super::beneath::{self, DirFd, FileId, Root};
use super::writers::{self, Writers};

pub(crate) fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |e| StoreError::io(what, path.display(), e)
}

/// Makes everything written to the filesystems holding `dirs` durable: one `syncfs` per directory given (callers
/// pass one per filesystem). Falls back to a global `sync` where `syncfs` is missing. For paths of the engine's own
/// (a `file://` archive); the dataset's filesystems are synced through handles ([`SyncSet`]).
pub(crate) fn sync_filesystems<'a>(dirs: impl IntoIterator<Item = &'a Path>) -> Result<(), (PathBuf, io::Error)> {
    use rustix::fs::{Mode, OFlags};
    for dir in dirs {
        let fd = rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| (dir.to_path_buf(), e.into()))?;
        beneath::sync_fs(&fd).map_err(|e| (dir.to_path_buf(), e))?;
    }
    Ok(())
}

/// One handle per filesystem that a group of actions wrote to, to make each durable with one `syncfs`.
#[derive(Default)]
pub(crate) struct SyncSet {
    handles: HashMap<u64, OwnedFd>,
    root_dev: Option<u64>,
    /// Whether the root's own filesystem was written to.
    root: bool,
}

impl SyncSet {
    pub(crate) fn new(root: &Root) -> SyncSet {
        SyncSet {
            root_dev: rustix::fs::fstat(root.fd()).ok().map(|st| FileId::of(&st).dev),
            ..SyncSet::default()
        }
    }

    /// Notes that a file of device `dev` was written; `handle` gives a descriptor on that filesystem when it is not
    /// the root's and none is held yet.
    pub(crate) fn note(&mut self, dev: u64, handle: impl FnOnce() -> Option<OwnedFd>) {
        if Some(dev) == self.root_dev {
            self.root = true;
        } else if !self.handles.contains_key(&dev)
            && let Some(fd) = handle()
        {
            self.handles.insert(dev, fd);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        !self.root && self.handles.is_empty()
    }

    pub(crate) fn sync(&self, root: &Root) -> io::Result<()> {
        if self.root {
            beneath::sync_fs(root.fd())?;
        }
        for fd in self.handles.values() {
            beneath::sync_fs(fd)?;
        }
        Ok(())
    }
}

/// The error for a source that changed since the scan.
pub(crate) fn changed(path: &Path, seen: &FileId, now: &FileId) -> StoreError {
    let detail = if seen.ino != now.ino {
        format!(
            "it is another file than the scan saw: inode {} -> {}",
            seen.ino, now.ino
        )
    } else {
        format!(
            "{} -> {} bytes, mtime {} -> {} ns",
            seen.size, now.size, seen.mtime_ns, now.mtime_ns
        )
    };
    StoreError::Changed {
        what: path.display().to_string(),
        detail,
    }
}

/// Refuses when a file is not the one the scan saw (inode), or changed since (size, mtime).
pub(crate) fn check_unchanged(path: &Path, seen: &FileId, now: &FileId) -> Result<(), StoreError> {
    if seen.ino == now.ino && seen.size == now.size && seen.mtime_ns == now.mtime_ns {
        return Ok(());
    }
    Err(changed(path, seen, now))
}

/// Opens the regular file at `rel` for the checks before acting on it: still the file the scan saw and unchanged.
/// Returns the parent directory handle, the file name, the open file and what it is now.
pub(crate) fn open_checked<'r>(
    root: &'r Root,
    rel: &'r str,
    seen: &FileId,
) -> Result<(DirFd<'r>, &'r str, File, FileId), StoreError> {
    let path = root.display(rel);
    let (dir, name) = root
        .parent(rel)
        .map_err(|e| StoreError::io("cannot open", path.display(), e))?;
    let (file, st) = beneath::open_regular(&dir, name).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => StoreError::Changed {
            what: path.display().to_string(),
            detail: "it is gone".to_string(),
        },
        _ => StoreError::io("cannot open", path.display(), e),
    })?;
    let now = FileId::of(&st);
    check_unchanged(&path, seen, &now)?;
    Ok((dir, name, file, now))
}

/// Checks that no other process holds `file` open for writing; with none, returns the lease that keeps a writer from
/// opening it until the caller is done.
pub(crate) fn no_writers<'f>(file: &'f File, id: &FileId, path: &Path) -> Result<writers::Lease<'f>, StoreError> {
    match writers::check(file, id.dev, id.ino) {
        Ok((Writers::None, lease)) => Ok(lease),
        Ok((Writers::Busy(pid), _)) => Err(StoreError::Busy {
            place: path.display().to_string(),
            pid,
        }),
        Err(e) => Err(StoreError::io("cannot check for writers of", path.display(), e)),
    }
}

/// Removes the file `name` of `dir` if it is still the one of inode `ino` (a copy this action made).
pub(crate) fn remove_ours(dir: &impl AsFd, name: &str, ino: u64) {
    if beneath::stat(dir, name).is_ok_and(|st| FileId::of(&st).ino == ino) {
        let _ = beneath::unlink(dir, name);
    }
}

/// Runs `f` on the jobs `which` of `jobs` on up to `parallelism` blocking threads, each with its own state from
/// `init`. Returns `(index, result)` in no particular order.
pub(crate) async fn run_blocking<J, S, R>(
    jobs: &Arc<Vec<J>>,
    which: Vec<usize>,
    parallelism: usize,
    init: impl Fn() -> S + Send + Sync + 'static,
    f: impl Fn(&mut S, &J) -> R + Send + Sync + 'static,
) -> Vec<(usize, R)>
where
    J: Send + Sync + 'static,
    R: Send + 'static,
{
    if which.is_empty() {
        return Vec::new();
    }
    let threads = parallelism.clamp(1, which.len());
    let which = Arc::new(which);
    let next = Arc::new(AtomicUsize::new(0));
    let work = Arc::new((init, f));
    let mut handles = Vec::with_capacity(threads);
    for _ in 0..threads {
        let (jobs, which, next, work) = (jobs.clone(), which.clone(), next.clone(), work.clone());
        handles.push(tokio::task::spawn_blocking(move || {
            let mut state = (work.0)();
            let mut out = Vec::new();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(&i) = which.get(k) else { break };
                out.push((i, (work.1)(&mut state, &jobs[i])));
            }
            out
        }));
    }
    let mut all = Vec::with_capacity(which.len());
    for h in handles {
        match h.await {
            Ok(v) => all.extend(v),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("blocking task of the directory store did not finish: {e}"),
        }
    }
    all
}
