//! Named points in the crash-safe action protocols where a test can make the process die or fail.
//!
//! `RETENTION_CRASH_AT=<point>` aborts the process (as a `kill -9` would, no destructors, no flushing) when the point
//! is reached; `RETENTION_FAIL_AT=<point>` makes the step return an I/O error instead. The crash tests in
//! `tests/all/crash.rs` run the real binary once per point and check that every byte survives. Unset, a point costs one
//! load of a cached `Option`.
//!
//! The environment is read once per process, so unit tests, which share one process and run in parallel, inject
//! failures with [`fail_under`] instead: it applies only to steps reported through [`hit_for`] with a path under the
//! test's own directory.

use std::path::Path;
use std::sync::OnceLock;

struct Points {
    crash: Option<String>,
    fail: Option<String>,
}

fn points() -> &'static Points {
    static POINTS: OnceLock<Points> = OnceLock::new();
    POINTS.get_or_init(|| Points {
        crash: std::env::var("RETENTION_CRASH_AT").ok().filter(|s| !s.is_empty()),
        fail: std::env::var("RETENTION_FAIL_AT").ok().filter(|s| !s.is_empty()),
    })
}

/// Marks a step of an action protocol. Dies or fails here when the environment asks for this point.
pub fn hit(point: &str) -> std::io::Result<()> {
    let p = points();
    if p.crash.as_deref() == Some(point) {
        eprintln!("retention: crash point {point} reached, aborting");
        std::process::abort();
    }
    if p.fail.as_deref() == Some(point) {
        return Err(std::io::Error::other(format!("injected failure at {point}")));
    }
    Ok(())
}

/// Like [`hit`], for a step acting on `path` (a file, or the directory a group step works in).
pub fn hit_for(point: &str, path: &Path) -> std::io::Result<()> {
    hit(point)?;
    #[cfg(test)]
    if overrides::fails(point, path) {
        return Err(std::io::Error::other(format!("injected failure at {point}")));
    }
    #[cfg(not(test))]
    let _ = path;
    Ok(())
}

/// Makes every [`hit_for`] of `point` on a path under `dir` fail until the returned guard is dropped.
#[cfg(test)]
pub fn fail_under(dir: &Path, point: &str) -> overrides::Guard {
    overrides::add(dir, point)
}

#[cfg(test)]
pub mod overrides {
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    static ACTIVE: Mutex<Vec<(u64, PathBuf, String)>> = Mutex::new(Vec::new());
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

    /// Removes its failure when dropped.
    #[must_use]
    pub struct Guard(u64);

    impl Drop for Guard {
        fn drop(&mut self) {
            let mut a = ACTIVE.lock().unwrap_or_else(|e| e.into_inner());
            a.retain(|(id, _, _)| *id != self.0);
        }
    }

    pub(super) fn add(dir: &Path, point: &str) -> Guard {
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut a = ACTIVE.lock().unwrap_or_else(|e| e.into_inner());
        a.push((id, dir.to_path_buf(), point.to_string()));
        Guard(id)
    }

    pub(super) fn fails(point: &str, path: &Path) -> bool {
        let a = ACTIVE.lock().unwrap_or_else(|e| e.into_inner());
        a.iter().any(|(_, dir, p)| p == point && path.starts_with(dir))
    }
}
