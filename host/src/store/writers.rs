//! Whether another process holds a file open for writing: a log that a quiet daemon keeps open with `O_APPEND` must
//! not be compressed, archived or dropped from under it (its next lines would go to an unlinked inode and be lost).
//!
//! The check is a read lease (`fcntl(F_SETLEASE, F_RDLCK)`), which the kernel grants only while no process has the
//! file open for writing; held across the removal, it also makes a writer that opens the file meanwhile wait until the
//! removal is done (it then writes to the removed file, as it would after any rotation). Where leases are refused (a
//! file the engine does not own without `CAP_LEASE`; network and FUSE filesystems), `/proc/<pid>/fd*` of the
//! processes the engine may inspect is searched instead. Neither sees a writer on another machine of a network
//! filesystem, nor (without `CAP_SYS_PTRACE`) a process of another user when leases are refused; README's *Writers
//! still writing* says so.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Once;

/// What the check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Writers {
    /// No other process has the file open for writing.
    None,
    /// Another process has it open for writing (the pid, when the fallback found it).
    Busy(Option<u32>),
}

/// A read lease on a file, released when dropped.
pub struct Lease<'a> {
    file: Option<&'a File>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(f) = self.file {
            // SAFETY: `f` is an open file for the life of the lease.
            unsafe {
                libc::fcntl(f.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK);
            }
        }
    }
}

/// A lease break would send SIGIO to this process, whose default action ends it: the lease is held for a moment
/// only, so nothing needs the signal, and it is ignored.
fn ignore_sigio() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: setting a signal's disposition to SIG_IGN is async-signal-safe and affects only that signal.
        unsafe {
            libc::signal(libc::SIGIO, libc::SIG_IGN);
        }
    });
}

/// Checks `file` (opened read-only) for writers; with none, returns a lease to hold across the removal.
pub fn check(file: &File, dev: u64, ino: u64) -> io::Result<(Writers, Lease<'_>)> {
    ignore_sigio();
    // SAFETY: plain fcntl on an open descriptor.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLEASE, libc::F_RDLCK) };
    if r == 0 {
        return Ok((Writers::None, Lease { file: Some(file) }));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EBUSY) => Ok((Writers::Busy(None), Lease { file: None })),
        // Not ours to lease (EACCES/EPERM), or no leases on this filesystem (EINVAL, ENOSYS): look at /proc.
        Some(libc::EACCES | libc::EPERM | libc::EINVAL | libc::ENOSYS | libc::ENOTSUP) => {
            let found = writer_table()?.get(&(dev, ino)).copied();
            Ok((
                found.map_or(Writers::None, |pid| Writers::Busy(Some(pid))),
                Lease { file: None },
            ))
        }
        _ => Err(e),
    }
}

/// How long one reading of `/proc` serves: a group of thousands of files must not read every process's descriptors
/// once per file. A writer that opened its file within this time may be missed, as one that opens it right after the
/// check is in any case.
const TABLE_FOR: std::time::Duration = std::time::Duration::from_millis(500);

type Table = std::sync::Arc<std::collections::HashMap<(u64, u64), u32>>;

/// Every file open for writing by another process, `(dev, ino) -> pid`, read from `/proc` at most every [`TABLE_FOR`].
fn writer_table() -> io::Result<Table> {
    use std::sync::Mutex;
    static CACHE: Mutex<Option<(std::time::Instant, Table)>> = Mutex::new(None);
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((at, table)) = &*cache
        && at.elapsed() < TABLE_FOR
    {
        return Ok(table.clone());
    }
    let table: Table = std::sync::Arc::new(writers_in_proc()?);
    *cache = Some((std::time::Instant::now(), table.clone()));
    Ok(table)
}

/// The first process (other than this one) that has the file `(dev, ino)` open for writing, from a fresh reading of
/// `/proc`.
pub fn writer_in_proc(dev: u64, ino: u64) -> io::Result<Option<u32>> {
    Ok(writers_in_proc()?.get(&(dev, ino)).copied())
}

/// Every file open for writing by a process other than this one: `(dev, ino) -> pid`. Processes whose descriptors
/// cannot be read are passed over.
fn writers_in_proc() -> io::Result<std::collections::HashMap<(u64, u64), u32>> {
    use std::os::unix::fs::MetadataExt;
    let mut out = std::collections::HashMap::new();
    let me = std::process::id();
    let procs = match std::fs::read_dir("/proc") {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let info = p.path().join("fdinfo").join(fd.file_name());
            let Ok(text) = std::fs::read_to_string(info) else {
                continue;
            };
            let flags = text
                .lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok());
            let mode = flags.map(|f| f & libc::O_ACCMODE as u32);
            if mode != Some(libc::O_WRONLY as u32) && mode != Some(libc::O_RDWR as u32) {
                continue;
            }
            // stat follows the descriptor's magic link to the open file itself.
            if let Ok(md) = std::fs::metadata(fd.path()) {
                out.entry((md.dev(), md.ino())).or_insert(pid);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::process::{Command, Stdio};

    fn writer(path: &std::path::Path) -> std::process::Child {
        let f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        Command::new("sleep").arg("600").stdout(Stdio::from(f)).spawn().unwrap()
    }

    #[test]
    fn a_file_another_process_holds_open_for_writing_is_busy_and_one_it_closed_is_not() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("app.log");
        std::fs::write(&path, b"line\n").unwrap();
        let md = std::fs::metadata(&path).unwrap();
        let mut child = writer(&path);
        let f = File::open(&path).unwrap();
        let (w, lease) = check(&f, md.dev(), md.ino()).unwrap();
        drop(lease);
        assert!(matches!(w, Writers::Busy(_)), "{w:?}");
        assert_eq!(writer_in_proc(md.dev(), md.ino()).unwrap(), Some(child.id()));
        child.kill().unwrap();
        child.wait().unwrap();
        let (w, _lease) = check(&f, md.dev(), md.ino()).unwrap();
        assert_eq!(w, Writers::None);
        assert_eq!(writer_in_proc(md.dev(), md.ino()).unwrap(), None);
    }

    #[test]
    fn a_reader_is_no_writer() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("app.log");
        std::fs::write(&path, b"line\n").unwrap();
        let md = std::fs::metadata(&path).unwrap();
        let mut child = Command::new("sleep")
            .arg("600")
            .stdin(Stdio::from(File::open(&path).unwrap()))
            .spawn()
            .unwrap();
        let f = File::open(&path).unwrap();
        let (w, _lease) = check(&f, md.dev(), md.ino()).unwrap();
        assert_eq!(w, Writers::None);
        assert_eq!(writer_in_proc(md.dev(), md.ino()).unwrap(), None);
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
