//! The directory store: a dataset is a directory tree and each file matching its globs is a segment.
//!
//! # Names and tiers
//!
//! A segment's name is its path relative to the root, `/`-separated, without a `.zst` suffix: `a/b.log` is the name of
//! both the hot file `a/b.log` and its compressed copy `a/b.log.zst`. Globs and the labels regex see that name. A
//! segment is *hot* (the plain file), *compressed* (`<file>.zst` beside it, zstd with a content checksum, mtime and
//! permissions copied from the source as the zstd CLI does, so compressing a file does not make it look new) or
//! *archived* (an object in the archive destination, see [`super::archive`]). An archived segment's time is its
//! object's last-modified time (the time it was archived) unless the time comes from a label.
//!
//! # The dataset's boundary
//!
//! Every filesystem operation resolves its path beneath the root's directory handle without following a symlink in
//! any component ([`super::beneath`]): a directory swapped for a symlink between the scan and the apply, a trash that
//! is a symlink, a restore through a parent that became one, each fails instead of reaching outside the root. A file is
//! acted on only if it is still the one the scan saw (device, inode, size and modification time) and still a regular
//! file (opened without blocking, so a FIFO swapped in is refused), and it is not removed while another process holds
//! it open for writing ([`super::writers`]): that action is skipped, and a later pass tries again.
//!
//! Directories that are not the dataset's are never walked, whatever the globs say: the engine's own (state directory,
//! plugin directory, compile cache, any `file://` archive, listed by the config as `excluded`) and other datasets'
//! roots nested inside this one. Datasets that share a root each manage the files only their globs match: a file that
//! a sibling's globs match too is skipped by both, so that no file belongs to two datasets (and a legal hold on one
//! dataset cannot be passed by the other).
//!
//! # Temporaries
//!
//! Our only temporary files are `.<basename>.<tag>.retention-tmp` in the directory of the file they will become, so that
//! the final rename is atomic. The tag is a keyed hash of the file's relative path under a key kept in the root's
//! engine area (`.retention-trash/.temp-key`, made on first use): [`Store::recover`] removes only temporaries whose tag
//! it can verify, so a file that merely looks like one is left alone and reported. Scans never present either as a
//! segment.
//!
//! # Crash safety
//!
//! Each action keeps this invariant at every instant: the file's content exists, complete, in at least one visible
//! place, and no visible name holds a partial copy. A group of actions runs in phases so that durability costs one
//! `syncfs` per phase instead of two fsyncs per file:
//!
//! - compress: (1) compress every file to its temporary, in parallel; (2) `syncfs`; (3) rename each temporary to
//!   `<file>.zst` (never over an existing file); (4) `syncfs`, making the renames durable; (5) check that each source is
//!   unchanged since the scan and has no writer, and remove it.
//! - archive: (1) upload each file (never over an existing object), read it back and compare sizes and SHA-256; (2)
//!   `syncfs` a `file://` destination; (3) check that each source is unchanged and has no writer, and remove it.
//! - drop with a grace period (`trash_grace_secs` > 0, hot and compressed files): check that each file is unchanged
//!   since the scan and has no writer, and rename it into the trash (below); then `syncfs`.
//! - drop without one, and drop of an archived object: remove each file or object; then `syncfs`.
//!
//! A crash between phases leaves at worst a temporary (removed by `recover`) or a segment in two tiers, which `recover`
//! resolves to the later tier after checking that both copies hold the same content ([`super::compare`], at a cost
//! bounded by the smaller copy). [`CRASH_POINTS`] names the instants between steps where tests kill the process (see
//! [`crate::crashpoint`]).
//!
//! # Trash
//!
//! A dropped hot or compressed file is moved, by one `rename(2)` within the root's filesystem, to
//! `<root>/.retention-trash/<trashed_at_ms>-<expires_at_ms>/<its relative path>` (with `.zst` when compressed): the
//! path records everything a purge or a restore needs (name, tier, trash time, expiry), so no database is involved, and
//! the rename keeps bytes, mtime and permissions. The trash time is the pass's "now", the clock purges compare with.
//! A rename is atomic, so at every instant the file is either in its place or in the trash, never both, never
//! neither; no step of trash, restore or purge copies anything, so there is nothing for `recover` to settle but empty
//! directories. The trash directory is created `0700` (the file's own directories' permissions are not copied), is
//! only ever used when it is a real directory (never a symlink), and is never walked by a scan, whatever the globs
//! say. A purge ([`Store::purge`]) deletes the entries it is given; a restore ([`Store::restore`]) renames an entry
//! back, refusing when the segment exists again in any tier. Datasets sharing a root share its trash; each lists,
//! purges and restores only the entries its globs match.
//!
//! An archived object goes to the archive's trash, `<prefix>/.retention-trash/<batch>/<key as it was>` (see
//! [`Archive::trash_key`]). An object store cannot rename: a drop copies the object there, then deletes the original;
//! a restore copies it back, then deletes the trash's copy. Between the two steps the object exists twice with equal
//! content; `recover` settles that by removing the trash's copy, so the object stays at its key (a drop is undone, a
//! restore done) and no content is ever in neither place.
//!
//! # The engine area
//!
//! `.retention-trash/` also holds the temporaries' key and, per dataset, the identity of the state database that
//! manages it (`.state-<hex of the dataset name>`, see [`Store::bind_state`]): a pass run with another state database
//! (a lost one re-created empty, without its legal holds) is refused.

use std::collections::{HashMap, HashSet};
use std::fs::{File, FileTimes, Permissions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt;
use globset::GlobSet;
use object_store::path::Path as ObjectPath;
use regex::{CaptureLocations, Regex};
use rustix::fs::FileType;
use rustix::io::Errno;
use sha2::{Digest as _, Sha256};

use super::archive::{Archive, Object, TrashedObject};
use super::beneath::{self, DirFd, FileId, Root};
use super::compare;
use super::writers::{self, Writers};
use super::{Applied, Progress, Recovery, Scan, Skipped, Store, StoreError, TrashEntry, Work};
use crate::config::{DirectoryConfig, Sibling, TimeSource};
use crate::crashpoint::hit_for;
use crate::segment::{Action, Labels, Segment, Sym, Symbols, Tier};

/// Every point where the actions of this store can be made to crash or fail, in protocol order. Each names the step
/// just completed.
pub const CRASH_POINTS: &[&str] = &[
    // A temporary holds part of the compressed data.
    "compress:tmp-partial",
    // A temporary holds all of it (once per file).
    "compress:tmp-written",
    // The group's temporaries are durable.
    "compress:synced",
    // A temporary was renamed to `<file>.zst` (once per file).
    "compress:renamed",
    // The renames are durable.
    "compress:dir-synced",
    // A source was removed (once per file).
    "compress:source-removed",
    // An object was uploaded (once per file).
    "archive:uploaded",
    // An object was read back and found equal to its source (once per file).
    "archive:verified",
    // A `file://` destination was made durable.
    "archive:synced",
    // A source was removed (once per file).
    "archive:source-removed",
    // A file or object was removed (once per segment).
    "drop:removed",
    // The removals are durable.
    "drop:synced",
    // A dropped archived object was copied into the archive's trash (once per object).
    "trash:copied",
    // A dropped file was renamed into the trash, or a dropped object's original deleted after its copy (once each).
    "trash:moved",
    // The renames into the trash are durable.
    "trash:synced",
    // An expired trash entry was deleted (once per entry).
    "purge:removed",
    // The deletions are durable.
    "purge:synced",
    // A trashed file was renamed, or a trashed object copied, back into its place (once per restore).
    "restore:moved",
    // The rename back is durable.
    "restore:synced",
    // `recover` removed a temporary.
    "recover:temp-removed",
    // `recover` removed the earlier copy of a duplicate.
    "recover:duplicate-removed",
];

const ZST: &str = ".zst";
const TMP_SUFFIX: &str = ".retention-tmp";

/// The trash area, directly under the root. Hidden, so that tools listing the dataset skip it too. It is also the
/// engine's area in the root (the temporaries' key, the state markers).
pub const TRASH_DIR: &str = ".retention-trash";

/// The key of the temporaries' tags, in the engine area.
const TEMP_KEY: &str = ".temp-key";

/// Actions per phase group: larger groups spread one `syncfs` over more files, smaller ones leave fewer duplicates
/// after a crash and report progress more often.
const COMPRESS_GROUP: usize = 4096;
const ARCHIVE_GROUP: usize = 256;
const DROP_GROUP: usize = 4096;

/// Files up to this size are compressed in one call from memory; larger ones are streamed.
const WHOLE_FILE: u64 = 4 << 20;

/// A dataset stored as files under a root directory, with an optional archive destination.
///
/// [`Store::scan`] walks the tree (and lists the archive) once, recovers from that inventory, then builds the
/// segments from it: a pass never walks twice.
pub struct DirectoryStore {
    inner: Arc<Inner>,
    archive: Option<Archive>,
}

/// What the walk threads need.
struct Inner {
    root: Root,
    include: GlobSet,
    exclude: GlobSet,
    labels: Option<Regex>,
    /// Named groups of `labels`: (group index, name). A label's "slot" is its index here.
    label_groups: Vec<(usize, String)>,
    time: Option<TimeLabel>,
    level: i32,
    /// Directories under the root that are not part of the dataset, by device and inode: the engine's own and other
    /// datasets' roots. Never walked.
    skip_dirs: HashSet<(u64, u64)>,
    /// Files under the root that are never segments, by device and inode (the config file).
    skip_files: HashSet<(u64, u64)>,
    /// Other datasets with the same root: a file their globs match too belongs to neither.
    siblings: Vec<Sibling>,
    /// How long a dropped local file stays in the trash; zero deletes at once.
    trash_grace: std::time::Duration,
    /// The temporaries' key, once read or made.
    temp_key: Mutex<Option<TempKey>>,
}

struct TimeLabel {
    slot: usize,
    name: String,
    /// As configured, for messages.
    format: String,
    /// The chrono format, parsed once (parsing it per file showed in profiles).
    items: Vec<chrono::format::Item<'static>>,
}

/// What a name tells about a segment: label spans `(slot, start, end)` in the name and the time from a label.
#[derive(Debug, Clone)]
struct Described {
    labels: smallvec::SmallVec<[(u16, u32, u32); 4]>,
    time_ms: Option<i64>,
}

/// A file found by the walk.
#[derive(Debug)]
struct Found {
    /// Path of the file relative to the root.
    rel: String,
    tier: Tier,
    /// Device, inode, size and mtime as the walk saw them.
    id: FileId,
    described: Result<Described, String>,
    /// Its name exists elsewhere too (hot and `.zst`, or local and archived).
    dup: bool,
}

impl Found {
    fn name(&self) -> &str {
        match self.tier {
            Tier::Compressed => &self.rel[..self.rel.len() - ZST.len()],
            _ => &self.rel,
        }
    }
}

#[derive(Default)]
struct Walked {
    /// One batch per directory: appending them to one vector would copy them again and again.
    files: Vec<Vec<Found>>,
    temps: Vec<String>,
    skipped: Vec<Skipped>,
    /// Files named like our temporaries that we did not write.
    left_alone: Vec<Skipped>,
}

/// One copy of a segment that exists in several places.
enum Copy {
    Local(Found),
    Archived(Object),
}

impl Copy {
    fn tier(&self) -> Tier {
        match self {
            Copy::Local(f) => f.tier,
            Copy::Archived(_) => Tier::Archived,
        }
    }

    /// Whether its bytes are zstd-compressed.
    fn compressed(&self) -> bool {
        match self {
            Copy::Local(f) => f.tier == Tier::Compressed,
            Copy::Archived(o) => o.rel.ends_with(ZST),
        }
    }

    fn size(&self) -> u64 {
        match self {
            Copy::Local(f) => f.id.size,
            Copy::Archived(o) => o.size,
        }
    }

    /// Orders copies by tier, then plain before compressed.
    fn rank(&self) -> (Tier, bool) {
        (self.tier(), self.compressed())
    }
}

/// A segment present in several places.
struct Group {
    name: String,
    /// Sorted by [`Copy::rank`]; the last is the latest.
    copies: Vec<Copy>,
    /// Set once the copies were compared.
    verdict: Option<Verdict>,
}

/// What to do with a [`Group`].
enum Verdict {
    /// All copies hold the same content: keep the last, remove the others.
    Same,
    Conflict(String),
}

/// Everything a scan or a recovery looks at.
struct Inventory {
    files: Vec<Vec<Found>>,
    objects: Vec<Object>,
    /// This dataset's objects in the archive's trash.
    trashed_objects: Vec<TrashedObject>,
    /// Uploads staged in the archive by an interrupted archive.
    staged_objects: Vec<ObjectPath>,
    groups: Vec<Group>,
    temps: Vec<String>,
    skipped: Vec<Skipped>,
    left_alone: Vec<Skipped>,
}

fn rel_join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        let mut s = String::with_capacity(dir.len() + 1 + name.len());
        s.push_str(dir);
        s.push('/');
        s.push_str(name);
        s
    }
}

/// The directory part and the file name of a relative path.
fn split_rel(rel: &str) -> (&str, &str) {
    rel.rsplit_once('/').unwrap_or(("", rel))
}

/// The key that tags this root's temporaries: a random 256-bit value kept in the engine area.
#[derive(Clone, Copy)]
struct TempKey([u8; 32]);

impl TempKey {
    /// The tag of the temporary that becomes the file at `rel`: 16 hex digits of a keyed hash of the path.
    fn tag(&self, rel: &str) -> String {
        let mut h = Sha256::new();
        h.update(b"retention temporary\0");
        h.update(self.0);
        h.update(rel.as_bytes());
        hex::encode(&h.finalize()[..8])
    }

    /// The file name of the temporary that becomes the file at `rel`.
    fn temp_name(&self, rel: &str) -> String {
        let (_, base) = split_rel(rel);
        format!(".{base}.{}{TMP_SUFFIX}", self.tag(rel))
    }
}

/// For a file name shaped like one of our temporaries, `.<base>[.<tag>].retention-tmp`: the base it would become and
/// the tag, if it has one of the right shape.
fn temp_parts(file_name: &str) -> Option<(&str, Option<&str>)> {
    let inner = file_name.strip_prefix('.')?.strip_suffix(TMP_SUFFIX)?;
    if inner.is_empty() {
        return None;
    }
    match inner.rsplit_once('.') {
        Some((base, tag)) if !base.is_empty() && tag.len() == 16 && tag.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Some((base, Some(tag)))
        }
        _ => Some((inner, None)),
    }
}

/// Logical name of an archived object or a local file: its relative path without `.zst`.
fn logical(rel: &str) -> &str {
    match rel.strip_suffix(ZST) {
        Some(n) if !n.is_empty() && !n.ends_with('/') => n,
        _ => rel,
    }
}

fn parse_time(value: &str, items: &[chrono::format::Item<'static>]) -> Option<i64> {
    let mut parsed = chrono::format::Parsed::new();
    chrono::format::parse(&mut parsed, value, items.iter()).ok()?;
    if let Ok(t) = parsed.to_naive_datetime_with_offset(0) {
        return Some(t.and_utc().timestamp_millis());
    }
    parsed
        .to_naive_date()
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
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
struct SyncSet {
    handles: HashMap<u64, OwnedFd>,
    root_dev: Option<u64>,
    /// Whether the root's own filesystem was written to.
    root: bool,
}

impl SyncSet {
    fn new(root: &Root) -> SyncSet {
        SyncSet {
            root_dev: rustix::fs::fstat(root.fd()).ok().map(|st| FileId::of(&st).dev),
            ..SyncSet::default()
        }
    }

    /// Notes that a file of device `dev` was written; `handle` gives a descriptor on that filesystem when it is not
    /// the root's and none is held yet.
    fn note(&mut self, dev: u64, handle: impl FnOnce() -> Option<OwnedFd>) {
        if Some(dev) == self.root_dev {
            self.root = true;
        } else if !self.handles.contains_key(&dev)
            && let Some(fd) = handle()
        {
            self.handles.insert(dev, fd);
        }
    }

    fn is_empty(&self) -> bool {
        !self.root && self.handles.is_empty()
    }

    fn sync(&self, root: &Root) -> io::Result<()> {
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
fn changed(path: &Path, seen: &FileId, now: &FileId) -> StoreError {
    if seen.ino != now.ino {
        return StoreError::Refused(format!(
            "{} is another file than the scan saw (inode {} -> {}); left as it is",
            path.display(),
            seen.ino,
            now.ino
        ));
    }
    StoreError::Refused(format!(
        "{} changed since the scan ({} -> {} bytes, mtime {} -> {} ns); left as it is, it may still be written to",
        path.display(),
        seen.size,
        now.size,
        seen.mtime_ns,
        now.mtime_ns
    ))
}

/// Refuses when a file is not the one the scan saw (inode), or changed since (size, mtime).
fn check_unchanged(path: &Path, seen: &FileId, now: &FileId) -> Result<(), StoreError> {
    if seen.ino == now.ino && seen.size == now.size && seen.mtime_ns == now.mtime_ns {
        return Ok(());
    }
    Err(changed(path, seen, now))
}

/// What the scan saw of a local segment.
fn seen_of(seg: &Segment) -> FileId {
    FileId {
        dev: 0,
        ino: seg.file_id,
        size: seg.bytes,
        mtime_ns: seg.modified_ns,
    }
}

/// Opens the regular file at `rel` for the checks before acting on it: still the file the scan saw and unchanged.
/// Returns the parent directory handle, the file name, the open file and what it is now.
fn open_checked<'r>(
    root: &'r Root,
    rel: &'r str,
    seen: &FileId,
) -> Result<(DirFd<'r>, &'r str, File, FileId), StoreError> {
    let path = root.display(rel);
    let (dir, name) = root
        .parent(rel)
        .map_err(|e| StoreError::io("cannot open", path.display(), e))?;
    let (file, st) = beneath::open_regular(&dir, name).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => StoreError::Refused(format!("{} is gone since the scan", path.display())),
        _ => StoreError::io("cannot open", path.display(), e),
    })?;
    let now = FileId::of(&st);
    check_unchanged(&path, seen, &now)?;
    Ok((dir, name, file, now))
}

/// Checks that no other process holds `file` open for writing; with none, returns the lease that keeps a writer from
/// opening it until the caller is done.
fn no_writers<'f>(file: &'f File, id: &FileId, path: &Path) -> Result<writers::Lease<'f>, StoreError> {
    match writers::check(file, id.dev, id.ino) {
        Ok((Writers::None, lease)) => Ok(lease),
        Ok((Writers::Busy(pid), _)) => Err(StoreError::Busy {
            path: path.display().to_string(),
            pid,
        }),
        Err(e) => Err(StoreError::io("cannot check for writers of", path.display(), e)),
    }
}

/// Removes the file `name` of `dir` if it is still the one of inode `ino` (a copy this action made).
fn remove_ours(dir: &impl AsFd, name: &str, ino: u64) {
    if beneath::stat(dir, name).is_ok_and(|st| FileId::of(&st).ino == ino) {
        let _ = beneath::unlink(dir, name);
    }
}

/// Runs `f` on the jobs `which` of `jobs` on up to `parallelism` blocking threads, each with its own state from
/// `init`. Returns `(index, result)` in no particular order.
async fn run_blocking<J, S, R>(
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

impl DirectoryStore {
    /// Opens the store of `cfg`: the root must be a readable directory and the archive destination listable.
    pub async fn open(cfg: DirectoryConfig) -> Result<DirectoryStore, StoreError> {
        let root_path = cfg.root.clone();
        let root = Root::open(&root_path).map_err(|e| match e.raw_os_error() {
            Some(code) if code == Errno::NOTDIR.raw_os_error() => {
                StoreError::Refused(format!("dataset root {} is not a directory", root_path.display()))
            }
            _ => StoreError::io("cannot open dataset root", root_path.display(), e),
        })?;
        rustix::fs::Dir::read_from(root.fd())
            .map_err(|e| StoreError::io("cannot read dataset root", root_path.display(), e.into()))?;
        let archive = match &cfg.archive_url {
            Some(url) => Some(Archive::open(url).await?),
            None => None,
        };
        let mut skip_dirs = HashSet::new();
        let mut skip_files = HashSet::new();
        let identity = |p: &Path| -> Option<(bool, (u64, u64))> {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(p).ok().map(|m| (m.is_dir(), (m.dev(), m.ino())))
        };
        for e in &cfg.excluded {
            match identity(&e.path) {
                Some((true, id)) => {
                    skip_dirs.insert(id);
                }
                Some((false, id)) => {
                    skip_files.insert(id);
                }
                None => {}
            }
        }
        if let Some(adir) = archive.as_ref().and_then(|a| a.local_dir()) {
            let croot = std::fs::canonicalize(&root_path).map_err(io_err("cannot open dataset root", &root_path))?;
            if croot.starts_with(adir) {
                return Err(StoreError::Refused(format!(
                    "dataset root {} lies inside its archive directory {}",
                    root_path.display(),
                    adir.display()
                )));
            }
            // An archive inside the dataset would otherwise be scanned as hot files.
            if let Some((_, id)) = identity(adir) {
                skip_dirs.insert(id);
            }
        }
        let label_groups: Vec<(usize, String)> = cfg
            .labels
            .as_ref()
            .map(|re| {
                re.capture_names()
                    .enumerate()
                    .filter_map(|(i, n)| n.map(|n| (i, n.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let time = match &cfg.time {
            TimeSource::Mtime => None,
            TimeSource::Label { name, format } => {
                let slot = label_groups.iter().position(|(_, n)| n == name).ok_or_else(|| {
                    StoreError::Refused(format!(
                        "time label {name:?} is not a named capture of the labels regex"
                    ))
                })?;
                Some(TimeLabel {
                    slot,
                    name: name.clone(),
                    format: format.clone(),
                    items: chrono::format::StrftimeItems::new(format)
                        .parse_to_owned()
                        .map_err(|e| StoreError::Refused(format!("invalid time format {format:?}: {e}")))?,
                })
            }
        };
        Ok(DirectoryStore {
            inner: Arc::new(Inner {
                root,
                include: cfg.include,
                exclude: cfg.exclude,
                labels: cfg.labels,
                label_groups,
                time,
                level: cfg.compression_level,
                skip_dirs,
                skip_files,
                siblings: cfg.siblings,
                trash_grace: cfg.trash_grace,
                temp_key: Mutex::new(None),
            }),
            archive,
        })
    }

    fn archive(&self) -> Result<&Archive, StoreError> {
        self.archive.as_ref().ok_or_else(|| {
            StoreError::Refused(format!(
                "dataset {} has no archive_url: cannot archive",
                self.inner.root.path().display()
            ))
        })
    }

    fn root(&self) -> &Path {
        self.inner.root.path()
    }

    /// Walks the root and lists the archive, grouping names found in more than one place.
    async fn inventory(&self) -> Result<Inventory, StoreError> {
        let listing = match &self.archive {
            Some(a) => a.list_all().await?,
            None => Default::default(),
        };
        let (mut objects, mut trashed_objects) = (listing.objects, listing.trashed);
        objects.retain(|o| self.inner.matches(logical(&o.rel)));
        trashed_objects.retain(|t| self.inner.matches(logical(&t.object.rel)));
        let mut archived: HashSet<String> = HashSet::with_capacity(objects.len());
        let mut twice: HashSet<String> = HashSet::new();
        for o in &objects {
            let n = logical(&o.rel);
            if !archived.insert(n.to_string()) {
                twice.insert(n.to_string());
            }
        }
        let inner = self.inner.clone();
        let archived = Arc::new(archived);
        // Without a usable engine area (a trash that is a symlink) no temporary can be verified: each is left alone.
        let (key, area_error) = match self.blocking(|inner| inner.temp_key(false)).await {
            Ok(k) => (k, None),
            Err(e) => (None, Some(e)),
        };
        let mut walked = tokio::task::spawn_blocking(move || inner.walk(archived, key))
            .await
            .map_err(|e| StoreError::io("cannot walk", self.root().display(), io::Error::other(e.to_string())))?;
        if let Some(e) = area_error {
            walked.skipped.push(Skipped {
                name: TRASH_DIR.to_string(),
                reason: e.to_string(),
            });
        }
        let mut groups: HashMap<String, Vec<Copy>> = HashMap::new();
        let mut files = walked.files;
        for batch in &mut files {
            if batch.iter().any(|f| f.dup) {
                for f in batch.extract_if(.., |f| f.dup) {
                    groups.entry(f.name().to_string()).or_default().push(Copy::Local(f));
                }
            }
        }
        let mut objs = Vec::with_capacity(objects.len());
        for o in objects {
            let n = logical(&o.rel);
            if twice.contains(n) || groups.contains_key(n) {
                groups.entry(n.to_string()).or_default().push(Copy::Archived(o));
            } else {
                objs.push(o);
            }
        }
        let mut groups: Vec<Group> = groups
            .into_iter()
            .map(|(name, mut copies)| {
                copies.sort_by_key(Copy::rank);
                Group {
                    name,
                    copies,
                    verdict: None,
                }
            })
            .collect();
        groups.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Inventory {
            files,
            objects: objs,
            trashed_objects,
            staged_objects: listing.staged,
            groups,
            temps: walked.temps,
            skipped: walked.skipped,
            left_alone: walked.left_alone,
        })
    }

    fn copy_label(&self, c: &Copy) -> String {
        match c {
            Copy::Local(f) => format!("{} copy {}", f.tier, f.rel),
            Copy::Archived(o) => format!(
                "archived copy {}",
                self.archive
                    .as_ref()
                    .map_or_else(|| o.location.to_string(), |a| a.display(&o.location))
            ),
        }
    }

    /// A reader of a copy's stored bytes, opened safely (a local copy beneath the root, still the file the walk saw).
    async fn open_copy(&self, c: &Copy) -> Result<compare::Copy, String> {
        let reader: Box<dyn Read + Send> = match c {
            Copy::Local(f) => {
                let inner = self.inner.clone();
                let (rel, seen) = (f.rel.clone(), f.id);
                let opened = tokio::task::spawn_blocking(move || {
                    open_checked(&inner.root, &rel, &seen).map(|(_, _, file, _)| file)
                })
                .await
                .map_err(|e| e.to_string())?;
                Box::new(opened.map_err(|e| format!("cannot read the {}: {e}", self.copy_label(c)))?)
            }
            Copy::Archived(o) => self
                .archive
                .as_ref()
                .expect("archived copies come from the archive")
                .reader(&o.location)
                .await
                .map_err(|e| format!("cannot read the {}: {e}", self.copy_label(c)))?,
        };
        Ok(compare::Copy {
            reader,
            compressed: c.compressed(),
            size: c.size(),
        })
    }

    /// Whether two copies hold the same content, at a cost bounded by the smaller (see [`compare`]). The error is a
    /// reason for a report.
    async fn same_content(&self, a: &Copy, b: &Copy) -> Result<bool, String> {
        if a.compressed() == b.compressed() && a.size() != b.size() {
            return Ok(false);
        }
        let (x, y) = (self.open_copy(a).await?, self.open_copy(b).await?);
        let r = tokio::task::spawn_blocking(move || compare::same(x, y))
            .await
            .map_err(|e| e.to_string())?;
        r.map_err(|e| match e.kind() {
            io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => format!(
                "the {} is incomplete or corrupt ({e})",
                self.copy_label(if a.compressed() { a } else { b })
            ),
            _ => format!(
                "cannot compare the {} with the {}: {e}",
                self.copy_label(a),
                self.copy_label(b)
            ),
        })
    }

    async fn resolve(&self, g: &Group) -> Verdict {
        let archived: Vec<&Copy> = g.copies.iter().filter(|c| c.tier() == Tier::Archived).collect();
        if archived.len() > 1 {
            return Verdict::Conflict(format!(
                "archived twice, as {} and {}; both kept until resolved by hand",
                self.copy_label(archived[0]),
                self.copy_label(archived[1])
            ));
        }
        let (latest, earlier) = g.copies.split_last().expect("a group has copies");
        for c in earlier {
            match self.same_content(c, latest).await {
                Ok(true) => {}
                Ok(false) => {
                    return Verdict::Conflict(format!(
                        "the {} differs from the {}; both kept until resolved by hand",
                        self.copy_label(c),
                        self.copy_label(latest)
                    ));
                }
                Err(reason) => return Verdict::Conflict(format!("{reason}; all copies kept until resolved by hand")),
            }
        }
        Verdict::Same
    }

    /// The relative path (hot, compressed) or the object (archived) of a segment, checking its locator.
    fn locate(&self, seg: &Segment) -> Result<Located, StoreError> {
        let bad = || StoreError::Refused(format!("segment {:?} has a locator this store did not make", seg.name));
        if beneath::check_rel(&seg.name).is_err() {
            return Err(bad());
        }
        match seg.tier {
            Tier::Hot | Tier::Compressed => {
                let expect_zst = seg.tier == Tier::Compressed;
                let ok = match seg.locator.strip_suffix(ZST) {
                    Some(n) if expect_zst => n == seg.name,
                    _ => !expect_zst && seg.locator == seg.name,
                };
                if !ok {
                    return Err(bad());
                }
                Ok(Located::Local(seg.locator.clone()))
            }
            Tier::Archived => {
                let a = self.archive()?;
                let location = ObjectPath::parse(&seg.locator).map_err(|_| bad())?;
                match a.rel_of(&location) {
                    Some(rel) if logical(&rel) == seg.name => Ok(Located::Archived(location)),
                    _ => Err(bad()),
                }
            }
        }
    }

    async fn compress_group(
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
                            StoreError::Refused(format!("{} already exists; not overwriting it", dst.display()))
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
    fn remove_copy(&self, job: &CompressJob, name: &str, ino: u64) {
        if let Ok((dir, _)) = self.inner.root.parent(&job.src) {
            remove_ours(&dir, name, ino);
        }
    }

    /// Syncs the filesystems of `syncs` on a blocking thread, then marks `point`.
    async fn sync_and_hit(&self, syncs: Arc<SyncSet>, point: &'static str) -> Result<(), StoreError> {
        let inner = self.inner.clone();
        let root = self.root();
        tokio::task::spawn_blocking(move || syncs.sync(&inner.root))
            .await
            .map_err(|e| StoreError::io("cannot sync", root.display(), io::Error::other(e.to_string())))?
            .map_err(|e| StoreError::io("cannot sync", root.display(), e))?;
        hit_for(point, root).map_err(io_err("cannot sync", root))
    }

    async fn archive_group(
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
    async fn upload_one(&self, archive: &Archive, job: &ArchiveJob) -> Result<(), StoreError> {
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

    async fn drop_group(
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
                Located::Archived(location) => objects.push((*i, location.clone(), seg.bytes)),
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
                .map(|(i, location, bytes)| async move {
                    let r = match batch_name {
                        Some(batch) => trash_object(archive, &location, batch, bytes, root).await,
                        None => drop_object(archive, &location, bytes, root).await,
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

    fn check(&self, w: &Work<'_>) -> Result<Option<Located>, StoreError> {
        let seg = w.segment;
        if w.action == Action::Keep {
            return Ok(None);
        }
        if !w.action.allowed_from(seg.tier) {
            return Err(StoreError::Refused(format!(
                "cannot {} segment {} from tier {}",
                w.action, seg.name, seg.tier
            )));
        }
        if w.action == Action::Archive {
            self.archive()?;
        }
        self.locate(seg).map(Some)
    }
}

/// Where a segment's bytes are.
#[derive(Debug, Clone)]
enum Located {
    /// A path relative to the root.
    Local(String),
    Archived(ObjectPath),
}

#[derive(Debug, Clone)]
struct CompressJob {
    /// The source, relative to the root.
    src: String,
    /// The file name, in the source's directory, of the `.zst` it becomes.
    dst_name: String,
    seen: FileId,
}

/// What phase 1 of a compression made.
struct Compressed {
    /// The temporary's file name, beside the source.
    tmp_name: String,
    dev: u64,
    /// The temporary's inode: the copy this action made, which only it may remove.
    tmp_ino: u64,
    zsize: u64,
    /// A descriptor on the temporary's filesystem, to sync it.
    handle: Option<OwnedFd>,
}

struct ArchiveJob {
    src: String,
    location: ObjectPath,
    seen: FileId,
}

/// A local file to drop.
struct LocalDrop {
    /// Its path relative to the root (the segment's locator), which it keeps inside the trash.
    rel: String,
    seen: FileId,
}

/// The name of a trash batch directory: `<trashed_at_ms>-<expires_at_ms>`.
fn batch_name(trashed_at_ms: i64, expires_at_ms: i64) -> String {
    format!("{trashed_at_ms}-{expires_at_ms}")
}

/// The trash time and expiry a batch directory's name records; `None` for anything we did not name.
fn parse_batch_name(name: &str) -> Option<(i64, i64)> {
    let (t, e) = name.split_once('-')?;
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
    if !digits(t) || !digits(e) {
        return None;
    }
    Some((t.parse().ok()?, e.parse().ok()?))
}

/// One file of the trash.
#[derive(Debug, Clone)]
struct TrashFile {
    entry: TrashEntry,
    /// Its path relative to the root before it was trashed (with `.zst` when compressed): where a restore puts it.
    rel: String,
}

/// An object of the archive's trash, as this dataset sees it.
#[derive(Debug, Clone)]
struct TrashObject {
    entry: TrashEntry,
    location: ObjectPath,
    /// Its key relative to the archive's prefix before it was trashed: where a restore puts it.
    rel: String,
}

/// Deletes an archived object (a drop without grace) unless it changed since the scan.
async fn drop_object(archive: &Archive, location: &ObjectPath, bytes: u64, root: &Path) -> Result<Applied, StoreError> {
    check_object_unchanged(archive, location, bytes).await?;
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
async fn trash_object(
    archive: &Archive,
    location: &ObjectPath,
    batch: &str,
    bytes: u64,
    root: &Path,
) -> Result<Applied, StoreError> {
    check_object_unchanged(archive, location, bytes).await?;
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

/// Refuses an archived object that is gone or has another size than the scan saw.
async fn check_object_unchanged(archive: &Archive, location: &ObjectPath, bytes: u64) -> Result<(), StoreError> {
    let Some((size, _)) = archive.head(location).await? else {
        return Err(StoreError::Refused(format!(
            "archive object {} is gone since the scan",
            archive.display(location)
        )));
    };
    if size != bytes {
        return Err(StoreError::Refused(format!(
            "archive object {} changed since the scan ({bytes} -> {size} bytes); left as it is",
            archive.display(location),
        )));
    }
    Ok(())
}

impl StoreError {
    /// The same failure, for each of the actions of a group that a group step failed.
    fn again(&self) -> StoreError {
        match self {
            StoreError::Io { what, path, source } => StoreError::Io {
                what,
                path: path.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
            other => StoreError::Refused(other.to_string()),
        }
    }
}

/// A compression thread's state: one zstd context and buffers reused across files, as the zstd CLI does.
struct Compressor {
    cctx: zstd::zstd_safe::CCtx<'static>,
    input: Vec<u8>,
    output: Vec<u8>,
}

impl Compressor {
    fn new(level: i32) -> Compressor {
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
    fn run(&mut self, inner: &Inner, job: &CompressJob) -> Result<Compressed, StoreError> {
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
        let changed = || {
            StoreError::Refused(format!(
                "{} changed while being compressed; left as it is, it may still be written to",
                src_path.display()
            ))
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

impl Inner {
    fn matches(&self, name: &str) -> bool {
        self.include.is_match(name) && !self.exclude.is_match(name)
    }

    /// The dataset sharing this root whose globs match `name` too, if any.
    fn sibling_of(&self, name: &str) -> Option<&str> {
        self.siblings
            .iter()
            .find(|s| s.include.is_match(name) && !s.exclude.is_match(name))
            .map(|s| s.dataset.as_str())
    }

    /// Why `name`, matched by this dataset's globs, is nonetheless not its segment (a sibling's globs match it too).
    fn shared_reason(&self, name: &str) -> Option<String> {
        self.sibling_of(name).map(|other| {
            format!(
                "dataset {other:?} (same root) matches it too: a file belongs to one dataset, so neither manages \
                 it; narrow the include/exclude globs of one of them"
            )
        })
    }

    /// Labels and time of the segment `name`, or why it cannot be a segment.
    fn describe(
        &self,
        name: &str,
        locs: &mut Option<CaptureLocations>,
        cache: &mut Option<(String, Option<i64>)>,
    ) -> Result<Described, String> {
        let mut labels: smallvec::SmallVec<[(u16, u32, u32); 4]> = smallvec::SmallVec::new();
        if let (Some(re), Some(locs)) = (&self.labels, locs.as_mut())
            && re.captures_read(locs, name).is_some()
        {
            for (slot, (group, _)) in self.label_groups.iter().enumerate() {
                if let Some((s, e)) = locs.get(*group) {
                    labels.push((slot as u16, s as u32, e as u32));
                }
            }
        }
        let time_ms = match &self.time {
            None => None,
            Some(t) => {
                let Some(&(_, s, e)) = labels.iter().find(|l| l.0 as usize == t.slot) else {
                    return Err(format!("no {:?} label in the name, so its age is unknown", t.name));
                };
                let value = &name[s as usize..e as usize];
                let ms = match cache {
                    Some((v, ms)) if v == value => *ms,
                    _ => {
                        let ms = parse_time(value, &t.items);
                        *cache = Some((value.to_string(), ms));
                        ms
                    }
                };
                match ms {
                    Some(ms) => Some(ms),
                    None => {
                        return Err(format!(
                            "label {}={value:?} is not a time in format {:?}, so its age is unknown",
                            t.name, t.format
                        ));
                    }
                }
            }
        };
        Ok(Described { labels, time_ms })
    }

    /// Walks the root on a pool of threads of its own (the global rayon pool may be busy compiling a plugin): each
    /// directory is opened beneath the root without following symlinks, read, its files stat'ed relative to it and
    /// described by the thread that read it.
    fn walk(self: Arc<Self>, archived: Arc<HashSet<String>>, key: Option<TempKey>) -> Walked {
        let sink = Mutex::new(Walked::default());
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("retention-walk-{i}"))
            .build();
        let walk_one = |rel: &str| self.read_dir(rel, &archived, key.as_ref(), &sink);
        match pool {
            Ok(pool) => {
                fn go<'s, F: Fn(&str) -> Vec<String> + Sync>(s: &rayon::Scope<'s>, f: &'s F, rel: String) {
                    for sub in f(&rel) {
                        s.spawn(move |s| go(s, f, sub));
                    }
                }
                pool.scope(|s| go(s, &walk_one, String::new()));
            }
            Err(_) => {
                let mut stack = vec![String::new()];
                while let Some(rel) = stack.pop() {
                    stack.extend(walk_one(&rel));
                }
            }
        }
        sink.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    /// Processes one directory: files become [`Found`]s, temporaries are noted; returns the subdirectories to walk.
    fn read_dir(
        &self,
        rel_dir: &str,
        archived: &HashSet<String>,
        key: Option<&TempKey>,
        sink: &Mutex<Walked>,
    ) -> Vec<String> {
        let mut out = Walked::default();
        let mut subdirs = Vec::new();
        let finish = |out: Walked, files: Vec<Found>| {
            let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
            if !files.is_empty() {
                s.files.push(files);
            }
            s.temps.extend(out.temps);
            s.skipped.extend(out.skipped);
            s.left_alone.extend(out.left_alone);
        };
        let dir = match self.root.dir(rel_dir, true) {
            Ok(d) => d,
            Err(e) => {
                out.skipped.push(Skipped {
                    name: rel_dir.to_string(),
                    reason: format!("cannot open directory: {e}"),
                });
                finish(out, Vec::new());
                return subdirs;
            }
        };
        if !rel_dir.is_empty()
            && let Ok(st) = rustix::fs::fstat(&dir)
            && let id = FileId::of(&st)
            && self.skip_dirs.contains(&(id.dev, id.ino))
        {
            // The engine's own directory, or another dataset's root: never part of this dataset.
            return subdirs;
        }
        let entries = match rustix::fs::Dir::read_from(&dir) {
            Ok(d) => d,
            Err(e) => {
                out.skipped.push(Skipped {
                    name: rel_dir.to_string(),
                    reason: format!("cannot read directory: {e}"),
                });
                finish(out, Vec::new());
                return subdirs;
            }
        };
        let mut locs = self.labels.as_ref().map(Regex::capture_locations);
        let mut cache = None;
        let mut files = Vec::new();
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    out.skipped.push(Skipped {
                        name: rel_dir.to_string(),
                        reason: format!("cannot read directory: {e}"),
                    });
                    break;
                }
            };
            let raw = entry.file_name().to_bytes();
            if raw == b"." || raw == b".." {
                continue;
            }
            let mut ft = entry.file_type();
            if ft == FileType::Unknown {
                // Some filesystems do not say in the listing.
                ft = match rustix::fs::statat(&dir, entry.file_name(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => FileType::from_raw_mode(st.st_mode as _),
                    Err(_) => continue,
                };
            }
            let Ok(file_name) = std::str::from_utf8(raw) else {
                let lossy = rel_join(rel_dir, &String::from_utf8_lossy(raw));
                if ft == FileType::Directory || self.matches(logical(&lossy)) {
                    out.skipped.push(Skipped {
                        name: lossy,
                        reason: "name is not valid UTF-8".to_string(),
                    });
                }
                continue;
            };
            if ft == FileType::Directory {
                // The trash is never part of the dataset: not walked, so no glob can make its files segments.
                if !(rel_dir.is_empty() && file_name == TRASH_DIR) {
                    subdirs.push(rel_join(rel_dir, file_name));
                }
                continue;
            }
            if let Some((base, tag)) = temp_parts(file_name) {
                // Only the temporaries of this dataset's segments: datasets may share a root.
                let target = rel_join(rel_dir, base);
                if self.matches(logical(&target)) {
                    let rel = rel_join(rel_dir, file_name);
                    match (key, tag) {
                        (Some(k), Some(tag)) if k.tag(&target) == tag => out.temps.push(rel),
                        _ => out.left_alone.push(Skipped {
                            name: rel,
                            reason: "named like a temporary of retention, but not one this store wrote (its tag \
                                     does not verify): left alone"
                                .to_string(),
                        }),
                    }
                }
                continue;
            }
            let rel = rel_join(rel_dir, file_name);
            let compressed = file_name.len() > ZST.len() && file_name.ends_with(ZST);
            let name = if compressed {
                &rel[..rel.len() - ZST.len()]
            } else {
                &rel[..]
            };
            if !self.matches(name) {
                continue;
            }
            let not_regular = || Skipped {
                name: name.to_string(),
                reason: format!("{rel} is not a regular file (symlinks and special files are never segments)"),
            };
            if ft != FileType::RegularFile {
                out.skipped.push(not_regular());
                continue;
            }
            let st = match beneath::stat(&dir, file_name) {
                Ok(st) => st,
                // Removed since the directory was read.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => {
                    out.skipped.push(Skipped {
                        name: name.to_string(),
                        reason: format!("cannot stat {rel}: {err}"),
                    });
                    continue;
                }
            };
            if !beneath::is_regular(&st) {
                out.skipped.push(not_regular());
                continue;
            }
            let id = FileId::of(&st);
            if !self.skip_files.is_empty() && self.skip_files.contains(&(id.dev, id.ino)) {
                // The engine's own file (its config): never a segment.
                continue;
            }
            if !self.siblings.is_empty()
                && let Some(reason) = self.shared_reason(name)
            {
                out.skipped.push(Skipped {
                    name: name.to_string(),
                    reason,
                });
                continue;
            }
            let described = self.describe(name, &mut locs, &mut cache);
            let dup = !archived.is_empty() && archived.contains(name);
            files.push(Found {
                tier: if compressed { Tier::Compressed } else { Tier::Hot },
                id,
                described,
                dup,
                rel,
            });
        }
        mark_sibling_duplicates(&mut files);
        finish(out, files);
        subdirs
    }
}

/// The engine area and the trash: listing, purge and restore, the temporaries' key and the state markers, on blocking
/// threads.
impl Inner {
    /// The engine area `.retention-trash` as a real directory beneath the root (never a symlink); `None` when it does
    /// not exist and `create` is false.
    fn area(&self, create: bool, listing: bool) -> Result<Option<DirFd<'_>>, StoreError> {
        let path = self.root.display(TRASH_DIR);
        let opened = if create {
            self.root.create_dirs(TRASH_DIR, 0o700).and_then(|d| match listing {
                true => self.root.dir(TRASH_DIR, true),
                false => Ok(d),
            })
        } else {
            self.root.dir(TRASH_DIR, listing)
        };
        match opened {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.kind() == io::ErrorKind::NotFound && !create => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => Err(StoreError::Refused(format!(
                "the trash {} is a symlink or not a directory: it is only ever used as a real directory inside \
                 the root; move it away",
                path.display()
            ))),
            Err(e) => Err(StoreError::io("cannot open the trash", path.display(), e)),
        }
    }

    /// The temporaries' key: read from the engine area, or (with `create`) made there when there is none.
    fn temp_key(&self, create: bool) -> Result<Option<TempKey>, StoreError> {
        let mut cached = self.temp_key.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = *cached {
            return Ok(Some(k));
        }
        let path = self.root.display(&format!("{TRASH_DIR}/{TEMP_KEY}"));
        let read = |area: &DirFd<'_>| -> Result<Option<TempKey>, StoreError> {
            let (mut f, _) = match beneath::open_regular(area, TEMP_KEY) {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(StoreError::io("cannot read the temporaries' key", path.display(), e)),
            };
            let mut text = String::new();
            (&mut f)
                .take(128)
                .read_to_string(&mut text)
                .map_err(io_err("cannot read the temporaries' key", &path))?;
            let bytes = hex::decode(text.trim()).ok().filter(|b| b.len() == 32).ok_or_else(|| {
                StoreError::Refused(format!(
                    "{} is not a key retention wrote (64 hex digits); move it away",
                    path.display()
                ))
            })?;
            let mut k = [0u8; 32];
            k.copy_from_slice(&bytes);
            Ok(Some(TempKey(k)))
        };
        let Some(area) = self.area(create, true)? else {
            return Ok(None);
        };
        if let Some(k) = read(&area)? {
            *cached = Some(k);
            return Ok(Some(k));
        }
        if !create {
            return Ok(None);
        }
        // 244 random bits from two v4 UUIDs, written under a name of its own, made durable, then renamed to the
        // key's name without replacing one another process made meanwhile (then that one is the key).
        let mut k = [0u8; 32];
        k[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        k[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        let staging = format!("{TEMP_KEY}.{}", uuid::Uuid::new_v4());
        let write = || -> io::Result<()> {
            let mut f = beneath::create_new(&area, &staging, 0o600)?;
            f.write_all(hex::encode(k).as_bytes())?;
            f.sync_all()?;
            match beneath::rename_no_replace(&area, &staging, &area, TEMP_KEY) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let _ = beneath::unlink(&area, &staging);
                    Ok(())
                }
                r => r,
            }?;
            rustix::fs::fsync(&area)?;
            Ok(())
        };
        if let Err(e) = write() {
            let _ = beneath::unlink(&area, &staging);
            return Err(StoreError::io("cannot write the temporaries' key", path.display(), e));
        }
        let k = read(&area)?
            .ok_or_else(|| StoreError::Refused(format!("{} disappeared right after it was written", path.display())))?;
        *cached = Some(k);
        Ok(Some(k))
    }

    /// See [`Store::bind_state`].
    fn bind_state(&self, dataset: &str, state_id: &str, write: bool) -> Result<(), StoreError> {
        let marker = format!(".state-{}", hex::encode(dataset.as_bytes()));
        let path = self.root.display(&format!("{TRASH_DIR}/{marker}"));
        let Some(area) = self.area(write, true)? else {
            // Never passed over for real (no engine area yet): nothing recorded, nothing to compare.
            return Ok(());
        };
        match beneath::open_regular(&area, &marker) {
            Ok((mut f, _)) => {
                let mut text = String::new();
                (&mut f)
                    .take(256)
                    .read_to_string(&mut text)
                    .map_err(io_err("cannot read the state marker", &path))?;
                let recorded = text.trim();
                if recorded == state_id {
                    return Ok(());
                }
                Err(StoreError::OtherState {
                    dataset: dataset.to_string(),
                    recorded: recorded.to_string(),
                    current: state_id.to_string(),
                    marker: path.display().to_string(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !write {
                    return Ok(());
                }
                let staging = format!("{marker}.{}", uuid::Uuid::new_v4());
                let r = (|| -> io::Result<()> {
                    let mut f = beneath::create_new(&area, &staging, 0o600)?;
                    f.write_all(format!("{state_id}\n").as_bytes())?;
                    f.sync_all()?;
                    beneath::rename_no_replace(&area, &staging, &area, &marker)?;
                    rustix::fs::fsync(&area)?;
                    Ok(())
                })();
                if let Err(e) = r {
                    let _ = beneath::unlink(&area, &staging);
                    if e.kind() == io::ErrorKind::AlreadyExists {
                        // Another pass wrote it meanwhile: compare with that one.
                        return self.bind_state(dataset, state_id, false);
                    }
                    return Err(StoreError::io("cannot write the state marker", path.display(), e));
                }
                Ok(())
            }
            Err(e) => Err(StoreError::io("cannot read the state marker", path.display(), e)),
        }
    }

    /// The name of a new trash batch for files trashed at `now_ms` (the pass's now): a batch of that millisecond may
    /// exist (two groups in a row), then the next millisecond is taken. Should another process pick the same name at
    /// the same instant, the no-replace rename still keeps every file.
    fn new_batch(&self, now_ms: i64) -> Result<String, StoreError> {
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
    fn move_to_trash(&self, dir: &DirFd<'_>, name: &str, rel: &str, batch: &str) -> Result<(), StoreError> {
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
                _ if e.kind() == io::ErrorKind::AlreadyExists => {
                    StoreError::Refused(format!("{} already exists; not overwriting it", dst.display()))
                }
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

    /// Lists the files of this dataset's segments in the trash (datasets may share a root, and so its trash), oldest
    /// first. Every directory is opened beneath the root without following symlinks; anything but a regular file in
    /// a batch we named is not an entry.
    fn list_trash(&self) -> Result<Vec<TrashFile>, StoreError> {
        let mut out = Vec::new();
        let Some(top) = self.area(false, true)? else {
            return Ok(out);
        };
        let top_path = self.root.display(TRASH_DIR);
        let entries = rustix::fs::Dir::read_from(&top)
            .map_err(|e| StoreError::io("cannot read the trash", top_path.display(), e.into()))?;
        let mut batches = Vec::new();
        for e in entries {
            let e = e.map_err(|e| StoreError::io("cannot read the trash", top_path.display(), e.into()))?;
            let Ok(name) = e.file_name().to_str() else { continue };
            if let Some(times) = parse_batch_name(name) {
                batches.push((name.to_string(), times));
            }
        }
        for (batch, (trashed_at_ms, expires_at_ms)) in batches {
            let mut stack = vec![String::new()];
            while let Some(sub) = stack.pop() {
                let dir_rel = match sub.is_empty() {
                    true => format!("{TRASH_DIR}/{batch}"),
                    false => format!("{TRASH_DIR}/{batch}/{sub}"),
                };
                let dir = match self.root.dir(&dir_rel, true) {
                    Ok(d) => d,
                    // Emptied and removed meanwhile by a restore or a purge (of another dataset sharing the root);
                    // or not a directory at all: not ours.
                    Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::InvalidInput) => continue,
                    Err(e) => {
                        return Err(StoreError::io(
                            "cannot read the trash",
                            self.root.display(&dir_rel).display(),
                            e,
                        ));
                    }
                };
                let files = rustix::fs::Dir::read_from(&dir).map_err(|e| {
                    StoreError::io("cannot read the trash", self.root.display(&dir_rel).display(), e.into())
                })?;
                for f in files {
                    let f = f.map_err(|e| {
                        StoreError::io("cannot read the trash", self.root.display(&dir_rel).display(), e.into())
                    })?;
                    let raw = f.file_name().to_bytes();
                    if raw == b"." || raw == b".." {
                        continue;
                    }
                    let Ok(file_name) = std::str::from_utf8(raw) else {
                        continue;
                    };
                    let st = match beneath::stat(&dir, file_name) {
                        Ok(st) => st,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => {
                            let p = self.root.display(&format!("{dir_rel}/{file_name}"));
                            return Err(StoreError::io("cannot read the trash", p.display(), e));
                        }
                    };
                    let ft = FileType::from_raw_mode(st.st_mode as _);
                    if ft == FileType::Directory {
                        stack.push(rel_join(&sub, file_name));
                        continue;
                    }
                    // Only regular files are ever moved here, never temporaries.
                    if ft != FileType::RegularFile || temp_parts(file_name).is_some() {
                        continue;
                    }
                    let rel = rel_join(&sub, file_name);
                    let compressed = file_name.len() > ZST.len() && file_name.ends_with(ZST);
                    let name = if compressed {
                        &rel[..rel.len() - ZST.len()]
                    } else {
                        &rel[..]
                    };
                    if !self.matches(name) || self.sibling_of(name).is_some() {
                        continue;
                    }
                    out.push(TrashFile {
                        entry: TrashEntry {
                            name: name.to_string(),
                            tier: if compressed { Tier::Compressed } else { Tier::Hot },
                            bytes: st.st_size as u64,
                            trashed_at_ms,
                            expires_at_ms,
                            locator: format!("{dir_rel}/{file_name}"),
                            labels: Vec::new(),
                        },
                        rel,
                    });
                }
            }
        }
        out.sort_by(|a, b| {
            let key = |f: &TrashFile| (f.entry.trashed_at_ms, f.entry.name.clone(), f.entry.tier);
            key(a).cmp(&key(b))
        });
        Ok(out)
    }

    /// The batch of a trash file's locator (`.retention-trash/<batch>/<rel>`), checking that it is one.
    fn trash_locator<'l>(&self, e: &'l TrashEntry) -> Result<&'l str, StoreError> {
        let batch = e
            .locator
            .strip_prefix(TRASH_DIR)
            .and_then(|r| r.strip_prefix('/'))
            .and_then(|r| r.split_once('/'))
            .filter(|(b, rest)| parse_batch_name(b).is_some() && beneath::check_rel(rest).is_ok())
            .map(|(b, _)| b);
        batch.ok_or_else(|| {
            StoreError::Refused(format!(
                "trash entry {:?} lies at {}, outside the trash: not purged",
                e.name,
                self.root.display(&e.locator).display()
            ))
        })
    }

    /// Deletes the trash files of `entries` (their locators: paths under the root, in the trash), then their batch
    /// directories if left empty, then makes it durable.
    fn purge(&self, entries: Vec<TrashEntry>) -> Result<Vec<TrashEntry>, StoreError> {
        let mut purged = Vec::new();
        let mut batches = HashSet::new();
        for e in entries {
            // Only ever a file in the trash: a locator is ours, but never trusted to point elsewhere.
            let batch = self.trash_locator(&e)?.to_string();
            let path = self.root.display(&e.locator);
            let (dir, name) = match self.root.parent(&e.locator) {
                Ok(x) => x,
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(StoreError::io("cannot purge", path.display(), err)),
            };
            match beneath::stat(&dir, name) {
                Ok(st) if beneath::is_regular(&st) => {}
                Ok(_) => {
                    return Err(StoreError::Refused(format!(
                        "trash entry {} is no longer a regular file: not purged",
                        path.display()
                    )));
                }
                // Restored, or purged by another pass over the same root, meanwhile.
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(StoreError::io("cannot purge", path.display(), err)),
            }
            match beneath::unlink(&dir, name) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(StoreError::io("cannot purge", path.display(), err)),
            }
            hit_for("purge:removed", &path).map_err(io_err("cannot purge", &path))?;
            batches.insert(batch);
            purged.push(e);
        }
        for batch in &batches {
            self.prune(&format!("{TRASH_DIR}/{batch}"));
        }
        if !purged.is_empty() {
            let root = self.root.path();
            beneath::sync_fs(self.root.fd()).map_err(io_err("cannot sync", root))?;
            hit_for("purge:synced", root).map_err(io_err("cannot sync", root))?;
        }
        Ok(purged)
    }

    /// Removes the directory `rel` and the directories under it that hold nothing; best effort (a directory that is
    /// not empty, or anything else, stays). Nothing is followed: each directory is opened beneath the root.
    fn prune(&self, rel: &str) {
        let Ok(dir) = self.root.dir(rel, true) else { return };
        if let Ok(entries) = rustix::fs::Dir::read_from(&dir) {
            let subdirs: Vec<String> = entries
                .flatten()
                .filter(|e| e.file_type() == FileType::Directory)
                .filter_map(|e| e.file_name().to_str().ok().map(str::to_string))
                .filter(|n| n != "." && n != "..")
                .collect();
            for s in subdirs {
                self.prune(&format!("{rel}/{s}"));
            }
        }
        drop(dir);
        if let Ok((parent, name)) = self.root.parent(rel) {
            let _ = beneath::rmdir(&parent, name);
        }
    }

    /// Renames the trash file `f` back into its place, which the caller found free (the rename refuses to replace
    /// anything that appeared since), then makes it durable. The place's directories are opened (created if they
    /// were removed since the drop) beneath the root without following a symlink.
    fn restore(&self, f: &TrashFile) -> Result<(), StoreError> {
        let target = self.root.display(&f.rel);
        let (tparent, tname) = split_rel(&f.rel);
        // Its directories may have been removed since the drop; they are created as any new directory would be.
        let to = self.root.create_dirs(tparent, 0o777).map_err(|e| match e.kind() {
            io::ErrorKind::InvalidInput => StoreError::Refused(format!(
                "cannot restore {:?} to {}: {e}",
                f.entry.name,
                target.display()
            )),
            _ => StoreError::io("cannot create directory", self.root.display(tparent).display(), e),
        })?;
        let from_path = self.root.display(&f.entry.locator);
        let (from, fname) = self
            .root
            .parent(&f.entry.locator)
            .map_err(|e| StoreError::io("cannot restore from the trash", from_path.display(), e))?;
        if let Err(e) = beneath::rename_no_replace(&from, fname, &to, tname) {
            return Err(if e.kind() == io::ErrorKind::AlreadyExists {
                StoreError::Taken {
                    name: f.entry.name.clone(),
                    path: target.display().to_string(),
                }
            } else {
                StoreError::io("cannot restore from the trash", from_path.display(), e)
            });
        }
        if let Err(e) = hit_for("restore:moved", &target) {
            // Leave it in the trash, as it was: the restore failed.
            return Err(match beneath::rename_no_replace(&to, tname, &from, fname) {
                Ok(()) => StoreError::io("cannot restore", target.display(), e),
                Err(back) => StoreError::Refused(format!(
                    "{} was restored but the restore failed ({e}) and putting it back in the trash too ({back})",
                    target.display()
                )),
            });
        }
        let root = self.root.path();
        beneath::sync_fs(self.root.fd()).map_err(|e| {
            StoreError::Refused(format!(
                "{} was restored, but the restore may not be durable: cannot sync {}: {e}",
                target.display(),
                root.display()
            ))
        })?;
        hit_for("restore:synced", root).map_err(io_err("cannot sync", root))?;
        // The batch keeps only what is still in it (best effort; a purge removes what stays).
        if let Ok(batch) = self.trash_locator(&f.entry) {
            self.prune(&format!("{TRASH_DIR}/{batch}"));
        }
        Ok(())
    }

    /// Whether anything is at `rel` beneath the root (without following symlinks); a component that is a symlink is
    /// an error, since nothing can be restored through it.
    fn taken(&self, rel: &str) -> Result<bool, StoreError> {
        match self.root.parent(rel) {
            Ok((dir, name)) => match beneath::stat(&dir, name) {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(StoreError::io("cannot check", self.root.display(rel).display(), e)),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StoreError::Refused(format!(
                "cannot restore to {}: {e}",
                self.root.display(rel).display()
            ))),
        }
    }
}

/// Marks files of one directory present both hot and compressed.
fn mark_sibling_duplicates(files: &mut [Found]) {
    if !files.iter().any(|f| f.tier == Tier::Compressed) || !files.iter().any(|f| f.tier == Tier::Hot) {
        return;
    }
    let compressed: HashMap<&str, usize> = files
        .iter()
        .enumerate()
        .filter(|(_, f)| f.tier == Tier::Compressed)
        .map(|(i, f)| (f.name(), i))
        .collect();
    let pairs: Vec<(usize, usize)> = files
        .iter()
        .enumerate()
        .filter(|(_, f)| f.tier == Tier::Hot)
        .filter_map(|(i, f)| compressed.get(f.name()).map(|&j| (i, j)))
        .collect();
    for (i, j) in pairs {
        files[i].dup = true;
        files[j].dup = true;
    }
}

/// Turns walk results into segments, interning labels.
struct Builder<'a> {
    inner: &'a Inner,
    symbols: &'a mut Symbols,
    keys: Vec<Option<Sym>>,
    locs: Option<CaptureLocations>,
    cache: Option<(String, Option<i64>)>,
}

impl<'a> Builder<'a> {
    fn new(inner: &'a Inner, symbols: &'a mut Symbols) -> Self {
        Builder {
            keys: vec![None; inner.label_groups.len()],
            locs: inner.labels.as_ref().map(Regex::capture_locations),
            cache: None,
            inner,
            symbols,
        }
    }

    fn labels(&mut self, name: &str, d: &Described) -> Labels {
        let mut out = Labels::with_capacity(d.labels.len());
        for &(slot, s, e) in &d.labels {
            let key = match self.keys[slot as usize] {
                Some(k) => k,
                None => {
                    let k = self.symbols.intern(&self.inner.label_groups[slot as usize].1);
                    self.keys[slot as usize] = Some(k);
                    k
                }
            };
            out.push((key, self.symbols.intern(&name[s as usize..e as usize])));
        }
        out.sort_unstable_by_key(|l| l.0);
        out
    }

    fn local(&mut self, f: Found, scan: &mut Scan) {
        let name = f.name().to_string();
        match &f.described {
            Ok(d) => {
                let labels = self.labels(&name, d);
                let t = d.time_ms.unwrap_or(f.id.mtime_ns.div_euclid(1_000_000));
                scan.segments.push(Segment {
                    name,
                    tier: f.tier,
                    start_ms: t,
                    end_ms: t,
                    rows: None,
                    bytes: f.id.size,
                    labels,
                    locator: f.rel,
                    modified_ns: f.id.mtime_ns,
                    file_id: f.id.ino,
                });
            }
            Err(reason) => scan.skipped.push(Skipped {
                name,
                reason: reason.clone(),
            }),
        }
    }

    fn object(&mut self, o: Object, scan: &mut Scan) {
        let name = logical(&o.rel).to_string();
        match self.inner.describe(&name, &mut self.locs, &mut self.cache) {
            Ok(d) => {
                let labels = self.labels(&name, &d);
                let ms = o.last_modified.timestamp_millis();
                let t = d.time_ms.unwrap_or(ms);
                scan.segments.push(Segment {
                    name,
                    tier: Tier::Archived,
                    start_ms: t,
                    end_ms: t,
                    rows: None,
                    bytes: o.size,
                    labels,
                    locator: o.location.to_string(),
                    modified_ns: o
                        .last_modified
                        .timestamp_nanos_opt()
                        .unwrap_or(ms.saturating_mul(1_000_000)),
                    file_id: 0,
                });
            }
            Err(reason) => scan.skipped.push(Skipped { name, reason }),
        }
    }
}

impl Inner {
    /// The labels of a trash entry's name, as the scan would give its segment (for legal holds on the trash).
    fn labels_of(&self, name: &str) -> Vec<(String, String)> {
        let Some(re) = &self.labels else { return Vec::new() };
        let Some(caps) = re.captures(name) else {
            return Vec::new();
        };
        let mut out: Vec<(String, String)> = self
            .label_groups
            .iter()
            .filter_map(|(g, key)| caps.get(*g).map(|m| (key.clone(), m.as_str().to_string())))
            .collect();
        out.sort();
        out
    }
}

impl DirectoryStore {
    /// Removes temporaries and resolves duplicates found in `inv` (with `repair`; otherwise only reports them), and
    /// marks each duplicate group with what the scan must present.
    async fn recover_inventory(&self, inv: &mut Inventory, repair: bool) -> Result<Recovery, StoreError> {
        let mut rec = Recovery {
            left_alone: std::mem::take(&mut inv.left_alone),
            ..Recovery::default()
        };
        let root = self.root();
        let temps = std::mem::take(&mut inv.temps);
        if repair && !temps.is_empty() {
            let t = temps.clone();
            self.blocking(move |inner| {
                for rel in &t {
                    let path = inner.root.display(rel);
                    let (dir, name) = match inner.root.parent(rel) {
                        Ok(x) => x,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(StoreError::io("cannot remove temporary", path.display(), e)),
                    };
                    match beneath::unlink(&dir, name) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(StoreError::io("cannot remove temporary", path.display(), e)),
                    }
                    hit_for("recover:temp-removed", &path).map_err(io_err("cannot remove temporary", &path))?;
                }
                Ok(())
            })
            .await?;
        }
        rec.temp_removed.extend(temps);
        if let Some(a) = &self.archive {
            let adir = a.local_dir().unwrap_or(Path::new(""));
            let staging = a
                .staging_leftovers()
                .await
                .map_err(|e| StoreError::io("cannot list archive directory", a.url(), e))?;
            for path in staging {
                let rel = path.strip_prefix(adir).unwrap_or(&path).to_string_lossy().into_owned();
                // An archive location belongs to one dataset (the config refuses two sharing one), but its staging
                // files are still matched to this dataset's segments.
                let target = rel.rsplit_once('#').map_or(&rel[..], |(t, _)| t);
                // A copy into or out of the archive's trash: `.retention-trash/<batch>/<rel>`.
                let target = target
                    .strip_prefix(TRASH_DIR)
                    .and_then(|r| r.strip_prefix('/'))
                    .and_then(|r| r.split_once('/'))
                    .map_or(target, |(_, r)| r);
                let ours = target.starts_with(&format!("{}/", super::archive::STAGING_DIR));
                if !ours && !self.inner.matches(logical(target)) {
                    continue;
                }
                if repair {
                    match std::fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(StoreError::io("cannot remove staging file", path.display(), e)),
                    }
                    hit_for("recover:temp-removed", root).map_err(io_err("cannot remove staging file", &path))?;
                }
                rec.temp_removed
                    .push(format!("{}/{rel}", a.url().as_str().trim_end_matches('/')));
            }
            for location in std::mem::take(&mut inv.staged_objects) {
                if repair {
                    match a.delete(&location).await {
                        Ok(())
                        | Err(StoreError::Archive {
                            source: object_store::Error::NotFound { .. },
                            ..
                        }) => {}
                        Err(e) => return Err(e),
                    }
                    hit_for("recover:temp-removed", root).map_err(io_err("cannot remove staged upload", root))?;
                }
                rec.temp_removed.push(a.display(&location));
            }
        }
        let mut removed_local: Vec<(String, FileId)> = Vec::new();
        for g in &mut inv.groups {
            let mut verdict = self.resolve(g).await;
            if let Verdict::Same = verdict {
                let (latest, earlier) = g.copies.split_last().expect("a group has copies");
                for c in earlier {
                    let Copy::Local(f) = c else {
                        unreachable!("only one archived copy, always the latest")
                    };
                    if repair {
                        // The copy must still be what was compared (a log may have been appended to meanwhile).
                        let (rel, seen) = (f.rel.clone(), f.id);
                        let r = self
                            .blocking(move |inner| {
                                let root = &inner.root;
                                let path = root.display(&rel);
                                let (dir, name) = root
                                    .parent(&rel)
                                    .map_err(|e| StoreError::io("cannot check", path.display(), e))?;
                                let st = beneath::stat(&dir, name).map_err(io_err("cannot check", &path))?;
                                check_unchanged(&path, &seen, &FileId::of(&st))?;
                                beneath::unlink(&dir, name).map_err(io_err("cannot remove duplicate", &path))?;
                                hit_for("recover:duplicate-removed", &path)
                                    .map_err(io_err("cannot remove duplicate", &path))
                            })
                            .await;
                        match r {
                            Ok(()) => removed_local.push((f.rel.clone(), f.id)),
                            Err(e @ StoreError::Refused(_)) => {
                                verdict = Verdict::Conflict(e.to_string());
                                break;
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    rec.duplicates_resolved.push((g.name.clone(), latest.tier(), c.tier()));
                }
            }
            if let Verdict::Conflict(reason) = &verdict {
                rec.conflicts.push(Skipped {
                    name: g.name.clone(),
                    reason: reason.clone(),
                });
            }
            // What the scan that follows presents: the latest copy (earlier ones removed or not), or a conflict.
            g.verdict = Some(verdict);
        }
        self.settle_trashed_objects(inv, repair, &mut rec).await?;
        if !removed_local.is_empty() {
            self.blocking(move |inner| {
                let mut syncs = SyncSet::new(&inner.root);
                for (rel, id) in &removed_local {
                    syncs.note(id.dev, || {
                        let (dir, _) = split_rel(rel);
                        match inner.root.dir(dir, true) {
                            Ok(DirFd::Owned(fd)) => Some(fd),
                            _ => None,
                        }
                    });
                }
                syncs
                    .sync(&inner.root)
                    .map_err(|e| StoreError::io("cannot sync", inner.root.path().display(), e))
            })
            .await?;
        }
        Ok(rec)
    }

    /// Settles objects found both in place and in the archive's trash with equal content, which an interrupted move
    /// into the trash (a drop) or out of it (a restore) leaves: the trash's copy is removed, so the object stays where
    /// a scan sees it and the next pass decides again. Copies that differ are two contents (a name dropped, then
    /// archived anew) and both stay.
    async fn settle_trashed_objects(
        &self,
        inv: &mut Inventory,
        repair: bool,
        rec: &mut Recovery,
    ) -> Result<(), StoreError> {
        let Some(a) = &self.archive else { return Ok(()) };
        if inv.trashed_objects.is_empty() {
            return Ok(());
        }
        let mut live: HashMap<&str, &Object> = inv.objects.iter().map(|o| (o.rel.as_str(), o)).collect();
        for g in &inv.groups {
            for c in &g.copies {
                if let Copy::Archived(o) = c {
                    live.insert(o.rel.as_str(), o);
                }
            }
        }
        let mut removed = Vec::new();
        for (k, t) in inv.trashed_objects.iter().enumerate() {
            let Some(o) = live.get(t.object.rel.as_str()) else {
                continue;
            };
            if o.size != t.object.size {
                continue;
            }
            let same = async {
                let x = a.reader(&o.location).await?;
                let y = a.reader(&t.object.location).await?;
                let (cx, cy) = (
                    compare::Copy {
                        reader: x,
                        compressed: false,
                        size: o.size,
                    },
                    compare::Copy {
                        reader: y,
                        compressed: false,
                        size: t.object.size,
                    },
                );
                tokio::task::spawn_blocking(move || compare::same(cx, cy))
                    .await
                    .map_err(|e| StoreError::io("cannot compare", a.url(), io::Error::other(e.to_string())))?
                    .map_err(|e| StoreError::io("cannot compare", a.display(&o.location), e))
            };
            let same = match same.await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("cannot compare {} with its copy in the archive's trash: {e}", o.rel);
                    false
                }
            };
            if !same {
                continue;
            }
            if repair {
                match a.delete(&t.object.location).await {
                    Ok(())
                    | Err(StoreError::Archive {
                        source: object_store::Error::NotFound { .. },
                        ..
                    }) => {}
                    Err(e) => return Err(e),
                }
                let root = self.root();
                hit_for("recover:duplicate-removed", root).map_err(io_err("cannot remove duplicate", root))?;
                removed.push(k);
            }
            rec.trash_copies_removed.push(logical(&t.object.rel).to_string());
        }
        if !removed.is_empty() {
            a.sync().await?;
            for k in removed.into_iter().rev() {
                inv.trashed_objects.remove(k);
            }
        }
        Ok(())
    }

    /// This dataset's objects in the archive's trash, oldest first (with their keys before the drop).
    async fn archive_trash(&self) -> Result<Vec<TrashObject>, StoreError> {
        match &self.archive {
            Some(a) => Ok(self.trash_objects(a.list_trash().await?)),
            None => Ok(Vec::new()),
        }
    }

    fn trash_objects(&self, listed: Vec<TrashedObject>) -> Vec<TrashObject> {
        let mut out: Vec<TrashObject> = listed
            .into_iter()
            .filter_map(|t| {
                let (trashed_at_ms, expires_at_ms) = parse_batch_name(&t.batch)?;
                let name = logical(&t.object.rel);
                if !self.inner.matches(name) {
                    return None;
                }
                Some(TrashObject {
                    entry: TrashEntry {
                        name: name.to_string(),
                        tier: Tier::Archived,
                        bytes: t.object.size,
                        trashed_at_ms,
                        expires_at_ms,
                        locator: t.object.location.to_string(),
                        labels: self.inner.labels_of(name),
                    },
                    rel: t.object.rel,
                    location: t.object.location,
                })
            })
            .collect();
        out.sort_by(|a, b| (a.entry.trashed_at_ms, &a.entry.name).cmp(&(b.entry.trashed_at_ms, &b.entry.name)));
        out
    }

    /// Deletes the archive's trash objects of `entries` (their locators: object keys in the archive's trash).
    async fn purge_objects(&self, entries: Vec<TrashEntry>) -> Result<Vec<TrashEntry>, StoreError> {
        let Some(a) = &self.archive else {
            return match entries.first() {
                None => Ok(Vec::new()),
                Some(e) => Err(StoreError::Refused(format!(
                    "trash entry {:?} is archived but {} has no archive",
                    e.name,
                    self.describe()
                ))),
            };
        };
        let root = self.root();
        let mut purged = Vec::new();
        let mut batches = HashSet::new();
        for e in entries {
            let location = ObjectPath::parse(&e.locator).ok();
            let batch = location.as_ref().and_then(|l| a.rel_of(l)).and_then(|rel| {
                Some(
                    rel.strip_prefix(TRASH_DIR)?
                        .strip_prefix('/')?
                        .split_once('/')?
                        .0
                        .to_string(),
                )
            });
            let (Some(location), Some(batch)) = (location, batch) else {
                return Err(StoreError::Refused(format!(
                    "trash entry {:?} lies at {:?}, outside the archive's trash: not purged",
                    e.name, e.locator
                )));
            };
            match a.delete(&location).await {
                Ok(()) => {}
                // Purged meanwhile by another pass over the same archive.
                Err(StoreError::Archive {
                    source: object_store::Error::NotFound { .. },
                    ..
                }) => continue,
                Err(e) => return Err(e),
            }
            hit_for("purge:removed", root).map_err(io_err("cannot purge", root))?;
            batches.insert(batch);
            purged.push(e);
        }
        if !purged.is_empty() {
            if let Some(adir) = a.local_dir() {
                // A local destination keeps the emptied directories; only the purged entries' batches are touched.
                for b in &batches {
                    remove_empty_dirs(&adir.join(TRASH_DIR).join(b));
                }
            }
            a.sync().await?;
            hit_for("purge:synced", root).map_err(io_err("cannot sync", root))?;
        }
        Ok(purged)
    }

    /// Copies the trashed object `t` back to its key, which the caller found free, then deletes the trash's copy.
    /// A crash between the two leaves equal copies, which `recover` settles in favour of the restored one.
    async fn restore_object(&self, t: &TrashObject) -> Result<(), StoreError> {
        let a = self.archive.as_ref().expect("trash objects come from the archive");
        let root = self.root();
        let dst = a.key(&t.rel);
        a.copy_new(&t.location, &dst).await.map_err(|e| match e {
            StoreError::Refused(_) => StoreError::Taken {
                name: t.entry.name.clone(),
                path: a.display(&dst),
            },
            e => e,
        })?;
        if let Err(e) = hit_for("restore:moved", root) {
            // Leave it in the trash, as it was: the restore failed.
            let _ = a.delete(&dst).await;
            return Err(StoreError::io("cannot restore", a.display(&dst), e));
        }
        if let Err(e) = a.delete(&t.location).await {
            // Restored all the same: the next pass's recovery removes the trash's equal copy.
            tracing::warn!(
                "{} was restored but its copy in the trash could not be removed ({e}); the next pass removes it",
                t.entry.name
            );
        }
        a.sync().await.map_err(|e| {
            StoreError::Refused(format!(
                "{} was restored, but the restore may not be durable: {e}",
                a.display(&dst)
            ))
        })?;
        hit_for("restore:synced", root).map_err(io_err("cannot sync", root))
    }

    /// The segments of an inventory that [`DirectoryStore::recover_inventory`] went through.
    async fn scan_inventory(&self, inv: Inventory, symbols: &mut Symbols) -> Result<Scan, StoreError> {
        let mut scan = Scan {
            segments: Vec::with_capacity(
                inv.files.iter().map(Vec::len).sum::<usize>() + inv.objects.len() + inv.groups.len(),
            ),
            skipped: inv.skipped,
        };
        let mut b = Builder::new(&self.inner, symbols);
        for f in inv.files.into_iter().flatten() {
            b.local(f, &mut scan);
        }
        for o in inv.objects {
            b.object(o, &mut scan);
        }
        for mut g in inv.groups {
            let verdict = match g.verdict.take() {
                Some(v) => v,
                None => self.resolve(&g).await,
            };
            match verdict {
                Verdict::Same => match g.copies.pop().expect("a group has copies") {
                    Copy::Local(f) => b.local(f, &mut scan),
                    Copy::Archived(o) => b.object(o, &mut scan),
                },
                Verdict::Conflict(reason) => scan.skipped.push(Skipped {
                    name: g.name,
                    reason: format!("duplicate with conflicting copies: {reason}"),
                }),
            }
        }
        Ok(scan)
    }
}

/// Removes `dir` (of the engine's own `file://` archive) and the directories under it that hold nothing; best
/// effort.
fn remove_empty_dirs(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_empty_dirs(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

#[async_trait]
impl Store for DirectoryStore {
    fn describe(&self) -> String {
        match &self.archive {
            Some(a) => format!("directory {} (archive {})", self.root().display(), a.url()),
            None => format!("directory {}", self.root().display()),
        }
    }

    fn supports(&self, action: Action) -> bool {
        action != Action::Archive || self.archive.is_some()
    }

    async fn bind_state(&self, dataset: &str, state_id: &str, write: bool) -> Result<(), StoreError> {
        let (dataset, state_id) = (dataset.to_string(), state_id.to_string());
        self.blocking(move |inner| inner.bind_state(&dataset, &state_id, write))
            .await
    }

    async fn scan(&self, repair: bool, symbols: &mut Symbols) -> Result<(Recovery, Scan), StoreError> {
        let mut inv = self.inventory().await?;
        let recovery = self.recover_inventory(&mut inv, repair).await?;
        let scan = self.scan_inventory(inv, symbols).await?;
        Ok((recovery, scan))
    }

    async fn apply(
        &self,
        work: &[Work<'_>],
        parallelism: usize,
        now_ms: i64,
        progress: Progress<'_>,
    ) -> Vec<Result<Applied, StoreError>> {
        let parallelism = parallelism.max(1);
        let mut results: Vec<Option<Result<Applied, StoreError>>> = (0..work.len()).map(|_| None).collect();
        let (mut compress, mut archive, mut drop) = (Vec::new(), Vec::new(), Vec::new());
        for (i, w) in work.iter().enumerate() {
            match self.check(w) {
                Err(e) => results[i] = Some(Err(e)),
                Ok(None) => {
                    results[i] = Some(Ok(Applied {
                        bytes_before: w.segment.bytes,
                        bytes_after: w.segment.bytes,
                        trashed: false,
                    }))
                }
                Ok(Some(loc)) => match (w.action, loc) {
                    (Action::Compress, Located::Local(p)) => compress.push((i, p)),
                    (Action::Archive, Located::Local(p)) => archive.push((i, p)),
                    (Action::Drop, loc) => drop.push((i, loc)),
                    (action, _) => {
                        results[i] = Some(Err(StoreError::Refused(format!(
                            "cannot {action} segment {} from tier {}",
                            w.segment.name, w.segment.tier
                        ))))
                    }
                },
            }
        }
        let done = results.iter().filter(|r| r.is_some()).count() as u64;
        if done > 0 {
            progress(done);
        }
        for group in compress.chunks(COMPRESS_GROUP) {
            self.compress_group(work, group, parallelism, &mut results).await;
            progress(group.len() as u64);
        }
        for group in archive.chunks(ARCHIVE_GROUP) {
            self.archive_group(work, group, parallelism, &mut results).await;
            progress(group.len() as u64);
        }
        for group in drop.chunks(DROP_GROUP) {
            self.drop_group(work, group, parallelism, now_ms, &mut results).await;
            progress(group.len() as u64);
        }
        results
            .into_iter()
            .map(|r| r.expect("every action has a result"))
            .collect()
    }

    async fn trash(&self) -> Result<Vec<TrashEntry>, StoreError> {
        let listing = self
            .blocking(|inner| {
                let mut files = inner.list_trash()?;
                for f in &mut files {
                    f.entry.labels = inner.labels_of(&f.entry.name);
                }
                Ok(files)
            })
            .await?;
        let mut entries: Vec<TrashEntry> = listing.into_iter().map(|f| f.entry).collect();
        entries.extend(self.archive_trash().await?.into_iter().map(|t| t.entry));
        entries.sort_by(|a, b| (a.trashed_at_ms, &a.name, a.tier).cmp(&(b.trashed_at_ms, &b.name, b.tier)));
        Ok(entries)
    }

    async fn purge(&self, entries: &[TrashEntry]) -> Result<Vec<TrashEntry>, StoreError> {
        let (objects, files): (Vec<TrashEntry>, Vec<TrashEntry>) =
            entries.iter().cloned().partition(|e| e.tier == Tier::Archived);
        let mut purged = if files.is_empty() {
            Vec::new()
        } else {
            self.blocking(move |inner| inner.purge(files)).await?
        };
        purged.extend(self.purge_objects(objects).await?);
        Ok(purged)
    }

    async fn restore(&self, name: &str) -> Result<TrashEntry, StoreError> {
        if beneath::check_rel(name).is_err() {
            return Err(StoreError::Refused(format!("{name:?} is not a segment name")));
        }
        let listing = self.blocking(|inner| inner.list_trash()).await?;
        // Sorted oldest first: the last of the name is the most recently trashed, locally or in the archive.
        let file = listing.into_iter().rev().find(|f| f.entry.name == name);
        let object = self
            .archive_trash()
            .await?
            .into_iter()
            .rev()
            .find(|t| t.entry.name == name);
        let latest = match (file, object) {
            (Some(f), Some(t)) if t.entry.trashed_at_ms > f.entry.trashed_at_ms => Err(t),
            (Some(f), _) => Ok(f),
            (None, Some(t)) => Err(t),
            (None, None) => {
                return Err(StoreError::NotInTrash {
                    name: name.to_string(),
                    store: self.describe(),
                });
            }
        };
        // The segment must not exist again in any tier: a restore never makes a second copy of a name.
        for rel in [name.to_string(), format!("{name}{ZST}")] {
            let r = rel.clone();
            if self.blocking(move |inner| inner.taken(&r)).await? {
                return Err(StoreError::Taken {
                    name: name.to_string(),
                    path: self.inner.root.display(&rel).display().to_string(),
                });
            }
            if let Some(a) = &self.archive {
                let location = a.key(&rel);
                if a.head(&location).await?.is_some() {
                    return Err(StoreError::Taken {
                        name: name.to_string(),
                        path: a.display(&location),
                    });
                }
            }
        }
        match latest {
            Ok(f) => {
                let mut entry = f.entry.clone();
                entry.labels = self.inner.labels_of(&entry.name);
                self.blocking(move |inner| inner.restore(&f)).await?;
                Ok(entry)
            }
            Err(t) => {
                self.restore_object(&t).await?;
                Ok(t.entry)
            }
        }
    }
}

impl DirectoryStore {
    /// Runs `f` on the store's [`Inner`] on a blocking thread.
    async fn blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner)).await.map_err(|e| {
            StoreError::io(
                "cannot use the store",
                self.root().display(),
                io::Error::other(e.to_string()),
            )
        })?
    }
}
#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    use globset::{GlobBuilder, GlobSetBuilder};

    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn globs(patterns: &[&str]) -> GlobSet {
        let mut b = GlobSetBuilder::new();
        for p in patterns {
            b.add(GlobBuilder::new(p).literal_separator(true).build().unwrap());
        }
        b.build().unwrap()
    }

    /// A dataset root and an archive directory in a fresh temporary directory.
    struct Fx {
        _tmp: tempfile::TempDir,
        root: PathBuf,
        archive: PathBuf,
    }

    impl Fx {
        fn new() -> Fx {
            let tmp = tempfile::tempdir().unwrap();
            let root = tmp.path().join("data");
            let archive = tmp.path().join("archive");
            std::fs::create_dir(&root).unwrap();
            std::fs::create_dir(&archive).unwrap();
            Fx {
                _tmp: tmp,
                root,
                archive,
            }
        }

        fn cfg(&self) -> DirectoryConfig {
            DirectoryConfig {
                root: self.root.clone(),
                include: globs(&["**"]),
                exclude: globs(&[]),
                labels: None,
                time: TimeSource::Mtime,
                compression_level: 3,
                archive_url: Some(url::Url::from_directory_path(&self.archive).unwrap()),
                trash_grace: DAY,
                excluded: Vec::new(),
                siblings: Vec::new(),
            }
        }

        async fn store(&self) -> DirectoryStore {
            DirectoryStore::open(self.cfg()).await.unwrap()
        }

        async fn store_with_grace(&self, grace: Duration) -> DirectoryStore {
            let mut cfg = self.cfg();
            cfg.trash_grace = grace;
            DirectoryStore::open(cfg).await.unwrap()
        }

        /// The files of the dataset's trash as `<batch>/<rel>`, then those of the archive's as
        /// `archive:<batch>/<rel>`.
        fn trash_files(&self) -> Vec<String> {
            let mut out = Vec::new();
            for (base, tag) in [(&self.root, ""), (&self.archive, "archive:")] {
                let top = base.join(TRASH_DIR);
                let mut stack = vec![top.clone()];
                while let Some(d) = stack.pop() {
                    let Ok(entries) = std::fs::read_dir(&d) else { continue };
                    for e in entries {
                        let p = e.unwrap().path();
                        if p.is_dir() {
                            stack.push(p);
                        } else if d == top {
                            // The engine area's own files (the temporaries' key, state markers): no entries.
                        } else {
                            out.push(format!("{tag}{}", p.strip_prefix(&top).unwrap().to_str().unwrap()));
                        }
                    }
                }
            }
            out.sort();
            out
        }

        fn write(&self, rel: &str, content: &[u8]) -> PathBuf {
            write_file(&self.root.join(rel), content)
        }

        /// Writes a file with a given mtime, in seconds since the epoch.
        fn write_at(&self, rel: &str, content: &[u8], secs: u64) -> PathBuf {
            let p = self.write(rel, content);
            set_mtime(&p, secs);
            p
        }

        fn exists(&self, rel: &str) -> bool {
            self.root.join(rel).exists()
        }

        fn archived(&self, rel: &str) -> Option<Vec<u8>> {
            std::fs::read(self.archive.join(rel)).ok()
        }

        /// Writes a temporary of `store` that becomes `target` (relative path), tagged as the store tags its own;
        /// returns its relative path.
        fn temp(&self, store: &DirectoryStore, target: &str, content: &[u8]) -> String {
            let key = store.inner.temp_key(true).unwrap().unwrap();
            let rel = rel_join(split_rel(target).0, &key.temp_name(target));
            self.write(&rel, content);
            rel
        }
    }

    fn write_file(p: &Path, content: &[u8]) -> PathBuf {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
        p.to_path_buf()
    }

    fn set_mtime(p: &Path, secs: u64) {
        let f = File::options().write(true).open(p).unwrap();
        f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
            .unwrap();
    }

    fn zst(content: &[u8]) -> Vec<u8> {
        zstd::encode_all(content, 3).unwrap()
    }

    fn unzst(content: &[u8]) -> Vec<u8> {
        zstd::decode_all(content).unwrap()
    }

    async fn scan(store: &DirectoryStore) -> (Scan, Symbols) {
        let mut symbols = Symbols::new();
        let (_, scan) = store.scan(false, &mut symbols).await.unwrap();
        (scan, symbols)
    }

    fn seg<'a>(scan: &'a Scan, name: &str) -> &'a Segment {
        scan.segments
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no segment {name} in {:?}", names(scan)))
    }

    fn names(scan: &Scan) -> Vec<String> {
        let mut n: Vec<_> = scan.segments.iter().map(|s| s.name.clone()).collect();
        n.sort();
        n
    }

    fn skipped<'a>(scan: &'a Scan, name: &str) -> &'a str {
        &scan
            .skipped
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name} not skipped: {:?}", scan.skipped))
            .reason
    }

    async fn apply(store: &DirectoryStore, plan: &[(&Segment, Action)]) -> Vec<Result<Applied, StoreError>> {
        let work: Vec<Work<'_>> = plan.iter().map(|&(segment, action)| Work { segment, action }).collect();
        let done = AtomicUsize::new(0);
        let progress = |n: u64| {
            done.fetch_add(n as usize, Ordering::Relaxed);
        };
        // The pass's now: the clock, but never twice the same millisecond (two applies in a row are two passes).
        static LAST: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
        let clock = chrono::Utc::now().timestamp_millis();
        let now_ms = clock.max(LAST.fetch_max(clock, Ordering::Relaxed) + 1);
        LAST.fetch_max(now_ms, Ordering::Relaxed);
        let results = store.apply(&work, 2, now_ms, &progress).await;
        assert_eq!(
            done.load(Ordering::Relaxed),
            plan.len(),
            "progress counts every action once"
        );
        results
    }

    /// Purges what a pass at `now_ms` would (without holds): the entries expired by then.
    async fn purge_expired(store: &DirectoryStore, now_ms: i64) -> Result<Vec<TrashEntry>, StoreError> {
        let due: Vec<TrashEntry> = store
            .trash()
            .await?
            .into_iter()
            .filter(|e| e.expires_at_ms <= now_ms)
            .collect();
        store.purge(&due).await
    }

    async fn apply1(store: &DirectoryStore, seg: &Segment, action: Action) -> Result<Applied, StoreError> {
        apply(store, &[(seg, action)]).await.pop().unwrap()
    }

    // --- scan ---------------------------------------------------------------------------------------------------

    #[tokio::test]
    async fn segments_are_named_by_relative_path_without_zst_and_sized_in_their_tier() {
        let fx = Fx::new();
        fx.write_at("app/a.log", b"hello", 1_700_000_000);
        fx.write_at("app/b.log.zst", &zst(b"compressed"), 1_700_000_100);
        let (scan, _) = scan(&fx.store().await).await;
        assert_eq!(names(&scan), ["app/a.log", "app/b.log"]);
        let a = seg(&scan, "app/a.log");
        assert_eq!(
            (a.tier, a.bytes, a.start_ms, a.end_ms),
            (Tier::Hot, 5, 1_700_000_000_000, 1_700_000_000_000)
        );
        assert_eq!(a.modified_ns, 1_700_000_000_000_000_000);
        assert_eq!(a.rows, None);
        let b = seg(&scan, "app/b.log");
        assert_eq!(b.tier, Tier::Compressed);
        assert_eq!(b.bytes, zst(b"compressed").len() as u64);
        assert_eq!(b.start_ms, 1_700_000_100_000);
        assert!(scan.skipped.is_empty(), "{:?}", scan.skipped);
    }

    #[tokio::test]
    async fn include_and_exclude_globs_see_the_logical_name() {
        let fx = Fx::new();
        fx.write("a.log", b"1");
        fx.write("b.log.zst", &zst(b"2"));
        fx.write("c.txt", b"3");
        fx.write("old/d.log", b"4");
        fx.write("deep/er/e.log", b"5");
        let mut cfg = fx.cfg();
        cfg.include = globs(&["**/*.log"]);
        cfg.exclude = globs(&["old/**"]);
        let (scan, _) = scan(&DirectoryStore::open(cfg).await.unwrap()).await;
        assert_eq!(names(&scan), ["a.log", "b.log", "deep/er/e.log"]);
        assert!(
            scan.skipped.is_empty(),
            "files outside the globs are not reported: {:?}",
            scan.skipped
        );
    }

    #[tokio::test]
    async fn labels_come_from_named_captures_sorted_by_key() {
        let fx = Fx::new();
        fx.write("web/2024-03-01/access.log", b"x");
        fx.write("db/2024-03-02/slow.log.zst", &zst(b"y"));
        fx.write("README", b"z");
        let mut cfg = fx.cfg();
        cfg.labels = Some(Regex::new(r"^(?P<service>[a-z]+)/(?P<day>[0-9-]+)/(?P<kind>[a-z]+)\.log$").unwrap());
        let (scan, symbols) = scan(&DirectoryStore::open(cfg).await.unwrap()).await;
        let s = seg(&scan, "db/2024-03-02/slow.log");
        assert_eq!(s.label(&symbols, "service"), Some("db"));
        assert_eq!(s.label(&symbols, "day"), Some("2024-03-02"));
        assert_eq!(s.label(&symbols, "kind"), Some("slow"));
        for s in &scan.segments {
            assert!(
                s.labels.windows(2).all(|w| w[0].0 < w[1].0),
                "sorted, unique keys: {:?}",
                s.labels
            );
        }
        assert_eq!(
            seg(&scan, "web/2024-03-01/access.log").label(&symbols, "service"),
            Some("web")
        );
        assert!(seg(&scan, "README").labels.is_empty());
    }

    #[tokio::test]
    async fn a_time_label_gives_the_segment_its_time_in_utc() {
        let fx = Fx::new();
        fx.write("app-2024-03-01.log", b"x");
        fx.write("app-2024-03-02T10:30.log.zst", &zst(b"y"));
        let mut cfg = fx.cfg();
        cfg.labels = Some(Regex::new(r"-(?P<date>[0-9T:-]+)\.log$").unwrap());
        cfg.time = TimeSource::Label {
            name: "date".into(),
            format: "%Y-%m-%d".into(),
        };
        let store = DirectoryStore::open(cfg.clone()).await.unwrap();
        let (scan1, _) = scan(&store).await;
        assert_eq!(seg(&scan1, "app-2024-03-01.log").start_ms, 1_709_251_200_000);
        assert!(skipped(&scan1, "app-2024-03-02T10:30.log").contains("not a time"));
        cfg.time = TimeSource::Label {
            name: "date".into(),
            format: "%Y-%m-%dT%H:%M".into(),
        };
        let (scan2, _) = scan(&DirectoryStore::open(cfg).await.unwrap()).await;
        let s = seg(&scan2, "app-2024-03-02T10:30.log");
        assert_eq!((s.start_ms, s.end_ms), (1_709_375_400_000, 1_709_375_400_000));
    }

    #[tokio::test]
    async fn a_file_whose_age_cannot_be_told_is_skipped_with_the_reason() {
        let fx = Fx::new();
        fx.write("app-2024-13-45.log", b"bad month");
        fx.write("app.log", b"no date at all");
        let mut cfg = fx.cfg();
        cfg.labels = Some(Regex::new(r"-(?P<date>[0-9-]+)\.log$").unwrap());
        cfg.time = TimeSource::Label {
            name: "date".into(),
            format: "%Y-%m-%d".into(),
        };
        let (scan, _) = scan(&DirectoryStore::open(cfg).await.unwrap()).await;
        assert!(scan.segments.is_empty());
        let r = skipped(&scan, "app-2024-13-45.log");
        assert!(
            r.contains("date=\"2024-13-45\"") && r.contains("%Y-%m-%d") && r.contains("age is unknown"),
            "{r}"
        );
        let r = skipped(&scan, "app.log");
        assert!(r.contains("no \"date\" label"), "{r}");
    }

    #[tokio::test]
    async fn temporaries_and_staging_files_are_never_segments() {
        let fx = Fx::new();
        fx.write("a.log", b"x");
        fx.write(".a.log.zst.retention-tmp", b"partial");
        fx.write("d/.b.log.zst.retention-tmp", b"partial");
        write_file(&fx.archive.join("c.log#1"), b"partial upload");
        let (scan, _) = scan(&fx.store().await).await;
        assert_eq!(names(&scan), ["a.log"]);
        assert!(scan.skipped.is_empty(), "{:?}", scan.skipped);
    }

    #[tokio::test]
    async fn a_file_whose_name_is_not_utf8_is_skipped_with_the_reason() {
        use std::os::unix::ffi::OsStrExt;
        let fx = Fx::new();
        fx.write("ok.log", b"x");
        std::fs::write(fx.root.join(std::ffi::OsStr::from_bytes(b"bad-\xff.log")), b"y").unwrap();
        let (scan, _) = scan(&fx.store().await).await;
        assert_eq!(names(&scan), ["ok.log"]);
        assert!(skipped(&scan, "bad-\u{FFFD}.log").contains("not valid UTF-8"));
    }

    #[tokio::test]
    async fn symlinks_are_skipped_never_followed() {
        let fx = Fx::new();
        let outside = write_file(&fx._tmp.path().join("outside.log"), b"not ours");
        std::os::unix::fs::symlink(&outside, fx.root.join("link.log")).unwrap();
        let (scan, _) = scan(&fx.store().await).await;
        assert!(scan.segments.is_empty());
        assert!(skipped(&scan, "link.log").contains("not a regular file"));
    }

    // --- the dataset's boundary ----------------------------------------------------------------------------------

    /// Every file under `dir` with its bytes (for checking that nothing outside the root changed).
    fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else { continue };
            for e in entries {
                let p = e.unwrap().path();
                if p.symlink_metadata().unwrap().is_dir() {
                    stack.push(p);
                } else {
                    let rel = p.strip_prefix(dir).unwrap().to_str().unwrap().to_string();
                    out.push((rel, std::fs::read(&p).unwrap_or_default()));
                }
            }
        }
        out.sort();
        out
    }

    #[tokio::test]
    async fn a_directory_swapped_for_a_symlink_after_the_scan_is_never_followed_by_any_action() {
        let fx = Fx::new();
        let outside = fx._tmp.path().join("outside");
        for grace in [Duration::ZERO, DAY] {
            std::fs::create_dir_all(&outside).unwrap();
            for n in ["a.log", "b.log", "c.log"] {
                // Twins outside the root: same size and mtime as the files the scan saw.
                fx.write_at(&format!("d/{n}"), b"same size", 1_700_000_000);
                let twin = write_file(&outside.join(n), b"SAME SIZE");
                set_mtime(&twin, 1_700_000_000);
            }
            let before = tree(&outside);
            let store = fx.store_with_grace(grace).await;
            let (s, _) = scan(&store).await;
            // Between the scan and the apply, the directory becomes a symlink to the outside one.
            std::fs::rename(fx.root.join("d"), fx.root.join("d-moved")).unwrap();
            std::os::unix::fs::symlink(&outside, fx.root.join("d")).unwrap();
            let results = apply(
                &store,
                &[
                    (seg(&s, "d/a.log"), Action::Drop),
                    (seg(&s, "d/b.log"), Action::Compress),
                    (seg(&s, "d/c.log"), Action::Archive),
                ],
            )
            .await;
            for r in &results {
                let e = r.as_ref().unwrap_err().to_string();
                assert!(e.contains("symlink"), "{e}");
            }
            assert_eq!(
                tree(&outside),
                before,
                "nothing outside the root changed (grace {grace:?})"
            );
            assert!(fx.archived("d/c.log").is_none());
            assert!(fx.trash_files().is_empty(), "{:?}", fx.trash_files());
            std::fs::remove_file(fx.root.join("d")).unwrap();
            std::fs::remove_dir_all(fx.root.join("d-moved")).unwrap();
            std::fs::remove_dir_all(&outside).unwrap();
        }
    }

    #[tokio::test]
    async fn a_trash_that_is_a_symlink_is_never_used_nor_purged() {
        let fx = Fx::new();
        let outside = fx._tmp.path().join("elsewhere");
        // An "expired entry" outside the root, which a purge through the link would delete.
        write_file(&outside.join("1-2/old.log"), b"someone else's file");
        std::os::unix::fs::symlink(&outside, fx.root.join(TRASH_DIR)).unwrap();
        fx.write("a.log", b"hot");
        let store = fx.store().await;
        let e = store.trash().await.unwrap_err().to_string();
        assert!(e.contains("symlink") && e.contains(TRASH_DIR), "{e}");
        let forged = TrashEntry {
            name: "old.log".into(),
            tier: Tier::Hot,
            bytes: 19,
            trashed_at_ms: 1,
            expires_at_ms: 2,
            locator: format!("{TRASH_DIR}/1-2/old.log"),
            labels: Vec::new(),
        };
        assert!(store.purge(&[forged]).await.is_err());
        let (s, _) = scan(&store).await;
        assert!(skipped(&s, TRASH_DIR).contains("symlink"), "the scan says so");
        let e = apply1(&store, seg(&s, "a.log"), Action::Drop)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("symlink"), "{e}");
        assert!(fx.exists("a.log"), "the drop left the file as it was");
        assert_eq!(
            std::fs::read(outside.join("1-2/old.log")).unwrap(),
            b"someone else's file"
        );
        assert_eq!(tree(&outside).len(), 1, "nothing was moved out of the root");
    }

    #[tokio::test]
    async fn a_restore_through_a_parent_that_became_a_symlink_is_refused() {
        let fx = Fx::new();
        let outside = fx._tmp.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        fx.write("d/a.log", b"dropped");
        let store = fx.store().await;
        let (s, _) = scan(&store).await;
        assert!(apply1(&store, seg(&s, "d/a.log"), Action::Drop).await.unwrap().trashed);
        std::fs::remove_dir(fx.root.join("d")).unwrap();
        std::os::unix::fs::symlink(&outside, fx.root.join("d")).unwrap();
        let e = store.restore("d/a.log").await.unwrap_err().to_string();
        assert!(e.contains("symlink"), "{e}");
        assert!(tree(&outside).is_empty(), "nothing landed outside the root");
        assert_eq!(store.trash().await.unwrap().len(), 1, "still restorable");
    }

    #[tokio::test]
    async fn a_fifo_swapped_in_after_the_scan_is_refused_without_blocking() {
        let fx = Fx::new();
        for n in ["a.log", "b.log", "c.log"] {
            fx.write(n, b"x");
        }
        let store = fx.store_with_grace(Duration::ZERO).await;
        let (s, _) = scan(&store).await;
        for n in ["a.log", "b.log", "c.log"] {
            std::fs::remove_file(fx.root.join(n)).unwrap();
            rustix::fs::mknodat(
                rustix::fs::CWD,
                fx.root.join(n),
                FileType::Fifo,
                rustix::fs::Mode::from_raw_mode(0o600),
                0,
            )
            .unwrap();
        }
        let plan = [
            (seg(&s, "a.log"), Action::Compress),
            (seg(&s, "b.log"), Action::Archive),
            (seg(&s, "c.log"), Action::Drop),
        ];
        // A blocking open would hang here: the deadline turns that into a failure.
        let results = tokio::time::timeout(Duration::from_secs(60), apply(&store, &plan))
            .await
            .expect("the actions did not block on a FIFO");
        for r in results {
            let e = r.unwrap_err().to_string();
            assert!(e.contains("not a regular file"), "{e}");
        }
        for n in ["a.log", "b.log", "c.log"] {
            assert!(
                std::fs::symlink_metadata(fx.root.join(n))
                    .unwrap()
                    .file_type()
                    .is_fifo()
            );
        }
    }

    #[tokio::test]
    async fn another_file_of_the_same_size_and_mtime_swapped_in_is_refused() {
        let fx = Fx::new();
        fx.write_at("a.log", b"the original", 1_700_000_000);
        let store = fx.store_with_grace(Duration::ZERO).await;
        let (s, _) = scan(&store).await;
        let other = fx.write_at("other", b"THE IMPOSTOR", 1_700_000_000);
        std::fs::rename(other, fx.root.join("a.log")).unwrap();
        let e = apply1(&store, seg(&s, "a.log"), Action::Drop)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("another file than the scan saw"), "{e}");
        assert_eq!(std::fs::read(fx.root.join("a.log")).unwrap(), b"THE IMPOSTOR");
    }

    #[tokio::test]
    async fn a_file_another_process_holds_open_for_writing_is_skipped_by_every_action() {
        let fx = Fx::new();
        for n in ["a.log", "b.log", "c.log"] {
            fx.write(n, b"a daemon's log\n");
        }
        // A quiet writer: it keeps the files open with O_APPEND and writes nothing.
        let mut writer = {
            let mut c = std::process::Command::new("sleep");
            c.arg("600");
            let f = |n: &str| File::options().append(true).open(fx.root.join(n)).unwrap();
            c.stdout(f("a.log")).stderr(f("b.log"));
            let keep_c = f("c.log");
            // The third file on another descriptor of the same child.
            unsafe {
                use std::os::fd::AsRawFd;
                use std::os::unix::process::CommandExt;
                let fd = keep_c.as_raw_fd();
                c.pre_exec(move || {
                    if libc::dup2(fd, 9) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let child = c.spawn().unwrap();
            drop(keep_c);
            child
        };
        let store = fx.store().await;
        let (s, _) = scan(&store).await;
        let plan = [
            (seg(&s, "a.log"), Action::Compress),
            (seg(&s, "b.log"), Action::Archive),
            (seg(&s, "c.log"), Action::Drop),
        ];
        for r in apply(&store, &plan).await {
            let e = r.unwrap_err();
            assert!(matches!(e, StoreError::Busy { .. }), "{e}");
            assert!(e.to_string().contains("open for writing by another process"), "{e}");
        }
        for n in ["a.log", "b.log", "c.log"] {
            assert_eq!(std::fs::read(fx.root.join(n)).unwrap(), b"a daemon's log\n");
        }
        assert!(!fx.exists("a.log.zst") && fx.archived("b.log").is_none() && fx.trash_files().is_empty());
        writer.kill().unwrap();
        writer.wait().unwrap();
        // Once the writer is gone, the same plan goes through.
        for r in apply(&store, &plan).await {
            r.unwrap();
        }
        assert!(fx.exists("a.log.zst") && fx.archived("b.log").is_some() && !fx.exists("c.log"));
    }

    #[tokio::test]
    async fn the_engines_own_directories_and_config_file_under_the_root_are_never_segments() {
        let fx = Fx::new();
        fx.write("a.log", b"data");
        fx.write("state/state.sqlite3", b"the holds");
        fx.write("state/compiled/x.cwasm", b"code");
        fx.write("plugins/p.wasm", b"a plugin");
        fx.write("retention.toml", b"plugin_dir = ...");
        fx.write("inner/b.log", b"another dataset's");
        let mut cfg = fx.cfg();
        cfg.excluded = ["state", "plugins", "retention.toml", "inner"]
            .iter()
            .map(|p| crate::config::Excluded {
                path: fx.root.join(p),
                what: p.to_string(),
            })
            .collect();
        let store = DirectoryStore::open(cfg).await.unwrap();
        let (s, _) = scan(&store).await;
        assert_eq!(names(&s), ["a.log"]);
        assert!(s.skipped.is_empty(), "{:?}", s.skipped);
    }

    #[tokio::test]
    async fn a_file_that_two_datasets_sharing_a_root_both_match_belongs_to_neither() {
        let fx = Fx::new();
        fx.write("a.log", b"matched by both");
        fx.write("b.txt", b"only ours");
        let mut cfg = fx.cfg();
        cfg.siblings = vec![crate::config::Sibling {
            dataset: "other".into(),
            include: globs(&["**/*.log"]),
            exclude: globs(&[]),
        }];
        let store = DirectoryStore::open(cfg).await.unwrap();
        let (s, _) = scan(&store).await;
        assert_eq!(names(&s), ["b.txt"]);
        let r = skipped(&s, "a.log");
        assert!(r.contains("\"other\"") && r.contains("belongs to one dataset"), "{r}");
    }

    #[tokio::test]
    async fn a_zst_declaring_a_gigabyte_beside_a_small_hot_file_is_a_conflict_without_decompressing_it() {
        let fx = Fx::new();
        fx.write("a.log", b"a small hot file");
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
        enc.set_pledged_src_size(Some(1 << 30)).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..1024 {
            enc.write_all(&zeros).unwrap();
        }
        fx.write("a.log.zst", &enc.finish().unwrap());
        let (s, _) = scan(&fx.store().await).await;
        assert!(s.segments.is_empty());
        let r = skipped(&s, "a.log");
        assert!(r.contains("differs"), "{r}");
    }

    #[tokio::test]
    async fn a_dataset_is_bound_to_the_state_database_of_its_first_real_pass() {
        let fx = Fx::new();
        let store = fx.store().await;
        store.bind_state("logs", "db-1", false).await.unwrap();
        assert!(!fx.exists(TRASH_DIR), "a dry run writes nothing");
        store.bind_state("logs", "db-1", true).await.unwrap();
        store.bind_state("logs", "db-1", true).await.unwrap();
        store.bind_state("logs", "db-1", false).await.unwrap();
        let e = store.bind_state("logs", "db-2", true).await.unwrap_err();
        assert!(matches!(e, StoreError::OtherState { .. }), "{e}");
        let e = e.to_string();
        assert!(
            e.contains("db-1") && e.contains("db-2") && e.contains("no pass runs"),
            "{e}"
        );
        // Another dataset sharing the root has its own record.
        store.bind_state("other", "db-2", true).await.unwrap();
        assert!(fx.trash_files().is_empty(), "the markers are not trash entries");
        assert!(store.trash().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_drop_is_trashed_at_the_passes_now() {
        let fx = Fx::new();
        fx.write("a.log", b"x");
        let store = fx.store().await;
        let (s, _) = scan(&store).await;
        let work = [Work {
            segment: seg(&s, "a.log"),
            action: Action::Drop,
        }];
        let now_ms = 1_900_000_000_000;
        store.apply(&work, 1, now_ms, &|_| {}).await.pop().unwrap().unwrap();
        let t = store.trash().await.unwrap();
        assert_eq!(t[0].trashed_at_ms, now_ms);
        assert_eq!(t[0].expires_at_ms, now_ms + DAY.as_millis() as i64);
    }

    #[tokio::test]
    async fn an_archive_inside_the_root_is_not_part_of_the_dataset() {
        let fx = Fx::new();
        fx.write("a.log", b"x");
        fx.write("archive/old.log", b"archived");
        let mut cfg = fx.cfg();
        cfg.archive_url = Some(url::Url::from_directory_path(fx.root.join("archive")).unwrap());
        let (scan, _) = scan(&DirectoryStore::open(cfg).await.unwrap()).await;
        assert_eq!(names(&scan), ["a.log", "old.log"]);
        assert_eq!(seg(&scan, "old.log").tier, Tier::Archived);
    }

    #[tokio::test]
    async fn opening_a_store_checks_the_root_and_names_an_unreachable_archive() {
        let fx = Fx::new();
        let mut cfg = fx.cfg();
        cfg.archive_url = Some(url::Url::parse("file:///nonexistent/retention/archive").unwrap());
        let e = DirectoryStore::open(cfg).await.err().unwrap().to_string();
        assert!(e.contains("file:///nonexistent/retention/archive"), "{e}");
        let mut cfg = fx.cfg();
        cfg.root = fx.root.join("missing");
        let e = DirectoryStore::open(cfg).await.err().unwrap().to_string();
        assert!(e.contains("missing"), "{e}");
        assert!(fx.store().await.describe().contains("archive file://"));
    }

    // --- actions ------------------------------------------------------------------------------------------------

    #[tokio::test]
    async fn a_compressed_file_replaces_the_hot_one_after_the_pass() {
        use std::os::unix::fs::PermissionsExt;
        let fx = Fx::new();
        let content = b"a log line that repeats\n".repeat(500);
        let p = fx.write_at("app/a.log", &content, 1_700_000_000);
        std::fs::set_permissions(&p, Permissions::from_mode(0o640)).unwrap();
        let store = fx.store().await;
        let (scan1, _) = scan(&store).await;
        let applied = apply1(&store, seg(&scan1, "app/a.log"), Action::Compress)
            .await
            .unwrap();
        assert!(!fx.exists("app/a.log"));
        let z = std::fs::read(fx.root.join("app/a.log.zst")).unwrap();
        assert_eq!(unzst(&z), content);
        assert_eq!(
            applied,
            Applied {
                bytes_before: content.len() as u64,
                bytes_after: z.len() as u64,
                trashed: false,
            }
        );
        let md = std::fs::metadata(fx.root.join("app/a.log.zst")).unwrap();
        assert_eq!(md.mode() & 0o777, 0o640, "permissions are kept");
        let (scan2, _) = scan(&store).await;
        let s = seg(&scan2, "app/a.log");
        assert_eq!(s.tier, Tier::Compressed);
        assert_eq!(
            s.start_ms, 1_700_000_000_000,
            "compressing does not make a file look new"
        );
        assert_eq!(
            std::fs::read_dir(fx.root.join("app")).unwrap().count(),
            1,
            "no temporaries left"
        );
    }

    #[tokio::test]
    async fn a_compressed_file_is_a_standard_zstd_frame_with_size_and_checksum() {
        let fx = Fx::new();
        fx.write("a.log", &b"x".repeat(10_000));
        let store = fx.store().await;
        let (s, _) = scan(&store).await;
        apply1(&store, seg(&s, "a.log"), Action::Compress).await.unwrap();
        let z = std::fs::read(fx.root.join("a.log.zst")).unwrap();
        // Frame header descriptor: bit 2 = content checksum; content size is present (single segment or size flag).
        assert_eq!(&z[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
        assert_ne!(z[4] & 0b100, 0, "content checksum flag");
        assert_eq!(zstd::zstd_safe::get_frame_content_size(&z).ok(), Some(Some(10_000)));
    }

    #[tokio::test]
    async fn a_file_larger_than_memory_buffers_is_compressed_as_a_stream() {
        let fx = Fx::new();
        let content: Vec<u8> = (0..(WHOLE_FILE + 300_000))
            .map(|i| (i % 253) as u8 ^ (i / 4096) as u8)
            .collect();
        fx.write("big.log", &content);
        let store = fx.store().await;
        let (s, _) = scan(&store).await;
        apply1(&store, seg(&s, "big.log"), Action::Compress).await.unwrap();
        let z = std::fs::read(fx.root.join("big.log.zst")).unwrap();
        assert_eq!(unzst(&z), content);
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(&z).ok(),
            Some(Some(content.len() as u64))
        );
        assert!(!fx.exists("big.log"));
    }

    #[tokio::test]
    async fn a_file_changed_since_the_scan_is_refused_and_left_as_it_was() {
        let fx = Fx::new();
        fx.write_at("a.log", b"first line\n", 1_700_000_000);
        fx.write_at("b.log", b"first line\n", 1_700_000_000);
        fx.write_at("c.log", b"first line\n", 1_700_000_000);
        let store = fx.store().await;
        let (s, _) = scan(&store).await;
        for n in ["a.log", "b.log", "c.log"] {
            let mut f = File::options().append(true).open(fx.root.join(n)).unwrap();
            f.write_all(b"second line\n").unwrap();
        }
        let results = apply(
            &store,
            &[
                (seg(&s, "a.log"), Action::Compress),
                (seg(&s, "b.log"), Action::Archive),
                (seg(&s, "c.log"), Action::Drop),
            ],
        )
        .await;
        for r in results {
            let e = r.unwrap_err().to_string();
            assert!(e.contains("changed since the scan"), "{e}");
        }
        for n in ["a.log", "b.log", "c.log"] {
            assert_eq!(std::fs::read(fx.root.join(n)).unwrap(), b"first line\nsecond line\n");
        }
        assert_eq!(
            std::fs::read_dir(&fx.root).unwrap().count(),
            3,
            "nothing else was created"
        );
        assert_eq!(std::fs::read_dir(&fx.archive).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn an_existing_zst_is_never_overwritten() {
        let fx = Fx::new();
        fx.write("a.log", b"hot");
        let store = fx.store().await;
        let (s, _) = scan(&store).await;
        fx.write("a.log.zst", &zst(b"someone else's"));
        let e = apply1(&store, seg(&s, "a.log"), Action::Compress)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("already exists"), "{e}");
        assert_eq!(
            unzst(&std::fs::read(fx.root.join("a.log.zst")).unwrap()),
            b"someone else's"
        );
        assert_eq!(std::fs::read(fx.root.join("a.log")).unwrap(), b"hot");
        assert!(!fx.exists(".a.log.zst.retention-tmp"));
    }

    #[tokio::test]
    async fn an_archived_file_is_stored_as_it_was_and_removed_locally() {
        let fx = Fx::new();
        fx.write("app/a.log", b"plain");
        let z = zst(b"compressed");
        fx.write("app/b.log.zst", &z);
        let store = fx.store().await;
        let (s, _) = scan(&store).await;
        let results = apply(
            &store,
            &[
                (seg(&s, "app/a.log"), Action::Archive),
                (seg(&s, "app/b.log"), Action::Archive),
            ],
        )
        .await;
        for r in &results {
            assert_eq!(r.as_ref().unwrap().bytes_after, 0);
        }
        assert_eq!(fx.archived("app/a.log").as_deref(), Some(&b"plain"[..]));
        assert_eq!(fx.archived("app/b.log.zst"), Some(z.clone()));
        assert!(!fx.exists("app/a.log") && !fx.exists("app/b.log.zst"));
        let (s2, _) = scan(&store).await;
        assert_eq!(names(&s2), ["app/a.log", "app/b.log"]);
        let b = seg(&s2, "app/b.log");
        assert_eq!((b.tier, b.bytes), (Tier::Archived, z.len() as u64));
    }

    #[tokio::test]
    async fn archiving_without_an_archive_url_is_refused() {
        let fx = Fx::new();
        fx.write("a.log", b"x");
        let mut cfg = fx.cfg();
        cfg.archive_url = None;
        let store = DirectoryStore::open(cfg).await.unwrap();
        let (s, _) = scan(&store).await;
        let e = apply1(&store, seg(&s, "a.log"), Action::Archive)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("no archive_url"), "{e}");
        assert!(fx.exists("a.log"));
    }

    #[tokio::test]
    async fn actions_the_tier_does_not_allow_are_refused() {
        let fx = Fx::new();
        fx.write("a.log.zst", &zst(b"x"));
        let store = fx.store().await;
        let (s, _) = scan(&store).await;
        let e = apply1(&store, seg(&s, "a.log"), Action::Compress)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot compress segment a.log from tier compressed"), "{e}");
        let mut forged = seg(&s, "a.log").clone();
        forged.locator = "../../etc/passwd".into();
        let e = apply1(&store, &forged, Action::Drop).await.unwrap_err().to_string();
        assert!(e.contains("locator"), "{e}");
        assert!(fx.exists("a.log.zst"));
    }

    #[tokio::test]
    async fn a_drop_without_grace_removes_the_segment_in_any_tier_at_once() {
        let fx = Fx::new();
        fx.write("a.log", b"hot");
        fx.write("b.log.zst", &zst(b"compressed"));
        write_file(&fx.archive.join("c.log"), b"archived");
        let store = fx.store_with_grace(Duration::ZERO).await;
        let (s, _) = scan(&store).await;
        let results = apply(
            &store,
            &[
                (seg(&s, "a.log"), Action::Drop),
                (seg(&s, "b.log"), Action::Drop),
                (seg(&s, "c.log"), Action::Drop),
            ],
        )
        .await;
        assert_eq!(
            results.iter().map(|r| r.as_ref().unwrap().bytes_before).sum::<u64>(),
            s.segments.iter().map(|s| s.bytes).sum::<u64>()
        );
        assert!(results.iter().all(|r| !r.as_ref().unwrap().trashed));
        let (s2, _) = scan(&store).await;
        assert!(s2.segments.is_empty());
        assert_eq!(std::fs::read_dir(&fx.root).unwrap().count(), 0, "no trash either");
        assert_eq!(std::fs::read_dir(&fx.archive).unwrap().count(), 0);
    }

    // --- trash --------------------------------------------------------------------------------------------------

    #[tokio::test]
    async fn a_drop_with_grace_moves_files_into_the_trash_and_archived_objects_into_the_archives_trash() {
        let fx = Fx::new();
        fx.write_at("d/a.log", b"hot", 1_000_000);
        fx.write("d/b.log.zst", &zst(b"compressed"));
        write_file(&fx.archive.join("c.log"), b"archived");
        let store = fx.store().await;
        let (s, _) = scan(&store).await;
        let before = chrono::Utc::now().timestamp_millis();
        let results = apply(
            &store,
            &[
                (seg(&s, "d/a.log"), Action::Drop),
                (seg(&s, "d/b.log"), Action::Drop),
                (seg(&s, "c.log"), Action::Drop),
            ],
        )
        .await;
        let after = chrono::Utc::now().timestamp_millis();
        let trashed: Vec<bool> = results.iter().map(|r| r.as_ref().unwrap().trashed).collect();
        assert_eq!(trashed, [true, true, true]);
        assert!(scan(&store).await.0.segments.is_empty());
        assert!(!fx.exists("d/a.log") && !fx.exists("d/b.log.zst"));
        assert!(!fx.archive.join("c.log").exists());

        // The layout records the trash time, the expiry, the relative path and the tier (.zst); the archive's trash
        // the same under the archive's prefix, with the object's bytes as they were.
        let files = fx.trash_files();
        assert_eq!(files.len(), 3, "{files:?}");
        let (batch, _) = files[0].split_once('/').unwrap();
        let (t, e) = parse_batch_name(batch).unwrap();
        assert!(before <= t && t <= after, "{t} not within {before}..{after}");
        assert_eq!(e - t, 86_400_000);
        assert_eq!(
            files,
            [
                format!("{batch}/d/a.log"),
                format!("{batch}/d/b.log.zst"),
                format!("archive:{batch}/c.log")
            ]
        );
        assert_eq!(
            std::fs::read(fx.archive.join(TRASH_DIR).join(batch).join("c.log")).unwrap(),
            b"archived"
        );
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(&fx.root.join(TRASH_DIR)), 0o700);

        let entries = store.trash().await.unwrap();
        let zsize = zst(b"compressed").len() as u64;
        assert_eq!(
            entries,
            [
                TrashEntry {
                    name: "c.log".into(),
                    tier: Tier::Archived,
                    bytes: 8,
                    trashed_at_ms: t,
                    expires_at_ms: e,
                    locator: format!("{TRASH_DIR}/{batch}/c.log"),
                    labels: Vec::new(),
                },
                TrashEntry {
                    name: "d/a.log".into(),
                    tier: Tier::Hot,
                    bytes: 3,
                    trashed_at_ms: t,
                    expires_at_ms: e,
                    locator: format!("{TRASH_DIR}/{batch}/d/a.log"),
                    labels: Vec::new(),
                },
                TrashEntry {
                    name: "d/b.log".into(),
                    tier: Tier::Compressed,
                    bytes: zsize,
                    trashed_at_ms: t,
                    expires_at_ms: e,
                    locator: format!("{TRASH_DIR}/{batch}/d/b.log.zst"),
                    labels: Vec::new(),
                },
            ]
        );
    }

    #[tokio::test]
    async fn the_trash_is_never_scanned_whatever_the_globs_say() {
        let fx = Fx::new();
        fx.write("a.log", b"a");
        fx.write(".retention-trash/1-2/b.log", b"trashed");
        fx.write(".retention-trash/1-2/.b.log.zst.retention-tmp", b"not ours to remove");
        fx.write("sub/.retention-trash/c.log", b"only the root's trash is special");
        let mut cfg = fx.cfg();
        cfg.include = globs(&["**", ".retention-trash/**", "**/*.log"]);
        let store = DirectoryStore::open(cfg).await.unwrap();
        let (s, _) = scan(&store).await;
        assert_eq!(names(&s), ["a.log", "sub/.retention-trash/c.log"]);
        assert!(s.skipped.is_empty(), "{:?}", s.skipped);
        assert!(store.recover(true).await.unwrap().is_empty());
        assert!(fx.exists(".retention-trash/1-2/.b.log.zst.retention-tmp"));
        assert_eq!(store.trash().await.unwrap()[0].name, "b.log");
    }

    #[tokio::test]
    async fn a_purge_deletes_only_the_entries_whose_grace_has_ended() {
        let fx = Fx::new();
        fx.write("a.log", b"first");
        let store = fx.store().await;
        let (s, _) = scan(&store).await;
        apply1(&store, seg(&s, "a.log"), Action::Drop).await.unwrap();
        let hour = fx.store_with_grace(Duration::from_secs(3600)).await;
        fx.write("b.log", b"second");
        let (s, _) = scan(&hour).await;
        apply1(&hour, seg(&s, "b.log"), Action::Drop).await.unwrap();
        let entries = store.trash().await.unwrap();
        let expiry = |name: &str| entries.iter().find(|e| e.name == name).unwrap().expires_at_ms;
        // Each entry keeps the grace it was dropped with.
        for e in &entries {
            let grace = if e.name == "a.log" { 86_400_000 } else { 3_600_000 };
            assert_eq!(e.expires_at_ms - e.trashed_at_ms, grace, "{e:?}");
        }

        assert!(purge_expired(&store, expiry("b.log") - 1).await.unwrap().is_empty());
        assert_eq!(store.trash().await.unwrap().len(), 2);
        let purged = purge_expired(&store, expiry("b.log")).await.unwrap();
        assert_eq!(purged.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["b.log"]);
        assert_eq!(store.trash().await.unwrap().len(), 1);
        let purged = purge_expired(&store, expiry("a.log")).await.unwrap();
        assert_eq!(purged.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["a.log"]);
        assert!(fx.trash_files().is_empty());
        assert_eq!(
            std::fs::read_dir(fx.root.join(TRASH_DIR)).unwrap().count(),
            0,
            "expired batches are removed once empty"
        );
    }

    #[tokio::test]
    async fn a_restore_puts_the_segment_back_exactly_in_its_tier() {
        let fx = Fx::new();
        let hot = fx.write_at("d/e/a.log", b"hot bytes", 1_234_567);
        std::fs::set_permissions(&hot, Permissions::from_mode(0o640)).unwrap();
        let z = zst(b"compressed bytes");
        fx.write_at("b.log.zst", &z, 7_654_321);
        let store = fx.store().await;
        let (s, _) = scan(&store).await;
        apply(
            &store,
            &[(seg(&s, "d/e/a.log"), Action::Drop), (seg(&s, "b.log"), Action::Drop)],
        )
        .await;
        // Directories emptied by the drop may be gone by the time of the restore.
        std::fs::remove_dir(fx.root.join("d/e")).unwrap();
        std::fs::remove_dir(fx.root.join("d")).unwrap();

        let e = store.restore("d/e/a.log").await.unwrap();
        assert_eq!((e.name.as_str(), e.tier, e.bytes), ("d/e/a.log", Tier::Hot, 9));
        let e = store.restore("b.log").await.unwrap();
        assert_eq!((e.name.as_str(), e.tier), ("b.log", Tier::Compressed));
        assert_eq!(std::fs::read(fx.root.join("d/e/a.log")).unwrap(), b"hot bytes");
        assert_eq!(std::fs::read(fx.root.join("b.log.zst")).unwrap(), z);
        let md = std::fs::metadata(fx.root.join("d/e/a.log")).unwrap();
        assert_eq!((md.mtime(), md.mode() & 0o777), (1_234_567, 0o640));
        assert_eq!(std::fs::metadata(fx.root.join("b.log.zst")).unwrap().mtime(), 7_654_321);
        let (s, _) = scan(&store).await;
        assert_eq!(names(&s), ["b.log", "d/e/a.log"]);
        assert_eq!(seg(&s, "b.log").tier, Tier::Compressed);
        assert!(store.trash().await.unwrap().is_empty());
        assert!(fx.trash_files().is_empty());
    }

    #[tokio::test]
    async fn a_restore_is_refused_while_the_segment_exists_in_any_tier() {
        let fx = Fx::new();
        for name in ["a.log", "b.log", "c.log"] {
            fx.write(name, name.as_bytes());
        }
        let store = fx.store().await;
        let (s, _) = scan(&store).await;
        let plan: Vec<_> = s.segments.iter().map(|s| (s, Action::Drop)).collect();
        apply(&store, &plan).await;
        fx.write("a.log", b"a new a.log");
        fx.write("b.log.zst", &zst(b"b.log"));
        write_file(&fx.archive.join("c.log"), b"c.log");
        for (name, taken) in [
            ("a.log", fx.root.join("a.log").display().to_string()),
            ("b.log", fx.root.join("b.log.zst").display().to_string()),
            ("c.log", "/c.log".to_string()),
        ] {
            let e = store.restore(name).await.unwrap_err();
            assert!(matches!(e, StoreError::Taken { .. }), "{e}");
            let msg = e.to_string();
            assert!(msg.contains(name) && msg.contains(&taken), "{msg}");
        }
        assert_eq!(
            store.trash().await.unwrap().len(),
            3,
            "refused restores leave the trash as it was"
        );
        assert_eq!(std::fs::read(fx.root.join("a.log")).unwrap(), b"a new a.log");
        let e = store.restore("nothing.log").await.unwrap_err();
        assert!(
            matches!(e, StoreError::NotInTrash { .. }) && e.to_string().contains("nothing.log"),
            "{e}"
        );
        let e = store.restore("../a.log").await.unwrap_err();
        assert!(e.to_string().contains("not a segment name"), "{e}");
    }

    #[tokio::test]
    async fn a_name_dropped_twice_restores_the_most_recently_trashed_copy() {
        let fx = Fx::new();
        let store = fx.store().await;
        for content in [&b"first"[..], b"second"] {
            fx.write("a.log", content);
            let (s, _) = scan(&store).await;
            apply1(&store, seg(&s, "a.log"), Action::Drop).await.unwrap();
        }
        let entries = store.trash().await.unwrap();
        assert_eq!(entries.len(), 2);
        assert!(entries[0].trashed_at_ms < entries[1].trashed_at_ms, "{entries:?}");
        assert_eq!(store.restore("a.log").await.unwrap(), entries[1]);
        assert_eq!(std::fs::read(fx.root.join("a.log")).unwrap(), b"second");
        assert_eq!(store.trash().await.unwrap(), [entries[0].clone()]);
    }

    #[tokio::test]
    async fn an_archived_segment_comes_back_from_the_archives_trash_exactly_and_only_while_its_key_is_free() {
        let fx = Fx::new();
        write_file(&fx.archive.join("d/c.log.zst"), &zst(b"archived bytes"));
        let store = fx.store().await;
        let (s, _) = scan(&store).await;
        assert_eq!(seg(&s, "d/c.log").tier, Tier::Archived);
        assert!(apply1(&store, seg(&s, "d/c.log"), Action::Drop).await.unwrap().trashed);
        assert!(
            scan(&store).await.0.segments.is_empty(),
            "a trashed object is no segment"
        );

        // Its key taken by a new object: refused, and the trash keeps it.
        write_file(&fx.archive.join("d/c.log.zst"), b"another object");
        let e = store.restore("d/c.log").await.unwrap_err();
        assert!(matches!(e, StoreError::Taken { .. }), "{e}");
        assert_eq!(store.trash().await.unwrap().len(), 1);
        std::fs::remove_file(fx.archive.join("d/c.log.zst")).unwrap();

        let e = store.restore("d/c.log").await.unwrap();
        assert_eq!((e.name.as_str(), e.tier), ("d/c.log", Tier::Archived));
        assert_eq!(
            std::fs::read(fx.archive.join("d/c.log.zst")).unwrap(),
            zst(b"archived bytes")
        );
        let (s, _) = scan(&store).await;
        assert_eq!(names(&s), ["d/c.log"]);
        assert!(store.trash().await.unwrap().is_empty());
        assert!(fx.trash_files().is_empty(), "{:?}", fx.trash_files());
    }

    #[tokio::test]
    async fn a_restore_takes_the_latest_drop_whether_it_was_archived_or_local() {
        let fx = Fx::new();
        write_file(&fx.archive.join("a.log"), b"archived first");
        let store = fx.store().await;
        let (s, _) = scan(&store).await;
        apply1(&store, seg(&s, "a.log"), Action::Drop).await.unwrap();
        fx.write("a.log", b"hot later");
        let (s, _) = scan(&store).await;
        apply1(&store, seg(&s, "a.log"), Action::Drop).await.unwrap();
        let entries = store.trash().await.unwrap();
        let tiers: Vec<Tier> = entries.iter().map(|e| e.tier).collect();
        assert_eq!(tiers, [Tier::Archived, Tier::Hot]);
        assert_eq!(store.restore("a.log").await.unwrap(), entries[1]);
        assert_eq!(std::fs::read(fx.root.join("a.log")).unwrap(), b"hot later");
        std::fs::remove_file(fx.root.join("a.log")).unwrap();
        assert_eq!(store.restore("a.log").await.unwrap(), entries[0]);
        assert_eq!(std::fs::read(fx.archive.join("a.log")).unwrap(), b"archived first");
    }

    #[tokio::test]
    async fn a_purge_deletes_exactly_the_objects_of_the_archives_trash_it_is_given() {
        let fx = Fx::new();
        write_file(&fx.archive.join("x/a.log"), b"a");
        write_file(&fx.archive.join("x/b.log"), b"b");
        let store = fx.store().await;
        let (s, _) = scan(&store).await;
        let plan: Vec<_> = s.segments.iter().map(|s| (s, Action::Drop)).collect();
        assert!(apply(&store, &plan).await.iter().all(|r| r.as_ref().unwrap().trashed));
        let entries = store.trash().await.unwrap();
        assert!(store.purge(&[]).await.unwrap().is_empty());
        // The caller chooses (a pass: expired, not held, recorded); the rest stays.
        let purged = store.purge(&entries[..1]).await.unwrap();
        assert_eq!(
            purged.iter().map(|e| (e.name.as_str(), e.tier)).collect::<Vec<_>>(),
            [("x/a.log", Tier::Archived)]
        );
        let files = fx.trash_files();
        assert_eq!(files.len(), 1, "{files:?}");
        assert!(
            files[0].starts_with("archive:") && files[0].ends_with("/x/b.log"),
            "{files:?}"
        );
        // An entry purged already (or restored) is skipped, not an error.
        let purged = store.purge(&entries).await.unwrap();
        assert_eq!(purged, entries[1..]);
        assert!(fx.trash_files().is_empty());
        assert_eq!(
            std::fs::read_dir(fx.archive.join(TRASH_DIR)).unwrap().count(),
            0,
            "expired batches are removed once empty"
        );
    }

    #[tokio::test]
    async fn an_object_both_in_place_and_in_the_archives_trash_keeps_the_placed_copy_when_equal() {
        let fx = Fx::new();
        let batch = batch_name(1_000, 2_000);
        // An interrupted move: the same bytes in place and in the trash.
        write_file(&fx.archive.join("a.log"), b"same");
        write_file(&fx.archive.join(TRASH_DIR).join(&batch).join("a.log"), b"same");
        // A name dropped, then archived anew: two contents, both kept.
        write_file(&fx.archive.join("b.log"), b"new b");
        write_file(&fx.archive.join(TRASH_DIR).join(&batch).join("b.log"), b"old b");
        let store = fx.store().await;

        let report_only = store.recover(false).await.unwrap();
        assert_eq!(report_only.trash_copies_removed, ["a.log"]);
        assert_eq!(fx.trash_files().len(), 2, "a dry run removes nothing");
        let rec = store.recover(true).await.unwrap();
        assert_eq!(rec.trash_copies_removed, ["a.log"]);
        assert!(rec.conflicts.is_empty(), "{:?}", rec.conflicts);
        assert_eq!(fx.trash_files(), [format!("archive:{batch}/b.log")]);
        assert_eq!(std::fs::read(fx.archive.join("a.log")).unwrap(), b"same");
        let (s, _) = scan(&store).await;
        assert_eq!(names(&s), ["a.log", "b.log"]);
        assert!(store.recover(true).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn datasets_sharing_a_root_list_purge_and_restore_only_their_own_trash() {
        let fx = Fx::new();
        fx.write("a.log", b"log");
        fx.write("a.json", b"json");
        let mut logs = fx.cfg();
        logs.include = globs(&["*.log"]);
        let logs = DirectoryStore::open(logs).await.unwrap();
        let all = fx.store().await;
        let (s, _) = scan(&all).await;
        let plan: Vec<_> = s.segments.iter().map(|s| (s, Action::Drop)).collect();
        apply(&all, &plan).await;
        let names = |t: Vec<TrashEntry>| t.into_iter().map(|e| e.name).collect::<Vec<_>>();
        assert_eq!(names(logs.trash().await.unwrap()), ["a.log"]);
        assert!(logs.restore("a.json").await.is_err());
        assert_eq!(names(purge_expired(&logs, i64::MAX).await.unwrap()), ["a.log"]);
        assert_eq!(names(all.trash().await.unwrap()), ["a.json"]);
    }

    // --- recover ------------------------------------------------------------------------------------------------

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn compressing_more_than_two_groups_leaves_every_file_compressed_once() {
        let fx = Fx::new();
        let n = 2 * COMPRESS_GROUP + 3;
        for i in 0..n {
            fx.write(
                &format!("d{}/f{i:05}.log", i % 3),
                format!("file {i}\n").repeat(4).as_bytes(),
            );
        }
        let store = fx.store().await;
        let (scan, _) = scan(&store).await;
        assert_eq!(scan.segments.len(), n);
        let plan: Vec<(&Segment, Action)> = scan.segments.iter().map(|s| (s, Action::Compress)).collect();
        let results = apply(&store, &plan).await;
        assert_eq!(results.len(), n);
        for (r, s) in results.iter().zip(&scan.segments) {
            let a = r.as_ref().unwrap_or_else(|e| panic!("{}: {e}", s.name));
            assert_eq!(a.bytes_before, s.bytes);
            assert!(!fx.exists(&s.name), "{} still hot", s.name);
            let z = std::fs::read(fx.root.join(format!("{}.zst", s.name))).unwrap();
            let i: usize = s.name[s.name.len() - 9..s.name.len() - 4].parse().unwrap();
            assert_eq!(
                zstd::decode_all(&z[..]).unwrap(),
                format!("file {i}\n").repeat(4).as_bytes()
            );
        }
    }

    #[tokio::test]
    async fn recover_removes_temporaries_and_staging_leftovers_only_when_repairing() {
        let fx = Fx::new();
        fx.write("a.log", b"x");
        let store = fx.store().await;
        let tmp = fx.temp(&store, "d/a.log.zst", b"partial");
        write_file(&fx.archive.join("d/b.log#1"), b"partial upload");
        let dry = store.recover(false).await.unwrap();
        let mut removed = dry.temp_removed.clone();
        removed.sort();
        assert_eq!(removed.len(), 2);
        assert_eq!(removed[0], tmp);
        assert!(
            removed[1].starts_with("file://") && removed[1].ends_with("/d/b.log#1"),
            "{}",
            removed[1]
        );
        assert!(fx.exists(&tmp) && fx.archive.join("d/b.log#1").exists());
        let done = store.recover(true).await.unwrap();
        assert_eq!(done.temp_removed.len(), 2);
        assert!(!fx.exists(&tmp) && !fx.archive.join("d/b.log#1").exists());
        assert!(fx.exists("a.log"));
        assert!(store.recover(true).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn recover_leaves_the_temporaries_of_other_datasets_alone() {
        let fx = Fx::new();
        let mut cfg = fx.cfg();
        cfg.include = globs(&["*.log"]);
        let store = DirectoryStore::open(cfg).await.unwrap();
        let ours = fx.temp(&store, "a.log.zst", b"ours");
        let theirs = fx.temp(&store, "b.json.zst", b"another dataset's, maybe in flight");
        write_file(&fx.archive.join("c.json#1"), b"another dataset's upload");
        let rec = store.recover(true).await.unwrap();
        assert_eq!(rec.temp_removed, [ours]);
        assert!(fx.exists(&theirs) && fx.archive.join("c.json#1").exists());
    }

    #[tokio::test]
    async fn a_file_named_like_a_temporary_but_not_written_by_the_store_is_left_alone_and_reported() {
        let fx = Fx::new();
        let store = fx.store().await;
        // One of ours, so that the key exists; then look-alikes: the old untagged name, a wrong tag, a user's file.
        let ours = fx.temp(&store, "d/a.log.zst", b"partial");
        let untagged = fx.write("d/.b.log.zst.retention-tmp", b"a complete file of the user's");
        let forged = fx.write("d/.c.log.zst.0123456789abcdef.retention-tmp", b"another one");
        let rec = store.recover(true).await.unwrap();
        assert_eq!(rec.temp_removed, std::slice::from_ref(&ours));
        assert!(!fx.exists(&ours));
        assert_eq!(std::fs::read(&untagged).unwrap(), b"a complete file of the user's");
        assert_eq!(std::fs::read(&forged).unwrap(), b"another one");
        let mut left: Vec<&str> = rec.left_alone.iter().map(|l| l.name.as_str()).collect();
        left.sort();
        assert_eq!(
            left,
            [
                "d/.b.log.zst.retention-tmp",
                "d/.c.log.zst.0123456789abcdef.retention-tmp"
            ]
        );
        assert!(rec.left_alone[0].reason.contains("left alone"), "{:?}", rec.left_alone);
        let (s, _) = scan(&store).await;
        assert!(s.segments.is_empty(), "look-alikes are never segments either");
    }

    #[tokio::test]
    async fn archiving_is_supported_only_with_an_archive_destination() {
        let fx = Fx::new();
        assert!(fx.store().await.supports(Action::Archive));
        let mut cfg = fx.cfg();
        cfg.archive_url = None;
        let store = DirectoryStore::open(cfg).await.unwrap();
        assert!(!store.supports(Action::Archive));
        assert!(store.supports(Action::Compress) && store.supports(Action::Drop));
    }

    #[tokio::test]
    async fn a_duplicate_with_equal_copies_is_scanned_once_and_resolved_to_the_later_tier() {
        let fx = Fx::new();
        let content = b"same content\n".repeat(100);
        fx.write("a.log", &content);
        fx.write("a.log.zst", &zst(&content));
        let store = fx.store().await;
        let (s, _) = scan(&store).await;
        assert_eq!(names(&s), ["a.log"]);
        assert_eq!(seg(&s, "a.log").tier, Tier::Compressed);
        let dry = store.recover(false).await.unwrap();
        assert_eq!(
            dry.duplicates_resolved,
            [("a.log".to_string(), Tier::Compressed, Tier::Hot)]
        );
        assert!(fx.exists("a.log"), "a dry run touches nothing");
        let done = store.recover(true).await.unwrap();
        assert_eq!(done.duplicates_resolved, dry.duplicates_resolved);
        assert!(!fx.exists("a.log") && fx.exists("a.log.zst"));
    }

    #[tokio::test]
    async fn a_duplicate_with_different_copies_is_a_conflict_left_alone() {
        let fx = Fx::new();
        fx.write("a.log", b"grew after it was compressed");
        fx.write("a.log.zst", &zst(b"grew after"));
        let store = fx.store().await;
        let (s, _) = scan(&store).await;
        assert!(s.segments.is_empty());
        let r = skipped(&s, "a.log");
        assert!(
            r.contains("conflicting") && r.contains("hot copy a.log differs from the compressed copy a.log.zst"),
            "{r}"
        );
        let rec = store.recover(true).await.unwrap();
        assert_eq!(rec.conflicts.len(), 1);
        assert!(rec.duplicates_resolved.is_empty());
        assert!(fx.exists("a.log") && fx.exists("a.log.zst"));
    }

    #[tokio::test]
    async fn a_truncated_zst_beside_its_hot_file_is_a_conflict_not_a_copy() {
        let fx = Fx::new();
        let content: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        fx.write("a.log", &content);
        let z = zst(&content);
        fx.write("a.log.zst", &z[..z.len() - 10]);
        let store = fx.store().await;
        let rec = store.recover(true).await.unwrap();
        assert!(
            rec.conflicts[0].reason.contains("incomplete or corrupt"),
            "{:?}",
            rec.conflicts
        );
        assert!(fx.exists("a.log") && fx.exists("a.log.zst"));
    }

    #[tokio::test]
    async fn a_local_copy_equal_to_its_archived_copy_is_removed_by_recover() {
        let fx = Fx::new();
        // Same form (hot and plain object; .zst and .zst object) and cross form (hot and .zst object).
        fx.write("a.log", b"plain");
        write_file(&fx.archive.join("a.log"), b"plain");
        let zb = zst(b"compressed");
        fx.write("b.log.zst", &zb);
        write_file(&fx.archive.join("b.log.zst"), &zb);
        fx.write("c.log", b"crossed");
        write_file(&fx.archive.join("c.log.zst"), &zst(b"crossed"));
        let store = fx.store().await;
        let (s, _) = scan(&store).await;
        assert_eq!(names(&s), ["a.log", "b.log", "c.log"]);
        assert!(s.segments.iter().all(|s| s.tier == Tier::Archived));
        let rec = store.recover(true).await.unwrap();
        let mut resolved = rec.duplicates_resolved.clone();
        resolved.sort();
        assert_eq!(
            resolved,
            [
                ("a.log".to_string(), Tier::Archived, Tier::Hot),
                ("b.log".to_string(), Tier::Archived, Tier::Compressed),
                ("c.log".to_string(), Tier::Archived, Tier::Hot),
            ]
        );
        assert_eq!(std::fs::read_dir(&fx.root).unwrap().count(), 0);
        assert_eq!(std::fs::read_dir(&fx.archive).unwrap().count(), 3);
    }

    #[tokio::test]
    async fn a_local_copy_differing_from_its_archived_copy_is_a_conflict() {
        let fx = Fx::new();
        fx.write("a.log", b"today's a.log");
        write_file(&fx.archive.join("a.log"), b"last year's a.log");
        write_file(&fx.archive.join("b.log"), b"archived plain");
        write_file(&fx.archive.join("b.log.zst"), &zst(b"archived plain"));
        let store = fx.store().await;
        let (s, _) = scan(&store).await;
        assert!(s.segments.is_empty(), "{:?}", names(&s));
        assert!(skipped(&s, "a.log").contains("differs from the archived copy"));
        assert!(skipped(&s, "b.log").contains("archived twice"));
        let rec = store.recover(true).await.unwrap();
        assert_eq!(rec.conflicts.len(), 2);
        assert!(fx.exists("a.log"));
        assert_eq!(std::fs::read_dir(&fx.archive).unwrap().count(), 3);
    }

    // --- crash safety -------------------------------------------------------------------------------------------

    /// A tree exercising every action: `c/` is compressed, `a/` (hot) and `z/` (compressed) archived, `d/` (hot),
    /// `e/` (compressed) and the archived `x/` dropped. Returns each segment's original content.
    fn crash_tree(root: &Path, archive: &Path) -> HashMap<String, Vec<u8>> {
        let mut originals = HashMap::new();
        for i in 0..4 {
            let content = format!("line of file {i}\n").repeat(100 + i * 50).into_bytes();
            for dir in ["c", "a", "d"] {
                let name = format!("{dir}/{i}.log");
                write_file(&root.join(&name), &content);
                originals.insert(name, content.clone());
            }
            for dir in ["z", "e"] {
                let name = format!("{dir}/{i}.log");
                write_file(&root.join(format!("{name}.zst")), &zst(&content));
                originals.insert(name, content.clone());
            }
            let name = format!("x/{i}.log");
            write_file(&archive.join(&name), &content);
            originals.insert(name, content);
        }
        // One file large enough to be compressed as a stream.
        let big: Vec<u8> = (0..WHOLE_FILE + 100_000).map(|i| (i % 241) as u8).collect();
        write_file(&root.join("c/big.log"), &big);
        originals.insert("c/big.log".into(), big);
        originals
    }

    fn plan_action(name: &str) -> Action {
        match &name[..1] {
            "c" => Action::Compress,
            "a" | "z" => Action::Archive,
            _ => Action::Drop,
        }
    }

    /// Scans and applies the plan of [`crash_tree`] to the segments it still concerns (as a plugin would decide).
    async fn run_crash_plan(store: &DirectoryStore) -> Vec<Result<Applied, StoreError>> {
        let (s, _) = scan(store).await;
        let plan: Vec<(&Segment, Action)> = s
            .segments
            .iter()
            .map(|s| (s, plan_action(&s.name)))
            .filter(|(s, a)| a.allowed_from(s.tier) && a.tier_after(s.tier) != Some(s.tier))
            .collect();
        apply(store, &plan).await
    }

    /// A copy of a segment: name, place (`hot`, `compressed`, `archived` or `trash`) and content (decompressed).
    type VisibleCopy = (String, &'static str, Vec<u8>);

    /// Every copy, visible or in the trash: `(name, place, content)`, content decompressed. Panics on a partial copy.
    fn visible_copies(root: &Path, archive: &Path) -> (Vec<VisibleCopy>, Vec<PathBuf>) {
        let mut copies = Vec::new();
        let mut temps = Vec::new();
        for (base, archived) in [(root, false), (archive, true)] {
            let mut stack = vec![base.to_path_buf()];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).unwrap() {
                    let p = e.unwrap().path();
                    if p.is_dir() {
                        stack.push(p);
                        continue;
                    }
                    let file_name = p.file_name().unwrap().to_str().unwrap();
                    let staging = archived
                        && file_name
                            .rsplit_once('#')
                            .is_some_and(|(_, d)| d.bytes().all(|b| b.is_ascii_digit()));
                    if temp_parts(file_name).is_some() || staging {
                        temps.push(p);
                        continue;
                    }
                    let mut rel = p.strip_prefix(base).unwrap().to_str().unwrap().to_string();
                    if p.parent() == Some(&base.join(TRASH_DIR)) {
                        // The engine area's own files (the temporaries' key): no copies of anything.
                        continue;
                    }
                    // `.retention-trash/<batch>/<rel>`
                    let trashed = rel.starts_with(&format!("{TRASH_DIR}/"));
                    if trashed {
                        rel = rel.splitn(3, '/').nth(2).unwrap().to_string();
                    }
                    let raw = std::fs::read(&p).unwrap();
                    let content = if rel.ends_with(ZST) {
                        zstd::decode_all(&raw[..])
                            .unwrap_or_else(|e| panic!("visible {} is not a complete zstd file: {e}", p.display()))
                    } else {
                        raw
                    };
                    let place = match (archived, trashed, rel.ends_with(ZST)) {
                        (_, true, _) => "trash",
                        (true, false, _) => "archived",
                        (false, false, true) => "compressed",
                        (false, false, false) => "hot",
                    };
                    copies.push((logical(&rel).to_string(), place, content));
                }
            }
        }
        (copies, temps)
    }

    /// The invariant: every visible name (and every trash entry) holds the complete original content, and every
    /// segment that was not dropped is visible somewhere; a dropped one too (in its place or in a trash) unless
    /// `drops_may_be_gone` (no grace, or purged). With `settled`, also: no temporaries and exactly one copy of each.
    fn check_invariant(
        root: &Path,
        archive: &Path,
        originals: &HashMap<String, Vec<u8>>,
        settled: bool,
        drops_may_be_gone: bool,
        context: &str,
    ) {
        let (copies, temps) = visible_copies(root, archive);
        let mut count: HashMap<&str, usize> = HashMap::new();
        for (name, tier, content) in &copies {
            let original = originals
                .get(name)
                .unwrap_or_else(|| panic!("{context}: unexpected visible {name}"));
            assert!(
                content == original,
                "{context}: the {tier} copy of {name} is not the original content"
            );
            *count.entry(name).or_default() += 1;
        }
        for name in originals.keys() {
            let n = count.get(name.as_str()).copied().unwrap_or(0);
            if plan_action(name) != Action::Drop || !drops_may_be_gone {
                assert!(n >= 1, "{context}: {name} is visible nowhere");
            }
            if settled {
                assert!(n <= 1, "{context}: {name} has {n} copies after recovery");
            }
        }
        if settled {
            assert!(
                temps.is_empty(),
                "{context}: temporaries left after recovery: {temps:?}"
            );
        }
    }

    /// Every crash point with the default grace, but the drop points, which only a drop without grace (deleting at
    /// once) reaches.
    fn crash_cases() -> impl Iterator<Item = (&'static str, Duration)> {
        CRASH_POINTS.iter().map(|p| {
            let grace = if p.starts_with("drop:") { Duration::ZERO } else { DAY };
            (*p, grace)
        })
    }

    /// Restores every trashed segment; one result each.
    async fn restore_all(store: &DirectoryStore) -> Vec<Result<TrashEntry, StoreError>> {
        let mut out = Vec::new();
        for e in store.trash().await.unwrap() {
            out.push(store.restore(&e.name).await);
        }
        out
    }

    #[tokio::test]
    async fn every_injected_failure_leaves_each_file_whole_in_one_visible_place_after_recovery() {
        for (point, grace) in crash_cases().filter(|(p, _)| !p.starts_with("recover:")) {
            let context = &format!("{point} (grace {grace:?})");
            let fx = Fx::new();
            let originals = crash_tree(&fx.root, &fx.archive);
            let store = fx.store_with_grace(grace).await;
            let purging = point.starts_with("purge:");
            if purging || point.starts_with("restore:") {
                // Purges and restores work on what a pass put in the trash.
                let applied = run_crash_plan(&store).await;
                assert!(applied.iter().all(|r| r.is_ok()), "{context}: {applied:?}");
            }
            let failed = {
                let _fail = crate::crashpoint::fail_under(&fx.root, point);
                if purging {
                    vec![purge_expired(&store, i64::MAX).await.map(|_| ())]
                } else if point.starts_with("restore:") {
                    restore_all(&store).await.into_iter().map(|r| r.map(|_| ())).collect()
                } else {
                    run_crash_plan(&store)
                        .await
                        .into_iter()
                        .map(|r| r.map(|_| ()))
                        .collect()
                }
            };
            assert!(
                failed.iter().any(|r| r.is_err()),
                "{context}: the injected failure was never reached"
            );
            let gone = grace.is_zero() || purging;
            check_invariant(&fx.root, &fx.archive, &originals, false, gone, context);
            store.recover(true).await.unwrap();
            check_invariant(&fx.root, &fx.archive, &originals, true, gone, context);
            // The failed steps can be retried to completion.
            if purging {
                purge_expired(&store, i64::MAX).await.unwrap();
                assert!(fx.trash_files().is_empty(), "{context}: {:?}", fx.trash_files());
            } else if point.starts_with("restore:") {
                let retried = restore_all(&store).await;
                assert!(
                    retried.iter().all(|r| r.is_ok()),
                    "{context}: retry failed: {retried:?}"
                );
                assert!(fx.trash_files().is_empty(), "{context}: {:?}", fx.trash_files());
            } else {
                let retried = run_crash_plan(&store).await;
                assert!(
                    retried.iter().all(|r| r.is_ok()),
                    "{context}: retry failed: {retried:?}"
                );
            }
            check_invariant(&fx.root, &fx.archive, &originals, true, gone, context);
        }
    }

    #[tokio::test]
    async fn failed_recover_steps_leave_each_file_whole() {
        for point in ["recover:temp-removed", "recover:duplicate-removed"] {
            let fx = Fx::new();
            let originals = crash_tree(&fx.root, &fx.archive);
            let store = fx.store().await;
            fx.temp(&store, "c/0.log.zst", b"partial");
            fx.write("c/1.log.zst", &zst(&originals["c/1.log"]));
            {
                let _fail = crate::crashpoint::fail_under(&fx.root, point);
                store.recover(true).await.unwrap_err();
            }
            check_invariant(&fx.root, &fx.archive, &originals, false, false, point);
            store.recover(true).await.unwrap();
            check_invariant(&fx.root, &fx.archive, &originals, true, false, point);
        }
    }

    /// Environment variable through which [`every_crash_point_keeps_each_file_whole_in_a_visible_place`] hands a
    /// child process of this test binary its work: `apply|recover|purge|restore <root> <archive> <grace secs>`.
    const CHILD_ENV: &str = "RETENTION_TEST_CRASH_CHILD";

    /// Not a test of its own: the child process of the crash test, which dies at `RETENTION_CRASH_AT`. Without the
    /// environment variable it has nothing to do.
    #[tokio::test]
    async fn a_crash_child_applies_the_plan_its_parent_hands_it() {
        let Ok(args) = std::env::var(CHILD_ENV) else { return };
        let args: Vec<&str> = args.split('\t').collect();
        let [mode, root, archive, grace] = args[..] else {
            panic!("{CHILD_ENV}: {args:?}")
        };
        let mut cfg = Fx::new().cfg();
        cfg.root = root.into();
        cfg.archive_url = Some(url::Url::from_directory_path(archive).unwrap());
        cfg.trash_grace = Duration::from_secs(grace.parse().unwrap());
        let store = DirectoryStore::open(cfg).await.unwrap();
        match mode {
            "apply" => drop(run_crash_plan(&store).await),
            "purge" => drop(purge_expired(&store, i64::MAX).await),
            "restore" => drop(restore_all(&store).await),
            _ => drop(store.recover(true).await),
        }
    }

    fn run_child(mode: &str, fx: &Fx, grace: Duration, point: &str) -> std::process::ExitStatus {
        let (root, archive) = (fx.root.display(), fx.archive.display());
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "store::dir::tests::a_crash_child_applies_the_plan_its_parent_hands_it",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, format!("{mode}\t{root}\t{archive}\t{}", grace.as_secs()))
            .env("RETENTION_CRASH_AT", point)
            .env_remove("RETENTION_FAIL_AT")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
    }

    #[tokio::test]
    async fn every_crash_point_keeps_each_file_whole_in_a_visible_place() {
        use std::os::unix::process::ExitStatusExt;
        for (point, grace) in crash_cases() {
            let context = &format!("{point} (grace {grace:?})");
            let fx = Fx::new();
            let originals = crash_tree(&fx.root, &fx.archive);
            let store = fx.store_with_grace(grace).await;
            let mode = match point.split(':').next().unwrap() {
                "recover" => {
                    // Leave a temporary and a duplicate behind first, then crash while recovering them.
                    let status = run_child("apply", &fx, grace, "compress:renamed");
                    assert_eq!(status.signal(), Some(6), "compress:renamed: {status}");
                    "recover"
                }
                m @ ("purge" | "restore") => {
                    // Purges and restores work on what a pass put in the trash.
                    let applied = run_crash_plan(&store).await;
                    assert!(applied.iter().all(|r| r.is_ok()), "{context}: {applied:?}");
                    m
                }
                _ => "apply",
            };
            let status = run_child(mode, &fx, grace, point);
            assert_eq!(
                status.signal(),
                Some(6),
                "{context}: the crash point was never reached ({status})"
            );
            let gone = grace.is_zero() || mode == "purge";
            check_invariant(&fx.root, &fx.archive, &originals, false, gone, context);
            store.recover(true).await.unwrap();
            check_invariant(&fx.root, &fx.archive, &originals, true, gone, context);
            let (s, _) = scan(&store).await;
            assert!(s.skipped.is_empty(), "{context}: {:?}", s.skipped);
        }
    }
}
