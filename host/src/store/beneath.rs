//! Filesystem access confined to a dataset's root: every path is resolved from a directory handle of the root, one
//! component at a time or with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, so that no symlink in any component
//! is followed and nothing outside the root is ever opened, created, renamed or removed, whatever was swapped in since
//! the scan.
//!
//! The root itself is opened once, by the path the config gives (the administrator's path, symlinks and all); from
//! then on only the handle is used, so a root replaced by a symlink meanwhile changes nothing for this store.
//!
//! Operations take a directory handle ([`DirFd`]) and one file name: callers resolve the parent directory with
//! [`Root::parent`] right before a destructive step (a rename or an unlink), never hold it across the phases of an
//! action, so that a directory moved elsewhere while an earlier step ran is not followed there.
//!
//! Files are opened with `O_NOFOLLOW | O_NONBLOCK` and checked to be regular files after opening, so that a FIFO,
//! socket or device swapped in for a segment is refused instead of blocking the pass.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, ResolveFlags, Stat};
use rustix::io::Errno;

/// A dataset's root, opened once.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

/// A directory handle beneath a [`Root`] (or the root's own).
#[derive(Debug)]
pub enum DirFd<'a> {
    Root(BorrowedFd<'a>),
    Owned(OwnedFd),
}

impl AsFd for DirFd<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            DirFd::Root(fd) => *fd,
            DirFd::Owned(fd) => fd.as_fd(),
        }
    }
}

/// Whether `openat2` works here: unknown, yes, or no (an old kernel or a sandbox without it: then components are
/// opened one by one, which refuses symlinks just the same).
static OPENAT2: AtomicU8 = AtomicU8::new(0);
const UNKNOWN: u8 = 0;
const AVAILABLE: u8 = 1;
const MISSING: u8 = 2;

/// The error for a path that is not a plain relative path of plain components.
fn bad_path(rel: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{rel:?} is not a relative path beneath the dataset root"),
    )
}

/// Checks that `rel` is `a/b/c` with no empty, `.` or `..` component and no NUL byte.
pub fn check_rel(rel: &str) -> io::Result<()> {
    if rel.is_empty() || rel.contains('\0') || rel.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err(bad_path(rel));
    }
    Ok(())
}

/// Turns the errors of a resolution that met a symlink into one that says so.
fn symlink_error(e: Errno, rel: &str) -> io::Error {
    match e {
        Errno::LOOP | Errno::XDEV | Errno::NOTDIR => io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{rel}: a component is a symlink or not a directory (the store never follows a symlink beneath the \
                 dataset root)"
            ),
        ),
        e => e.into(),
    }
}

impl Root {
    /// Opens the root directory at `path`.
    pub fn open(path: &Path) -> io::Result<Root> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The path the root was opened by (for messages and for tools that need a path, like `syncfs` of a filesystem).
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// `rel` joined to the root's path, for messages only: nothing is ever opened by it.
    pub fn display(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    /// Opens the directory `rel` (`""` is the root) beneath the root without following a symlink in any component.
    /// `listing` opens it for reading its entries; otherwise the handle only serves as the base of `*at` calls.
    pub fn dir(&self, rel: &str, listing: bool) -> io::Result<DirFd<'_>> {
        if rel.is_empty() {
            return Ok(DirFd::Root(self.fd.as_fd()));
        }
        check_rel(rel)?;
        open_beneath(self.fd.as_fd(), rel, listing).map(DirFd::Owned)
    }

    /// The parent directory of the file `rel` and its last component.
    pub fn parent<'r>(&self, rel: &'r str) -> io::Result<(DirFd<'_>, &'r str)> {
        check_rel(rel)?;
        match rel.rsplit_once('/') {
            None => Ok((DirFd::Root(self.fd.as_fd()), rel)),
            Some((dir, name)) => Ok((self.dir(dir, false)?, name)),
        }
    }

    /// Opens the directory `rel` beneath the root, creating each missing component with `mode` (never following a
    /// symlink, never creating anything through one).
    pub fn create_dirs(&self, rel: &str, mode: u32) -> io::Result<DirFd<'_>> {
        if rel.is_empty() {
            return Ok(DirFd::Root(self.fd.as_fd()));
        }
        check_rel(rel)?;
        create_dirs_under(self.fd.as_fd(), rel, mode).map(DirFd::Owned)
    }
}

/// Opens `rel` (a checked relative path of directories) beneath `base`.
fn open_beneath(base: BorrowedFd<'_>, rel: &str, listing: bool) -> io::Result<OwnedFd> {
    let flags = if listing {
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC
    } else {
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC
    };
    if OPENAT2.load(Ordering::Relaxed) != MISSING {
        let how = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        match rustix::fs::openat2(base, rel, flags, Mode::empty(), how) {
            Ok(fd) => {
                OPENAT2.store(AVAILABLE, Ordering::Relaxed);
                return Ok(fd);
            }
            // Not there (an old kernel, or a seccomp filter that refuses it): walk instead, from now on.
            Err(Errno::NOSYS | Errno::PERM) if OPENAT2.load(Ordering::Relaxed) == UNKNOWN => {
                OPENAT2.store(MISSING, Ordering::Relaxed);
            }
            Err(Errno::AGAIN | Errno::INTR) => {}
            Err(e) => return Err(symlink_error(e, rel)),
        }
    }
    // One component at a time, each opened relative to the previous without following it.
    let mut components = rel.split('/');
    let first = components.next().expect("a checked path has a component");
    let mut fd =
        rustix::fs::openat(base, first, flags | OFlags::NOFOLLOW, Mode::empty()).map_err(|e| symlink_error(e, rel))?;
    for c in components {
        fd = rustix::fs::openat(&fd, c, flags | OFlags::NOFOLLOW, Mode::empty()).map_err(|e| symlink_error(e, rel))?;
    }
    Ok(fd)
}

/// Opens (creating as needed) each directory of `rel` under `base`, component by component.
pub fn create_dirs_under(base: BorrowedFd<'_>, rel: &str, mode: u32) -> io::Result<OwnedFd> {
    check_rel(rel)?;
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut cur: Option<OwnedFd> = None;
    for c in rel.split('/') {
        let at = cur.as_ref().map_or(base, |fd| fd.as_fd());
        match rustix::fs::mkdirat(at, c, Mode::from_raw_mode(mode)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        let next = rustix::fs::openat(at, c, flags, Mode::empty()).map_err(|e| symlink_error(e, rel))?;
        cur = Some(next);
    }
    Ok(cur.expect("a checked path has a component"))
}

/// What a scan saw of a file and what apply checks again before acting: it is the same file (device and inode), and
/// it has not changed (size and modification time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
}

impl FileId {
    #[allow(clippy::unnecessary_cast, reason = "the field types differ between architectures")]
    pub fn of(st: &Stat) -> FileId {
        FileId {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            size: st.st_size as u64,
            mtime_ns: (st.st_mtime as i64)
                .saturating_mul(1_000_000_000)
                .saturating_add(st.st_mtime_nsec as i64),
        }
    }
}

/// Whether `st` is a regular file.
pub fn is_regular(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode as _) == FileType::RegularFile
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`.
pub fn stat(dir: impl AsFd, name: &str) -> io::Result<Stat> {
    Ok(rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?)
}

/// Opens the regular file `name` of `dir` for reading, without following a symlink and without blocking (a FIFO
/// swapped in would otherwise block the pass until a writer came); anything but a regular file is refused.
pub fn open_regular(dir: impl AsFd, name: &str) -> io::Result<(File, Stat)> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, name, flags, Mode::empty()).map_err(|e| match e {
        Errno::LOOP => io::Error::new(io::ErrorKind::InvalidInput, format!("{name} is a symlink")),
        e => e.into(),
    })?;
    let st = rustix::fs::fstat(&fd)?;
    if !is_regular(&st) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name} is not a regular file (a FIFO, socket, device or directory is never a segment)"),
        ));
    }
    // Reads of a regular file never block anyway; clear the flag so that nothing downstream sees it.
    rustix::fs::fcntl_setfl(&fd, OFlags::RDONLY)?;
    Ok((File::from(fd), st))
}

/// Creates the new file `name` in `dir` (never an existing one, never through a symlink) for writing.
pub fn create_new(dir: impl AsFd, name: &str, mode: u32) -> io::Result<File> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(mode))?;
    Ok(File::from(fd))
}

/// Renames `from` in `from_dir` to `to` in `to_dir` unless `to` exists (atomically where the filesystem supports
/// `RENAME_NOREPLACE`; else checked first). Names are single components: nothing is resolved.
pub fn rename_no_replace(from_dir: impl AsFd, from: &str, to_dir: impl AsFd, to: &str) -> io::Result<()> {
    match rustix::fs::renameat_with(&from_dir, from, &to_dir, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(Errno::INVAL | Errno::NOSYS | Errno::NOTSUP) => {
            if stat(&to_dir, to).is_ok() {
                return Err(io::Error::from(io::ErrorKind::AlreadyExists));
            }
            Ok(rustix::fs::renameat(&from_dir, from, &to_dir, to)?)
        }
        Err(e) => Err(e.into()),
    }
}

/// Removes the file `name` of `dir` (never a directory; a symlink named so is removed as the link itself).
pub fn unlink(dir: impl AsFd, name: &str) -> io::Result<()> {
    Ok(rustix::fs::unlinkat(dir, name, AtFlags::empty())?)
}

/// Removes the empty directory `name` of `dir`.
pub fn rmdir(dir: impl AsFd, name: &str) -> io::Result<()> {
    Ok(rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?)
}

/// The entries of a directory opened for listing: `(name, type)`, without `.` and `..`. A name that is not UTF-8 is
/// given lossily with `false`.
pub fn entries(dir: OwnedFd) -> io::Result<Vec<(String, bool, FileType)>> {
    let mut out = Vec::new();
    let mut d = rustix::fs::Dir::new(dir)?;
    while let Some(e) = d.read() {
        let e = e?;
        let name: &CStr = e.file_name();
        let bytes = name.to_bytes();
        if bytes == b"." || bytes == b".." {
            continue;
        }
        match std::str::from_utf8(bytes) {
            Ok(s) => out.push((s.to_string(), true, e.file_type())),
            Err(_) => out.push((String::from_utf8_lossy(bytes).into_owned(), false, e.file_type())),
        }
    }
    Ok(out)
}

/// Makes everything written to the filesystem of `fd` durable (`syncfs`; a global `sync` where it is missing).
pub fn sync_fs(fd: impl AsFd) -> io::Result<()> {
    match rustix::fs::syncfs(fd) {
        Ok(()) => Ok(()),
        Err(Errno::NOSYS) => {
            rustix::fs::sync();
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn paths_are_resolved_beneath_the_root_and_never_through_a_symlink() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        let outside = t.path().join("outside");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("f"), b"x").unwrap();
        symlink(&outside, root.join("link")).unwrap();
        symlink(&outside, root.join("a/link")).unwrap();
        let r = Root::open(&root).unwrap();
        assert!(r.dir("a/b", true).is_ok());
        for bad in [
            "link",
            "a/link",
            "../outside",
            "a/../../outside",
            "/abs",
            "a//b",
            "a/./b",
            "",
        ] {
            if bad.is_empty() {
                continue;
            }
            let e = r.dir(bad, false).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}: {e}");
        }
        assert!(r.parent("link/f").is_err());
        let e = r.create_dirs("a/link/new", 0o700).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        assert!(!outside.join("new").exists());
        let (dir, name) = r.parent("a/b/c").unwrap();
        assert_eq!(name, "c");
        std::fs::write(root.join("a/b/c"), b"inside").unwrap();
        let (f, st) = open_regular(&dir, name).unwrap();
        drop(f);
        assert_eq!(st.st_size, 6);
    }

    #[test]
    fn a_fifo_or_a_symlink_in_place_of_a_file_is_refused_without_blocking() {
        let t = tempfile::tempdir().unwrap();
        let r = Root::open(t.path()).unwrap();
        rustix::fs::mknodat(r.fd(), "fifo", FileType::Fifo, Mode::from_raw_mode(0o600), 0).unwrap();
        symlink("/etc/passwd", t.path().join("ln")).unwrap();
        let e = open_regular(r.fd(), "fifo").unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let e = open_regular(r.fd(), "ln").unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
    }

    #[test]
    fn a_rename_never_replaces_and_creation_never_follows_a_dangling_symlink() {
        let t = tempfile::tempdir().unwrap();
        let r = Root::open(t.path()).unwrap();
        std::fs::write(t.path().join("a"), b"a").unwrap();
        std::fs::write(t.path().join("b"), b"b").unwrap();
        let e = rename_no_replace(r.fd(), "a", r.fd(), "b").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(t.path().join("b")).unwrap(), b"b");
        let target = t.path().join("target");
        symlink(&target, t.path().join("dangling")).unwrap();
        assert!(create_new(r.fd(), "dangling", 0o600).is_err());
        assert!(!target.exists());
    }
}
