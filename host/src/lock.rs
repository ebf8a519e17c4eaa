//! One real pass per dataset at a time, across processes: `retention serve` and `retention run` may share a state
//! directory and a dataset, and two passes acting on the same files at once would fail each other's actions (never
//! losing data: every step refuses to replace anything) and could not tell which pass did what. A real pass holds an
//! advisory lock on `<state_dir>/locks/<dataset>.lock` (`flock`, released by the kernel when the process dies, however
//! it dies). Dry runs change nothing and take no lock.
//!
//! Holding the lock also means no other pass of the dataset is alive: a pass record left `pending` in the state
//! database by a process that died is settled under it (`crate::state::StateDb::settle_interrupted`).

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

/// A held dataset lock; dropping it releases the lock.
#[derive(Debug)]
pub struct DatasetLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "dataset {dataset} is busy: another pass holds {path} (a `retention serve` or `retention run` using the same \
         state directory); no action was applied, try again when it ends"
    )]
    Busy { dataset: String, path: PathBuf },
    #[error("cannot lock dataset {dataset} with {path}: {source}")]
    Io {
        dataset: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Takes the lock of `dataset` without waiting.
pub fn try_lock(state_dir: &Path, dataset: &str) -> Result<DatasetLock, LockError> {
    let dir = state_dir.join("locks");
    let path = dir.join(format!("{dataset}.lock"));
    let io = |source| LockError::Io {
        dataset: dataset.to_string(),
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => Ok(DatasetLock { _file: file }),
        Err(TryLockError::WouldBlock) => Err(LockError::Busy {
            dataset: dataset.to_string(),
            path,
        }),
        Err(TryLockError::Error(e)) => Err(io(e)),
    }
}

/// Before a real pass of `dataset`: takes its lock, then records the actions of any pass of it that died while
/// applying its plan (safe now: that pass cannot be alive). Failing to record them only delays it to the next pass.
pub fn lock_for_pass(state_dir: &Path, state: &crate::state::StateDb, dataset: &str) -> Result<DatasetLock, LockError> {
    let held = try_lock(state_dir, dataset)?;
    match state.settle_interrupted(dataset) {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            dataset,
            "recorded {n} actions of an interrupted pass as `interrupted` in the audit trail"
        ),
        Err(e) => tracing::error!(dataset, "cannot record the actions of an interrupted pass: {e}"),
    }
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dataset_lock_is_exclusive_until_dropped_and_per_dataset() {
        let dir = tempfile::tempdir().unwrap();
        let held = try_lock(dir.path(), "logs").unwrap();
        // A second open file description, as another process would have, is refused.
        let e = try_lock(dir.path(), "logs").unwrap_err();
        assert!(matches!(e, LockError::Busy { .. }), "{e}");
        assert!(e.to_string().contains("dataset logs is busy"), "{e}");
        let _other = try_lock(dir.path(), "metrics").unwrap();
        drop(held);
        try_lock(dir.path(), "logs").unwrap();
    }
}
