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
//! # Temporaries
//!
//! Our only temporary files are `.<basename>.retention-tmp` in the directory of the file they will become, so that
//! the final rename is atomic. Scans never report them; [`Store::recover`] removes them, along with the staging files
//! `<path>#<digits>` of a `file://` archive.
//!
//! # Crash safety
//!
//! Each action keeps this invariant at every instant: the file's content exists, complete, in at least one visible
//! place, and no visible name holds a partial copy. A group of actions runs in phases so that durability costs one
//! `syncfs` per phase instead of two fsyncs per file:
//!
//! - compress: (1) compress every file to its temporary, in parallel; (2) `syncfs`; (3) rename each temporary to
//!   `<file>.zst` (never over an existing file); (4) `syncfs`, making the renames durable; (5) check that each source is
//!   unchanged since the scan and remove it.
//! - archive: (1) upload each file, read it back and compare sizes and SHA-256; (2) `syncfs` a `file://` destination;
//!   (3) check that each source is unchanged and remove it.
//! - drop with a grace period (`trash_grace_secs` > 0, hot and compressed files): check that each file is unchanged
//!   since the scan and rename it into the trash (below); then `syncfs`.
//! - drop without one, and drop of an archived object: remove each file or object; then `syncfs`.
//!
//! A crash between phases leaves at worst a temporary (removed by `recover`) or a segment in two tiers, which `recover`
//! resolves to the later tier after checking that both copies hold the same content. [`CRASH_POINTS`] names the
//! instants between steps where tests kill the process (see [`crate::crashpoint`]).
//!
//! # Trash
//!
//! A dropped hot or compressed file is moved, by one `rename(2)` within the root's filesystem, to
//! `<root>/.retention-trash/<trashed_at_ms>-<expires_at_ms>/<its relative path>` (with `.zst` when compressed): the
//! path records everything a purge or a restore needs (name, tier, trash time, expiry), so no database is involved, and
//! the rename keeps bytes, mtime and permissions. A rename is atomic, so at every instant the file is either in its
//! place or in the trash, never both, never neither; no step of trash, restore or purge copies anything, so there is
//! nothing for `recover` to settle but empty directories. The trash directory is created `0700` (the file's own
//! directories' permissions are not copied) and is never walked by a scan, whatever the globs say. A purge
//! ([`Store::purge`]) deletes the entries past their expiry; a restore ([`Store::restore`]) renames an entry back,
//! refusing when the segment exists again in any tier. Datasets sharing a root share its trash; each lists, purges
//! and restores only the entries its globs match.
//!
//! An archived object goes to the archive's trash, `<prefix>/.retention-trash/<batch>/<key as it was>` (see
//! [`Archive::trash_key`]). An object store cannot rename: a drop copies the object there, then deletes the original;
//! a restore copies it back, then deletes the trash's copy. Between the two steps the object exists twice with equal
//! content; `recover` settles that by removing the trash's copy, so the object stays at its key (a drop is undone, a
//! restore done) and no content is ever in neither place.

use std::collections::{HashMap, HashSet};
use std::fs::{File, FileTimes, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt;
use globset::GlobSet;
use object_store::path::Path as ObjectPath;
use regex::{CaptureLocations, Regex};
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use super::archive::{Archive, Content, Object, TrashedObject, digest_reader};
use super::{Applied, Progress, Recovery, Scan, Skipped, Store, StoreError, TrashEntry, Work};
use crate::config::{DirectoryConfig, TimeSource};
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

/// The trash area, directly under the root. Hidden, so that tools listing the dataset skip it too.
pub const TRASH_DIR: &str = ".retention-trash";

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
    root: PathBuf,
    include: GlobSet,
    exclude: GlobSet,
    labels: Option<Regex>,
    /// Named groups of `labels`: (group index, name). A label's "slot" is its index here.
    label_groups: Vec<(usize, String)>,
    time: Option<TimeLabel>,
    level: i32,
    /// The archive directory, relative to the root, when it lies inside it: not part of the dataset.
    skip_dir: Option<String>,
    /// How long a dropped local file stays in the trash; zero deletes at once.
    trash_grace: std::time::Duration,
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
    size: u64,
    mtime_ns: i64,
    /// Device, to sync each filesystem involved once.
    dev: u64,
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
            Copy::Local(f) => f.size,
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
    groups: Vec<Group>,
    temps: Vec<String>,
    skipped: Vec<Skipped>,
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

fn is_temp_name(file_name: &str) -> bool {
    file_name.starts_with('.') && file_name.ends_with(TMP_SUFFIX) && file_name.len() > TMP_SUFFIX.len() + 1
}

/// The temporary that becomes `dst`.
fn temp_for(dst: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(dst.file_name().unwrap_or_default());
    name.push(TMP_SUFFIX);
    dst.with_file_name(name)
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

fn mtime_ns(md: &std::fs::Metadata) -> i64 {
    md.mtime().saturating_mul(1_000_000_000).saturating_add(md.mtime_nsec())
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |e| StoreError::io(what, path.display(), e)
}

/// Makes everything written to the filesystems holding `dirs` durable: one `syncfs` per directory given (callers
/// pass one per filesystem). Falls back to a global `sync` where `syncfs` is missing.
pub(crate) fn sync_filesystems<'a>(dirs: impl IntoIterator<Item = &'a Path>) -> Result<(), (PathBuf, io::Error)> {
    for dir in dirs {
        let fd = rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| (dir.to_path_buf(), e.into()))?;
        match rustix::fs::syncfs(&fd) {
            Ok(()) => {}
            Err(Errno::NOSYS) => rustix::fs::sync(),
            Err(e) => return Err((dir.to_path_buf(), e.into())),
        }
    }
    Ok(())
}

/// Renames `from` to `to` unless `to` exists (atomically where the filesystem supports `RENAME_NOREPLACE`).
fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(Errno::INVAL | Errno::NOSYS | Errno::NOTSUP) => {
            if std::fs::symlink_metadata(to).is_ok() {
                return Err(io::Error::from(io::ErrorKind::AlreadyExists));
            }
            std::fs::rename(from, to)
        }
        Err(e) => Err(e.into()),
    }
}

/// Opens a file for reading without following a symlink (a file replaced by a link since the scan is refused).
fn open_no_follow(path: &Path) -> io::Result<File> {
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?;
    Ok(File::from(fd))
}

/// Refuses when a file's size or mtime differ from what the scan saw.
fn check_unchanged(path: &Path, size: u64, mtime: i64, seg_bytes: u64, seg_mtime: i64) -> Result<(), StoreError> {
    if size == seg_bytes && mtime == seg_mtime {
        return Ok(());
    }
    Err(StoreError::Refused(format!(
        "{} changed since the scan ({seg_bytes} -> {size} bytes, mtime {seg_mtime} -> {mtime} ns); left as it is, \
         it may still be written to",
        path.display()
    )))
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
        let root = cfg.root.clone();
        let md = std::fs::metadata(&root).map_err(io_err("cannot open dataset root", &root))?;
        if !md.is_dir() {
            return Err(StoreError::Refused(format!(
                "dataset root {} is not a directory",
                root.display()
            )));
        }
        std::fs::read_dir(&root).map_err(io_err("cannot read dataset root", &root))?;
        let archive = match &cfg.archive_url {
            Some(url) => Some(Archive::open(url).await?),
            None => None,
        };
        let mut skip_dir = None;
        if let Some(adir) = archive.as_ref().and_then(|a| a.local_dir()) {
            let croot = std::fs::canonicalize(&root).map_err(io_err("cannot open dataset root", &root))?;
            if croot.starts_with(adir) {
                return Err(StoreError::Refused(format!(
                    "dataset root {} lies inside its archive directory {}",
                    root.display(),
                    adir.display()
                )));
            }
            // An archive inside the dataset would otherwise be scanned as hot files.
            if let Ok(rel) = adir.strip_prefix(&croot) {
                skip_dir = Some(rel.to_str().map(str::to_string).ok_or_else(|| {
                    StoreError::Refused(format!("archive directory {} is not valid UTF-8", adir.display()))
                })?);
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
                skip_dir,
                trash_grace: cfg.trash_grace,
            }),
            archive,
        })
    }

    fn archive(&self) -> Result<&Archive, StoreError> {
        self.archive.as_ref().ok_or_else(|| {
            StoreError::Refused(format!(
                "dataset {} has no archive_url: cannot archive",
                self.inner.root.display()
            ))
        })
    }

    /// Walks the root and lists the archive, grouping names found in more than one place.
    async fn inventory(&self) -> Result<Inventory, StoreError> {
        let (mut objects, mut trashed_objects) = match &self.archive {
            Some(a) => a.list_with_trash().await?,
            None => Default::default(),
        };
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
        let walked = tokio::task::spawn_blocking(move || inner.walk(archived))
            .await
            .map_err(|e| {
                StoreError::io(
                    "cannot walk",
                    self.inner.root.display(),
                    io::Error::other(e.to_string()),
                )
            })?;
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
            groups,
            temps: walked.temps,
            skipped: walked.skipped,
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

    /// Size and hash of a copy's bytes, or with `decompress` of its decompressed content. The error is a reason for
    /// a report.
    async fn content(&self, c: &Copy, decompress: bool) -> Result<Content, String> {
        let r = match c {
            Copy::Local(f) => {
                let path = self.inner.root.join(&f.rel);
                tokio::task::spawn_blocking(move || digest_reader(open_no_follow(&path)?, decompress))
                    .await
                    .unwrap_or_else(|e| Err(io::Error::other(e.to_string())))
            }
            Copy::Archived(o) => match self
                .archive
                .as_ref()
                .expect("archived copies come from the archive")
                .digest(&o.location, decompress)
                .await
            {
                Ok(c) => Ok(c),
                Err(StoreError::Io { source, .. }) => Err(source),
                Err(e) => return Err(format!("cannot read the {}: {e}", self.copy_label(c))),
            },
        };
        r.map_err(|e| match e.kind() {
            io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => {
                format!("the {} is incomplete or corrupt ({e})", self.copy_label(c))
            }
            _ => format!("cannot read the {}: {e}", self.copy_label(c)),
        })
    }

    /// Whether two copies hold the same content: the same bytes when both are stored alike (for a `.zst`, a complete
    /// copy of a complete file), else the same content once the compressed one is decompressed.
    async fn same_content(&self, a: &Copy, b: &Copy) -> Result<bool, String> {
        if a.compressed() == b.compressed() {
            if a.size() != b.size() {
                return Ok(false);
            }
            return Ok(self.content(a, false).await? == self.content(b, false).await?);
        }
        Ok(self.content(a, a.compressed()).await? == self.content(b, b.compressed()).await?)
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

    /// The local path and (for archived segments) the object of a segment, checking its locator.
    fn locate(&self, seg: &Segment) -> Result<Located, StoreError> {
        let bad = || StoreError::Refused(format!("segment {:?} has a locator this store did not make", seg.name));
        if seg.name.is_empty() || seg.name.starts_with('/') || seg.name.split('/').any(|p| p == ".." || p == ".") {
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
                Ok(Located::Local(self.inner.root.join(&seg.locator)))
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
        group: &[(usize, PathBuf)],
        parallelism: usize,
        results: &mut [Option<Result<Applied, StoreError>>],
    ) {
        let jobs: Arc<Vec<CompressJob>> = Arc::new(
            group
                .iter()
                .map(|(i, src)| {
                    let mut dst = src.clone().into_os_string();
                    dst.push(ZST);
                    let dst = PathBuf::from(dst);
                    CompressJob {
                        tmp: temp_for(&dst),
                        src: src.clone(),
                        dst,
                        bytes: work[*i].segment.bytes,
                        modified_ns: work[*i].segment.modified_ns,
                    }
                })
                .collect(),
        );
        let mut state: Vec<Option<Result<(u64, u64), StoreError>>> = (0..jobs.len()).map(|_| None).collect();
        let root = self.inner.root.clone();

        // (1) Compress to temporaries, in parallel.
        let level = self.inner.level;
        let all = (0..jobs.len()).collect();
        for (j, r) in run_blocking(&jobs, all, parallelism, move || Compressor::new(level), Compressor::run).await {
            state[j] = Some(r);
        }
        // (2) Make the temporaries durable.
        let ok = |state: &[Option<Result<(u64, u64), StoreError>>]| -> Vec<usize> {
            (0..state.len()).filter(|&j| matches!(state[j], Some(Ok(_)))).collect()
        };
        let written = ok(&state);
        let dirs = distinct_dirs(written.iter().map(|&j| {
            let Some(Ok((dev, _))) = &state[j] else { unreachable!() };
            (*dev, &jobs[j].dst)
        }));
        if written.is_empty() {
            // Nothing to make durable (every file was refused or failed).
        } else if let Err(e) = sync_and_hit(dirs.clone(), "compress:synced", &root).await {
            for &j in &written {
                let _ = std::fs::remove_file(&jobs[j].tmp);
                state[j] = Some(Err(e.again()));
            }
        }
        // (3) Rename the temporaries into place.
        let renamed = run_blocking(
            &jobs,
            ok(&state),
            parallelism,
            || (),
            |(), job| {
                rename_no_replace(&job.tmp, &job.dst)
                    .map_err(|e| {
                        let _ = std::fs::remove_file(&job.tmp);
                        if e.kind() == io::ErrorKind::AlreadyExists {
                            StoreError::Refused(format!("{} already exists; not overwriting it", job.dst.display()))
                        } else {
                            StoreError::io("cannot rename into place", job.dst.display(), e)
                        }
                    })
                    .and_then(|()| {
                        hit_for("compress:renamed", &job.dst).map_err(io_err("cannot rename into place", &job.dst))
                    })
            },
        )
        .await;
        for (j, r) in renamed {
            if let Err(e) = r {
                state[j] = Some(Err(e));
            }
        }
        // (4) Make the renames durable before any source goes.
        let renamed = ok(&state);
        if renamed.is_empty() {
            // Nothing was renamed.
        } else if let Err(e) = sync_and_hit(dirs, "compress:dir-synced", &root).await {
            for &j in &renamed {
                // The source is still there: taking the new copy away leaves the segment as it was.
                let _ = std::fs::remove_file(&jobs[j].dst);
                state[j] = Some(Err(e.again()));
            }
        }
        // (5) Remove the sources that did not change since the scan.
        let removed = run_blocking(
            &jobs,
            ok(&state),
            parallelism,
            || (),
            |(), job| {
                let md = std::fs::symlink_metadata(&job.src).map_err(io_err("cannot check source", &job.src))?;
                if let Err(e) = check_unchanged(&job.src, md.len(), mtime_ns(&md), job.bytes, job.modified_ns) {
                    let _ = std::fs::remove_file(&job.dst);
                    return Err(e);
                }
                std::fs::remove_file(&job.src).map_err(io_err("cannot remove source", &job.src))?;
                hit_for("compress:source-removed", &job.src).map_err(io_err("cannot remove source", &job.src))
            },
        )
        .await;
        for (j, r) in removed {
            state[j] = Some(r.map(|()| match state[j] {
                Some(Ok(v)) => v,
                _ => unreachable!(),
            }));
        }
        for (j, s) in state.into_iter().enumerate() {
            let (i, _) = group[j];
            results[i] = Some(match s.expect("every job has a state") {
                Ok((_, zsize)) => Ok(Applied {
                    bytes_before: jobs[j].bytes,
                    bytes_after: zsize,
                    trashed: false,
                }),
                Err(e) => Err(e),
            });
        }
    }

    async fn archive_group(
        &self,
        work: &[Work<'_>],
        group: &[(usize, PathBuf)],
        parallelism: usize,
        results: &mut [Option<Result<Applied, StoreError>>],
    ) {
        let archive = self.archive.as_ref().expect("checked before");
        let root = &self.inner.root;
        let jobs: Vec<ArchiveJob> = group
            .iter()
            .map(|(i, src)| {
                let seg = work[*i].segment;
                ArchiveJob {
                    src: src.clone(),
                    location: archive.key(&seg.locator),
                    bytes: seg.bytes,
                    modified_ns: seg.modified_ns,
                }
            })
            .collect();
        // (1) Upload and verify.
        let mut state: Vec<Result<(), StoreError>> = futures::stream::iter(0..jobs.len())
            .map(|j| upload_one(archive, &jobs[j]))
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
        // (3) Remove the sources that did not change since the scan.
        let jobs = Arc::new(jobs);
        let uploaded: Vec<usize> = (0..jobs.len()).filter(|&j| state[j].is_ok()).collect();
        let removed = run_blocking(
            &jobs,
            uploaded,
            parallelism,
            || (),
            |(), job| {
                let md = std::fs::symlink_metadata(&job.src).map_err(io_err("cannot check source", &job.src))?;
                if let Err(e) = check_unchanged(&job.src, md.len(), mtime_ns(&md), job.bytes, job.modified_ns) {
                    return Ok(Err(e));
                }
                std::fs::remove_file(&job.src).map_err(io_err("cannot remove source", &job.src))?;
                hit_for("archive:source-removed", &job.src).map_err(io_err("cannot remove source", &job.src))?;
                Ok(Ok(()))
            },
        )
        .await;
        for (j, r) in removed {
            state[j] = match r {
                Ok(Ok(())) => Ok(()),
                Ok(Err(changed)) => {
                    let _ = archive.delete(&jobs[j].location).await;
                    Err(changed)
                }
                Err(e) => Err(e),
            };
        }
        for (j, s) in state.into_iter().enumerate() {
            results[group[j].0] = Some(s.map(|()| Applied {
                bytes_before: jobs[j].bytes,
                bytes_after: 0,
                trashed: false,
            }));
        }
    }

    async fn drop_group(
        &self,
        work: &[Work<'_>],
        group: &[(usize, Located)],
        parallelism: usize,
        results: &mut [Option<Result<Applied, StoreError>>],
    ) {
        let root = &self.inner.root;
        let mut local = Vec::new();
        let mut local_idx = Vec::new();
        let mut objects = Vec::new();
        for (k, (i, loc)) in group.iter().enumerate() {
            let seg = work[*i].segment;
            match loc {
                Located::Local(path) => {
                    local_idx.push(k);
                    local.push(LocalDrop {
                        path: path.clone(),
                        rel: seg.locator.clone(),
                        bytes: seg.bytes,
                        modified_ns: seg.modified_ns,
                    });
                }
                Located::Archived(location) => objects.push((*i, location.clone(), seg.bytes)),
            }
        }
        // One trash batch per group: the group's files and objects share their trash time and expiry. (Its directory
        // is created by the first file moved into it.)
        let batch = (!self.inner.trash_grace.is_zero()).then(|| self.inner.new_batch());
        if let Some(archive) = &self.archive {
            let batch_name = batch
                .as_ref()
                .and_then(|b| b.file_name())
                .and_then(|n| n.to_str())
                .map(str::to_string);
            let batch_name = batch_name.as_deref();
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
        let trash = Arc::new(batch.clone());
        let removed = run_blocking(
            &local,
            (0..local.len()).collect(),
            parallelism,
            move || trash.clone(),
            |trash, job| {
                let md = std::fs::symlink_metadata(&job.path).map_err(io_err("cannot check", &job.path))?;
                check_unchanged(&job.path, md.len(), mtime_ns(&md), job.bytes, job.modified_ns)?;
                let trashed = match &**trash {
                    Some(batch) => {
                        move_to_trash(job, batch)?;
                        true
                    }
                    None => {
                        std::fs::remove_file(&job.path).map_err(io_err("cannot remove", &job.path))?;
                        hit_for("drop:removed", &job.path).map_err(io_err("cannot remove", &job.path))?;
                        false
                    }
                };
                Ok((
                    md.dev(),
                    Applied {
                        bytes_before: job.bytes,
                        bytes_after: 0,
                        trashed,
                    },
                ))
            },
        )
        .await;
        let mut devs = Vec::new();
        for (j, r) in removed {
            let (i, _) = &group[local_idx[j]];
            results[*i] = Some(r.map(|(dev, applied)| {
                devs.push((dev, &local[j].path));
                applied
            }));
        }
        let mut dirs = distinct_dirs(devs.into_iter());
        let any_archived = group.iter().any(|(_, l)| matches!(l, Located::Archived(_)));
        if any_archived && let Some(adir) = self.archive.as_ref().and_then(|a| a.local_dir()) {
            dirs.push(adir.to_path_buf());
        }
        // With a grace period every drop of the group moved something into a trash; without, removed it.
        let point = if batch.is_some() { "trash:synced" } else { "drop:synced" };
        if (!dirs.is_empty() || any_archived)
            && let Err(e) = sync_and_hit(dirs, point, root).await
        {
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
    Local(PathBuf),
    Archived(ObjectPath),
}

struct CompressJob {
    src: PathBuf,
    tmp: PathBuf,
    dst: PathBuf,
    bytes: u64,
    modified_ns: i64,
}

struct ArchiveJob {
    src: PathBuf,
    location: ObjectPath,
    bytes: u64,
    modified_ns: i64,
}

/// A local file to drop.
struct LocalDrop {
    path: PathBuf,
    /// Its path relative to the root (the segment's locator), which it keeps inside the trash.
    rel: String,
    bytes: u64,
    modified_ns: i64,
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

/// Renames `job`'s file into the trash batch `batch` under its relative path: one atomic step, so the file is in
/// exactly one of the two places at every instant. A failure after the rename moves it back.
fn move_to_trash(job: &LocalDrop, batch: &Path) -> Result<(), StoreError> {
    let dst = batch.join(&job.rel);
    let parent = dst.parent().unwrap_or(batch);
    // 0700, the trash itself included: the file's own directories, which may have kept others out, do not come along.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(parent)
        .map_err(io_err("cannot create trash directory", parent))?;
    if let Err(e) = rename_no_replace(&job.path, &dst) {
        return Err(match e.raw_os_error() {
            Some(code) if code == Errno::XDEV.raw_os_error() => StoreError::Refused(format!(
                "{} is on another filesystem than the trash {}: it cannot be moved there, so it was left as it is \
                 (trash_grace_secs = 0 deletes at once)",
                job.path.display(),
                batch.parent().unwrap_or(batch).display()
            )),
            _ if e.kind() == io::ErrorKind::AlreadyExists => {
                StoreError::Refused(format!("{} already exists; not overwriting it", dst.display()))
            }
            _ => StoreError::io("cannot move to the trash", job.path.display(), e),
        });
    }
    if let Err(e) = hit_for("trash:moved", &dst) {
        // Leave the segment as it was: the action failed.
        return Err(match rename_no_replace(&dst, &job.path) {
            Ok(()) => StoreError::io("cannot move to the trash", job.path.display(), e),
            Err(back) => StoreError::Refused(format!(
                "{} was moved to the trash as {} but the move failed ({e}) and moving it back too ({back}); \
                 restore it with `retention trash restore`",
                job.path.display(),
                dst.display()
            )),
        });
    }
    Ok(())
}

/// Removes `dir` and the directories under it that hold nothing; best effort (a directory that is not empty, or
/// anything else, stays).
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

/// One file of the trash.
#[derive(Debug, Clone)]
struct TrashFile {
    entry: TrashEntry,
    /// Where it lies.
    path: PathBuf,
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

/// Phase 1 of an archive for one file: upload, then read back and compare; on failure the object is taken back.
async fn upload_one(archive: &Archive, job: &ArchiveJob) -> Result<(), StoreError> {
    let md = std::fs::symlink_metadata(&job.src).map_err(io_err("cannot read", &job.src))?;
    check_unchanged(&job.src, md.len(), mtime_ns(&md), job.bytes, job.modified_ns)?;
    let content = archive.upload(&job.src, &job.location).await?;
    let verified = async {
        hit_for("archive:uploaded", &job.src).map_err(io_err("cannot archive", &job.src))?;
        archive.verify(&job.location, &content).await?;
        hit_for("archive:verified", &job.src).map_err(io_err("cannot archive", &job.src))
    };
    if let Err(e) = verified.await {
        // We created the object (upload refuses to overwrite): take it back.
        let _ = archive.delete(&job.location).await;
        return Err(e);
    }
    Ok(())
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

/// One directory per device among `(device, file)` pairs: what [`sync_filesystems`] needs.
fn distinct_dirs<'a>(files: impl Iterator<Item = (u64, &'a PathBuf)>) -> Vec<PathBuf> {
    let mut seen = HashMap::new();
    for (dev, f) in files {
        seen.entry(dev)
            .or_insert_with(|| f.parent().unwrap_or(Path::new("/")).to_path_buf());
    }
    seen.into_values().collect()
}

/// Syncs the filesystems of `dirs` on a blocking thread, then marks `point`.
async fn sync_and_hit(dirs: Vec<PathBuf>, point: &'static str, root: &Path) -> Result<(), StoreError> {
    tokio::task::spawn_blocking(move || sync_filesystems(dirs.iter().map(PathBuf::as_path)))
        .await
        .map_err(|e| StoreError::io("cannot sync", root.display(), io::Error::other(e.to_string())))?
        .map_err(|(p, e)| StoreError::io("cannot sync", p.display(), e))?;
    hit_for(point, root).map_err(io_err("cannot sync", root))
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

    /// Phase 1 for one file: compresses `job.src` into `job.tmp`. Returns the device and the compressed size.
    fn run(&mut self, job: &CompressJob) -> Result<(u64, u64), StoreError> {
        let src = open_no_follow(&job.src).map_err(io_err("cannot open", &job.src))?;
        let before = src.metadata().map_err(io_err("cannot read", &job.src))?;
        if !before.is_file() {
            return Err(StoreError::Refused(format!(
                "{} is not a regular file",
                job.src.display()
            )));
        }
        check_unchanged(&job.src, before.len(), mtime_ns(&before), job.bytes, job.modified_ns)?;
        let mut out = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(OFlags::NOFOLLOW.bits() as i32)
            .open(&job.tmp)
            .map_err(io_err("cannot create", &job.tmp))?;
        let r = self.write(job, &src, &before, &mut out);
        if r.is_err() {
            let _ = std::fs::remove_file(&job.tmp);
        }
        r.map(|zsize| (before.dev(), zsize))
    }

    fn write(
        &mut self,
        job: &CompressJob,
        mut src: &File,
        before: &std::fs::Metadata,
        out: &mut File,
    ) -> Result<u64, StoreError> {
        let len = before.len();
        let changed = || {
            StoreError::Refused(format!(
                "{} changed while being compressed; left as it is, it may still be written to",
                job.src.display()
            ))
        };
        let wr = io_err("cannot write", &job.tmp);
        let zsize = if len <= WHOLE_FILE {
            self.input.clear();
            src.take(len + 1)
                .read_to_end(&mut self.input)
                .map_err(io_err("cannot read", &job.src))?;
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
                .map_err(io_err("cannot write", &job.tmp))?;
            hit_for("compress:tmp-partial", &job.tmp).map_err(io_err("cannot write", &job.tmp))?;
            out.write_all(&self.output[half..])
                .map_err(io_err("cannot write", &job.tmp))?;
            self.output.len() as u64
        } else {
            let mut enc = zstd::stream::write::Encoder::with_context(
                io::BufWriter::with_capacity(1 << 20, &mut *out),
                &mut self.cctx,
            );
            // The frame header then records the size, as the CLI's does; a file that grows breaks the frame.
            enc.set_pledged_src_size(Some(len))
                .map_err(io_err("cannot compress", &job.src))?;
            let mut buf = vec![0u8; 1 << 20];
            let mut total = 0u64;
            loop {
                let n = match src.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(StoreError::io("cannot read", job.src.display(), e)),
                };
                total += n as u64;
                if total > len {
                    return Err(changed());
                }
                enc.write_all(&buf[..n]).map_err(io_err("cannot write", &job.tmp))?;
                if total == n as u64 {
                    hit_for("compress:tmp-partial", &job.tmp).map_err(io_err("cannot write", &job.tmp))?;
                }
            }
            if total != len {
                return Err(changed());
            }
            let mut w = enc.finish().map_err(io_err("cannot write", &job.tmp))?;
            w.flush().map_err(io_err("cannot write", &job.tmp))?;
            drop(w);
            out.metadata().map_err(io_err("cannot write", &job.tmp))?.len()
        };
        let after = src.metadata().map_err(io_err("cannot read", &job.src))?;
        if after.len() != len || mtime_ns(&after) != mtime_ns(before) {
            return Err(changed());
        }
        // Keep the source's times and permissions, as the zstd CLI does: the segment's age must not restart.
        let mut times = FileTimes::new();
        if let (Ok(a), Ok(m)) = (before.accessed(), before.modified()) {
            times = times.set_accessed(a).set_modified(m);
        }
        out.set_times(times).map_err(io_err("cannot set times of", &job.tmp))?;
        out.set_permissions(Permissions::from_mode(before.mode() & 0o777))
            .map_err(io_err("cannot set permissions of", &job.tmp))?;
        hit_for("compress:tmp-written", &job.tmp).map_err(io_err("cannot write", &job.tmp))?;
        Ok(zsize)
    }
}

impl Inner {
    fn matches(&self, name: &str) -> bool {
        self.include.is_match(name) && !self.exclude.is_match(name)
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

    /// Walks the root on a pool of threads: each directory is read, its files stat'ed (relative to the directory)
    /// and described by the thread that read it.
    fn walk(self: Arc<Self>, archived: Arc<HashSet<String>>) -> Walked {
        let sink = Arc::new(Mutex::new(Walked::default()));
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let (inner, out) = (self.clone(), sink.clone());
        // A pool of our own: the global rayon pool may be busy compiling a plugin, and jwalk gives up on a busy pool.
        let walker = jwalk::WalkDirGeneric::<((), ())>::new(&self.root)
            .skip_hidden(false)
            .follow_links(false)
            .sort(false)
            .parallelism(jwalk::Parallelism::RayonNewPool(threads))
            .process_read_dir(move |depth, dir, _, children| {
                if depth.is_some() {
                    inner.read_dir(dir, children, &archived, &out);
                }
            });
        let mut skipped = Vec::new();
        for entry in walker {
            match entry {
                Ok(e) => {
                    if let Some(err) = e.read_children_error {
                        skipped.push(Skipped {
                            name: self.rel_display(&e.parent_path.join(&e.file_name)),
                            reason: format!("cannot read directory: {err}"),
                        });
                    }
                }
                Err(err) => skipped.push(Skipped {
                    name: err.path().map_or_else(|| "?".to_string(), |p| self.rel_display(p)),
                    reason: format!("cannot read: {err}"),
                }),
            }
        }
        let mut w = std::mem::take(&mut *sink.lock().unwrap_or_else(|e| e.into_inner()));
        w.skipped.extend(skipped);
        w
    }

    fn rel_display(&self, p: &Path) -> String {
        p.strip_prefix(&self.root).unwrap_or(p).to_string_lossy().into_owned()
    }

    /// Processes the entries of one directory: files become [`Found`]s, temporaries are noted, subdirectories stay in
    /// `children` to be walked.
    fn read_dir(
        &self,
        dir: &Path,
        children: &mut Vec<jwalk::Result<jwalk::DirEntry<((), ())>>>,
        archived: &HashSet<String>,
        sink: &Mutex<Walked>,
    ) {
        let mut out = Walked::default();
        let Some(rel_dir) = dir.strip_prefix(&self.root).ok().and_then(Path::to_str) else {
            // Directories with non-UTF-8 names are not descended into (see below); nothing else gets here.
            children.clear();
            return;
        };
        let dirfd = match rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()) {
            Ok(fd) => fd,
            Err(e) => {
                out.skipped.push(Skipped {
                    name: rel_dir.to_string(),
                    reason: format!("cannot open directory: {e}"),
                });
                children.clear();
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .skipped
                    .extend(out.skipped);
                return;
            }
        };
        let mut locs = self.labels.as_ref().map(Regex::capture_locations);
        let mut cache = None;
        let mut files = Vec::with_capacity(children.len());
        children.retain_mut(|child| {
            let Ok(e) = child else { return true };
            let Some(file_name) = e.file_name.to_str() else {
                let lossy = rel_join(rel_dir, &e.file_name.to_string_lossy());
                if e.file_type.is_dir() || self.matches(logical(&lossy)) {
                    out.skipped.push(Skipped {
                        name: lossy,
                        reason: "name is not valid UTF-8".to_string(),
                    });
                }
                e.read_children_path = None;
                return false;
            };
            if e.file_type.is_dir() {
                // The trash is never part of the dataset: not walked, so no glob can make its files segments.
                if rel_dir.is_empty() && file_name == TRASH_DIR {
                    return false;
                }
                return match &self.skip_dir {
                    Some(skip) => rel_join(rel_dir, file_name) != *skip,
                    None => true,
                };
            }
            if is_temp_name(file_name) {
                // Only the temporaries of this dataset's segments: datasets may share a root.
                let target = rel_join(rel_dir, &file_name[1..file_name.len() - TMP_SUFFIX.len()]);
                if self.matches(logical(&target)) {
                    out.temps.push(rel_join(rel_dir, file_name));
                }
                return false;
            }
            let rel = rel_join(rel_dir, file_name);
            let compressed = file_name.len() > ZST.len() && file_name.ends_with(ZST);
            let name = if compressed {
                &rel[..rel.len() - ZST.len()]
            } else {
                &rel[..]
            };
            if !self.matches(name) {
                return false;
            }
            let not_regular = || Skipped {
                name: name.to_string(),
                reason: format!("{rel} is not a regular file (symlinks and special files are never segments)"),
            };
            if !e.file_type.is_file() {
                out.skipped.push(not_regular());
                return false;
            }
            let st = match rustix::fs::statat(&dirfd, file_name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                // Removed since the directory was read.
                Err(Errno::NOENT) => return false,
                Err(err) => {
                    out.skipped.push(Skipped {
                        name: name.to_string(),
                        reason: format!("cannot stat {rel}: {err}"),
                    });
                    return false;
                }
            };
            if rustix::fs::FileType::from_raw_mode(st.st_mode as _) != rustix::fs::FileType::RegularFile {
                out.skipped.push(not_regular());
                return false;
            }
            let described = self.describe(name, &mut locs, &mut cache);
            let dup = !archived.is_empty() && archived.contains(name);
            #[allow(clippy::unnecessary_cast, reason = "the field types differ between architectures")]
            files.push(Found {
                tier: if compressed { Tier::Compressed } else { Tier::Hot },
                size: st.st_size as u64,
                mtime_ns: (st.st_mtime as i64)
                    .saturating_mul(1_000_000_000)
                    .saturating_add(st.st_mtime_nsec as i64),
                dev: st.st_dev as u64,
                described,
                dup,
                rel,
            });
            false
        });
        mark_sibling_duplicates(&mut files);
        let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
        if !files.is_empty() {
            s.files.push(files);
        }
        s.temps.append(&mut out.temps);
        s.skipped.append(&mut out.skipped);
    }
}

/// The trash: listing, purge and restore, on blocking threads.
impl Inner {
    fn trash_dir(&self) -> PathBuf {
        self.root.join(TRASH_DIR)
    }

    /// The trash batch directory for files trashed now (created by the first move into it). Its name is new: when a
    /// batch of this millisecond exists (two groups in a row), the next millisecond is taken. Should another process
    /// pick the same name at the same instant, the no-replace rename still keeps every file.
    fn new_batch(&self) -> PathBuf {
        let top = self.trash_dir();
        let grace_ms = i64::try_from(self.trash_grace.as_millis()).unwrap_or(i64::MAX);
        let mut trashed_at = chrono::Utc::now().timestamp_millis();
        loop {
            let batch = top.join(batch_name(trashed_at, trashed_at.saturating_add(grace_ms)));
            if std::fs::symlink_metadata(&batch).is_err() {
                return batch;
            }
            trashed_at += 1;
        }
    }

    /// Lists the files of this dataset's segments in the trash (datasets may share a root, and so its trash), oldest
    /// first.
    fn list_trash(&self) -> Result<Vec<TrashFile>, StoreError> {
        let top = self.trash_dir();
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&top) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(StoreError::io("cannot read the trash", top.display(), e)),
        };
        for e in entries {
            let e = e.map_err(io_err("cannot read the trash", &top))?;
            let Some((trashed_at_ms, expires_at_ms)) = e.file_name().to_str().and_then(parse_batch_name) else {
                continue;
            };
            let batch = e.path();
            if !e.file_type().map_err(io_err("cannot read the trash", &batch))?.is_dir() {
                continue;
            }
            let mut stack = vec![batch.clone()];
            while let Some(dir) = stack.pop() {
                let files = match std::fs::read_dir(&dir) {
                    Ok(files) => files,
                    // Emptied and removed meanwhile by a restore or a purge (of another dataset sharing the root).
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(StoreError::io("cannot read the trash", dir.display(), e)),
                };
                for f in files {
                    let f = f.map_err(io_err("cannot read the trash", &dir))?;
                    let path = f.path();
                    let ft = f.file_type().map_err(io_err("cannot read the trash", &path))?;
                    if ft.is_dir() {
                        stack.push(path);
                        continue;
                    }
                    let (Some(rel), Some(file_name)) = (
                        path.strip_prefix(&batch).ok().and_then(Path::to_str),
                        f.file_name().to_str().map(str::to_string),
                    ) else {
                        continue;
                    };
                    // Only regular files are ever moved here, never temporaries.
                    if !ft.is_file() || is_temp_name(&file_name) {
                        continue;
                    }
                    let compressed = file_name.len() > ZST.len() && file_name.ends_with(ZST);
                    let name = if compressed { &rel[..rel.len() - ZST.len()] } else { rel };
                    if !self.matches(name) {
                        continue;
                    }
                    let md = match f.metadata() {
                        Ok(md) => md,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(StoreError::io("cannot read the trash", path.display(), e)),
                    };
                    let Some(locator) = path.strip_prefix(&self.root).ok().and_then(Path::to_str) else {
                        continue;
                    };
                    out.push(TrashFile {
                        entry: TrashEntry {
                            name: name.to_string(),
                            tier: if compressed { Tier::Compressed } else { Tier::Hot },
                            bytes: md.len(),
                            trashed_at_ms,
                            expires_at_ms,
                            locator: locator.to_string(),
                        },
                        rel: rel.to_string(),
                        path,
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

    /// Deletes the trash files of `entries` (their locators: paths under the root, in the trash), then their batch
    /// directories if left empty, then makes it durable.
    fn purge(&self, entries: Vec<TrashEntry>) -> Result<Vec<TrashEntry>, StoreError> {
        let top = self.trash_dir();
        let mut purged = Vec::new();
        let mut batches = HashSet::new();
        for e in entries {
            let path = self.root.join(&e.locator);
            // Only ever a file in the trash: a locator is ours, but never trusted to point elsewhere.
            let in_trash = path.starts_with(&top) && !e.locator.split('/').any(|p| p == ".." || p == ".");
            if !in_trash {
                return Err(StoreError::Refused(format!(
                    "trash entry {:?} lies at {}, outside the trash: not purged",
                    e.name,
                    path.display()
                )));
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                // Restored, or purged by another pass over the same root, meanwhile.
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(StoreError::io("cannot purge", path.display(), err)),
            }
            hit_for("purge:removed", &path).map_err(io_err("cannot purge", &path))?;
            batches.insert(top.join(batch_name(e.trashed_at_ms, e.expires_at_ms)));
            purged.push(e);
        }
        for batch in &batches {
            remove_empty_dirs(batch);
        }
        if !purged.is_empty() {
            sync_filesystems([self.root.as_path()]).map_err(|(p, e)| StoreError::io("cannot sync", p.display(), e))?;
            hit_for("purge:synced", &self.root).map_err(io_err("cannot sync", &self.root))?;
        }
        Ok(purged)
    }

    /// Renames the trash file `f` back into its place, which the caller found free (the rename refuses to replace
    /// anything that appeared since), then makes it durable.
    fn restore(&self, f: &TrashFile) -> Result<(), StoreError> {
        let target = self.root.join(&f.rel);
        if let Some(parent) = target.parent() {
            // Its directories may have been removed since the drop; they are created as any new directory would be.
            std::fs::create_dir_all(parent).map_err(io_err("cannot create directory", parent))?;
        }
        if let Err(e) = rename_no_replace(&f.path, &target) {
            return Err(if e.kind() == io::ErrorKind::AlreadyExists {
                StoreError::Taken {
                    name: f.entry.name.clone(),
                    path: target.display().to_string(),
                }
            } else {
                StoreError::io("cannot restore from the trash", f.path.display(), e)
            });
        }
        if let Err(e) = hit_for("restore:moved", &target) {
            // Leave it in the trash, as it was: the restore failed.
            return Err(match rename_no_replace(&target, &f.path) {
                Ok(()) => StoreError::io("cannot restore", target.display(), e),
                Err(back) => StoreError::Refused(format!(
                    "{} was restored but the restore failed ({e}) and putting it back in the trash too ({back})",
                    target.display()
                )),
            });
        }
        sync_filesystems([self.root.as_path()]).map_err(|(p, e)| {
            StoreError::Refused(format!(
                "{} was restored, but the restore may not be durable: cannot sync {}: {e}",
                target.display(),
                p.display()
            ))
        })?;
        hit_for("restore:synced", &self.root).map_err(io_err("cannot sync", &self.root))?;
        // The batch keeps only what is still in it (best effort; a purge removes what stays).
        let top = self.trash_dir();
        let mut dir = f.path.parent();
        while let Some(d) = dir {
            if d == top || !d.starts_with(&top) || std::fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
        Ok(())
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
                let t = d.time_ms.unwrap_or(f.mtime_ns.div_euclid(1_000_000));
                scan.segments.push(Segment {
                    name,
                    tier: f.tier,
                    start_ms: t,
                    end_ms: t,
                    rows: None,
                    bytes: f.size,
                    labels,
                    locator: f.rel,
                    modified_ns: f.mtime_ns,
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
                });
            }
            Err(reason) => scan.skipped.push(Skipped { name, reason }),
        }
    }
}

impl DirectoryStore {
    /// Removes temporaries and resolves duplicates found in `inv` (with `repair`; otherwise only reports them), and
    /// marks each duplicate group with what the scan must present.
    async fn recover_inventory(&self, inv: &mut Inventory, repair: bool) -> Result<Recovery, StoreError> {
        let mut rec = Recovery::default();
        let root = &self.inner.root;
        for t in std::mem::take(&mut inv.temps) {
            if repair {
                let path = root.join(&t);
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(StoreError::io("cannot remove temporary", path.display(), e)),
                }
                hit_for("recover:temp-removed", &path).map_err(io_err("cannot remove temporary", &path))?;
            }
            rec.temp_removed.push(t);
        }
        if let Some(a) = &self.archive {
            let adir = a.local_dir().unwrap_or(Path::new(""));
            let staging = a
                .staging_leftovers()
                .await
                .map_err(|e| StoreError::io("cannot list archive directory", a.url(), e))?;
            for path in staging {
                let rel = path.strip_prefix(adir).unwrap_or(&path).to_string_lossy().into_owned();
                // Only the uploads of this dataset's segments: datasets may share an archive directory.
                let target = rel.rsplit_once('#').map_or(&rel[..], |(t, _)| t);
                // A copy into or out of the archive's trash: `.retention-trash/<batch>/<rel>`.
                let target = target
                    .strip_prefix(TRASH_DIR)
                    .and_then(|r| r.strip_prefix('/'))
                    .and_then(|r| r.split_once('/'))
                    .map_or(target, |(_, r)| r);
                if !self.inner.matches(logical(target)) {
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
        }
        let mut synced_dirs = Vec::new();
        for g in &mut inv.groups {
            let mut verdict = self.resolve(g).await;
            if let Verdict::Same = verdict {
                let (latest, earlier) = g.copies.split_last().expect("a group has copies");
                for c in earlier {
                    let Copy::Local(f) = c else {
                        unreachable!("only one archived copy, always the latest")
                    };
                    if repair {
                        let path = root.join(&f.rel);
                        // The copy must still be what was compared (a log may have been appended to meanwhile).
                        let md = std::fs::symlink_metadata(&path).map_err(io_err("cannot check", &path))?;
                        if let Err(e) = check_unchanged(&path, md.len(), mtime_ns(&md), f.size, f.mtime_ns) {
                            verdict = Verdict::Conflict(e.to_string());
                            break;
                        }
                        std::fs::remove_file(&path).map_err(io_err("cannot remove duplicate", &path))?;
                        hit_for("recover:duplicate-removed", &path)
                            .map_err(io_err("cannot remove duplicate", &path))?;
                        synced_dirs.push((f.dev, path));
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
        if !synced_dirs.is_empty() {
            let dirs = distinct_dirs(synced_dirs.iter().map(|(d, p)| (*d, p)));
            tokio::task::spawn_blocking(move || sync_filesystems(dirs.iter().map(PathBuf::as_path)))
                .await
                .map_err(|e| StoreError::io("cannot sync", root.display(), io::Error::other(e.to_string())))?
                .map_err(|(p, e)| StoreError::io("cannot sync", p.display(), e))?;
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
            let same = match (
                a.digest(&o.location, false).await,
                a.digest(&t.object.location, false).await,
            ) {
                (Ok(x), Ok(y)) => x == y,
                (Err(e), _) | (_, Err(e)) => {
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
                let root = &self.inner.root;
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
        let root = &self.inner.root;
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
        let root = &self.inner.root;
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

#[async_trait]
impl Store for DirectoryStore {
    fn describe(&self) -> String {
        match &self.archive {
            Some(a) => format!("directory {} (archive {})", self.inner.root.display(), a.url()),
            None => format!("directory {}", self.inner.root.display()),
        }
    }

    fn supports(&self, action: Action) -> bool {
        action != Action::Archive || self.archive.is_some()
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
            self.drop_group(work, group, parallelism, &mut results).await;
            progress(group.len() as u64);
        }
        results
            .into_iter()
            .map(|r| r.expect("every action has a result"))
            .collect()
    }

    async fn trash(&self) -> Result<Vec<TrashEntry>, StoreError> {
        let listing = self.blocking(|inner| inner.list_trash()).await?;
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
        if name.is_empty() || name.starts_with('/') || name.split('/').any(|p| p == ".." || p == "." || p.is_empty()) {
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
        let root = &self.inner.root;
        for rel in [name.to_string(), format!("{name}{ZST}")] {
            let path = root.join(&rel);
            if std::fs::symlink_metadata(&path).is_ok() {
                return Err(StoreError::Taken {
                    name: name.to_string(),
                    path: path.display().to_string(),
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
                let entry = f.entry.clone();
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
                "cannot use the trash",
                self.inner.root.display(),
                io::Error::other(e.to_string()),
            )
        })?
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

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
        let results = store.apply(&work, 2, &progress).await;
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
                    locator: format!("{TRASH_DIR}/{batch}/c.log")
                },
                TrashEntry {
                    name: "d/a.log".into(),
                    tier: Tier::Hot,
                    bytes: 3,
                    trashed_at_ms: t,
                    expires_at_ms: e,
                    locator: format!("{TRASH_DIR}/{batch}/d/a.log")
                },
                TrashEntry {
                    name: "d/b.log".into(),
                    tier: Tier::Compressed,
                    bytes: zsize,
                    trashed_at_ms: t,
                    expires_at_ms: e,
                    locator: format!("{TRASH_DIR}/{batch}/d/b.log.zst")
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
        fx.write("d/.a.log.zst.retention-tmp", b"partial");
        write_file(&fx.archive.join("d/b.log#1"), b"partial upload");
        let store = fx.store().await;
        let dry = store.recover(false).await.unwrap();
        let mut removed = dry.temp_removed.clone();
        removed.sort();
        assert_eq!(removed.len(), 2);
        assert_eq!(removed[0], "d/.a.log.zst.retention-tmp");
        assert!(
            removed[1].starts_with("file://") && removed[1].ends_with("/d/b.log#1"),
            "{}",
            removed[1]
        );
        assert!(fx.exists("d/.a.log.zst.retention-tmp") && fx.archive.join("d/b.log#1").exists());
        let done = store.recover(true).await.unwrap();
        assert_eq!(done.temp_removed.len(), 2);
        assert!(!fx.exists("d/.a.log.zst.retention-tmp") && !fx.archive.join("d/b.log#1").exists());
        assert!(fx.exists("a.log"));
        assert!(store.recover(true).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn recover_leaves_the_temporaries_of_other_datasets_alone() {
        let fx = Fx::new();
        fx.write(".a.log.zst.retention-tmp", b"ours");
        fx.write(".b.json.zst.retention-tmp", b"another dataset's, maybe in flight");
        write_file(&fx.archive.join("c.json#1"), b"another dataset's upload");
        let mut cfg = fx.cfg();
        cfg.include = globs(&["*.log"]);
        let rec = DirectoryStore::open(cfg).await.unwrap().recover(true).await.unwrap();
        assert_eq!(rec.temp_removed, [".a.log.zst.retention-tmp"]);
        assert!(fx.exists(".b.json.zst.retention-tmp") && fx.archive.join("c.json#1").exists());
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
                    if is_temp_name(file_name) || staging {
                        temps.push(p);
                        continue;
                    }
                    let mut rel = p.strip_prefix(base).unwrap().to_str().unwrap().to_string();
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
            fx.write("c/.0.log.zst.retention-tmp", b"partial");
            fx.write("c/1.log.zst", &zst(&originals["c/1.log"]));
            let store = fx.store().await;
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
