//! The directory store: a dataset is a directory tree and each file matching its globs is a segment.
//!
//! # Names and tiers
//!
//! A segment's name is its path relative to the root, `/`-separated, without a `.zst` suffix: `a/b.log` is the name of
//! both the hot file `a/b.log` and its compressed copy `a/b.log.zst`. Globs and the labels regex see that name. A
//! segment is *hot* (the plain file), *compressed* (`<file>.zst` beside it, zstd with a content checksum, mtime and
//! permissions copied from the source as the zstd CLI does, so compressing a file does not make it look new) or
//! *archived* (an object in the archive destination, see [`crate::store::object`]). An archived segment's time is its
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

mod archive;
mod compress;
pub mod config;
mod drop;
mod names;
mod recover;
mod scan;
mod trash;
mod walk;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use globset::GlobSet;
use object_store::path::Path as ObjectPath;
use regex::Regex;
use rustix::io::Errno;

use super::beneath::{self, FileId, Root};
use super::durable::io_err;
use super::object::Archive;
use super::{
    Applied, ApplyOptions, Capabilities, ChangeToken, Recovery, Scan, Store, StoreError, TRASH_DIR, Trash, TrashEntry,
    Work,
};
use crate::segment::{Action, Segment, Symbols, Tier};
pub use config::{DirectoryConfig, Excluded, RawDirectory, Sibling, TimeSource};
use names::TempKey;

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

/// Logical name of an archived object or a local file: its relative path without `.zst`.
fn logical(rel: &str) -> &str {
    match rel.strip_suffix(ZST) {
        Some(n) if !n.is_empty() && !n.ends_with('/') => n,
        _ => rel,
    }
}

/// What the scan saw of a local segment: its change token is `[mtime_ns, inode]`.
fn seen_of(seg: &Segment) -> FileId {
    FileId {
        dev: 0,
        ino: seg.token.0[1],
        size: seg.bytes,
        mtime_ns: seg.token.0[0] as i64,
    }
}

/// The change token of a local file.
fn token_of(id: &FileId) -> ChangeToken {
    ChangeToken([id.mtime_ns as u64, id.ino])
}

/// Where a segment's bytes are.
#[derive(Debug, Clone)]
enum Located {
    /// A path relative to the root.
    Local(String),
    Archived(ObjectPath),
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

    /// Where the segment of `w` is, after checking that this store can carry out its action from its tier.
    fn check(&self, w: &Work<'_>) -> Result<Located, StoreError> {
        let seg = w.segment;
        if let Err(why) = self.capabilities().check(seg.tier, w.action) {
            return Err(StoreError::Unsupported {
                segment: seg.name.clone(),
                action: w.action,
                tier: seg.tier,
                why: why.to_string(),
            });
        }
        self.locate(seg)
    }

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

#[async_trait]
impl Store for DirectoryStore {
    fn describe(&self) -> String {
        match &self.archive {
            Some(a) => format!("directory {} (archive {})", self.root().display(), a.url()),
            None => format!("directory {}", self.root().display()),
        }
    }

    fn capabilities(&self) -> Capabilities {
        if self.archive.is_some() {
            return Capabilities::all();
        }
        let why = "the dataset has no archive destination: no archive_url in its [dataset.directory]";
        Capabilities::all()
            .without(Tier::Hot, Action::Archive, why)
            .without(Tier::Compressed, Action::Archive, why)
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

    async fn apply(&self, work: &[Work<'_>], opts: &ApplyOptions<'_>) -> Vec<Option<Result<Applied, StoreError>>> {
        let parallelism = opts.parallelism.max(1);
        let progress = opts.progress;
        let mut results: Vec<Option<Result<Applied, StoreError>>> = (0..work.len()).map(|_| None).collect();
        let (mut compress, mut archive, mut drop) = (Vec::new(), Vec::new(), Vec::new());
        for (i, w) in work.iter().enumerate() {
            match self.check(w) {
                Err(e) => results[i] = Some(Err(e)),
                Ok(Located::Local(p)) if w.action == Action::Compress => compress.push((i, p)),
                Ok(Located::Local(p)) if w.action == Action::Archive => archive.push((i, p)),
                Ok(loc) => drop.push((i, loc)),
            }
        }
        let done = results.iter().filter(|r| r.is_some()).count() as u64;
        if done > 0 {
            progress(done);
        }
        // The groups, in this order; a shutdown lets the group under way finish and starts no other.
        let cancelled = || opts.cancel.is_some_and(|c| c.is_cancelled());
        for group in compress.chunks(COMPRESS_GROUP) {
            if cancelled() {
                return results;
            }
            self.compress_group(work, group, parallelism, &mut results).await;
            progress(group.len() as u64);
        }
        for group in archive.chunks(ARCHIVE_GROUP) {
            if cancelled() {
                return results;
            }
            self.archive_group(work, group, parallelism, &mut results).await;
            progress(group.len() as u64);
        }
        for group in drop.chunks(DROP_GROUP) {
            if cancelled() {
                return results;
            }
            self.drop_group(work, group, parallelism, opts.now_ms, &mut results)
                .await;
            progress(group.len() as u64);
        }
        results
    }

    fn trash(&self) -> Option<&dyn Trash> {
        Some(self)
    }
}

#[async_trait]
impl Trash for DirectoryStore {
    async fn list(&self) -> Result<Vec<TrashEntry>, StoreError> {
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
        let taken = |place: String| StoreError::Taken {
            doing: "restore",
            name: name.to_string(),
            place,
        };
        for rel in [name.to_string(), format!("{name}{ZST}")] {
            let r = rel.clone();
            if self.blocking(move |inner| inner.taken(&r)).await? {
                return Err(taken(self.inner.root.display(&rel).display().to_string()));
            }
            if let Some(a) = &self.archive {
                let location = a.key(&rel);
                if a.head(&location).await?.is_some() {
                    return Err(taken(a.display(&location)));
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
