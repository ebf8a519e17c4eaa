//! Stores: where a dataset's segments live and how actions on them are carried out, crash-safely.
//!
//! One trait, [`Store`], one file per store. A store repairs what an interrupted pass left behind and lists segments
//! ([`Store::scan`], one walk for both), and applies a group of planned actions ([`Store::apply`]). The pass never touches
//! data itself; it only asks the store.
//!
//! The contract every store keeps: if the process dies at any instant, every segment's content still exists, complete,
//! in at least one visible place, no visible name holds a partial copy, and the next `recover` removes temporary
//! leftovers and resolves any duplicate to exactly one copy.
//!
//! A store may keep dropped segments in a *trash* for a grace period ([`Store::trash`], [`Store::restore`],
//! [`Store::purge`]): a trashed segment counts as one recoverable place until it is purged.

pub mod beneath;
pub mod compare;
pub mod dir;
pub mod durable;
pub mod object;
pub mod writers;

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::segment::{Action, Segment, Symbols, Tier};

/// The trash area of a root, and of an archive's prefix: hidden, so that tools listing the dataset skip it too. In a
/// root it is also the engine's area (the temporaries' key, the state markers).
pub const TRASH_DIR: &str = ".retention-trash";

/// A dataset's store, as configured: exactly one kind per dataset. Each kind owns its section (serde struct,
/// defaults, validation) beside its code.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    Directory(dir::DirectoryConfig),
}

impl StoreConfig {
    /// A short description: `directory /var/log/app`.
    pub fn describe(&self) -> String {
        match self {
            StoreConfig::Directory(d) => format!("directory {}", d.root.display()),
        }
    }

    /// The names of the labels the store's segments can have (a hold's label selector must name one).
    pub fn label_keys(&self) -> Vec<String> {
        match self {
            StoreConfig::Directory(d) => d.label_keys(),
        }
    }
}

/// A problem in a store's config section: the field's path, the value and what was wrong with it.
#[derive(Debug, Clone)]
pub struct FieldError {
    pub field: String,
    pub value: String,
    pub problem: String,
}

/// A store failure, naming the segment or location concerned.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("archive {url}: {source}")]
    Archive { url: String, source: object_store::Error },
    #[error("{0}")]
    Refused(String),
    /// The store cannot do this at all (e.g. a store without a trash asked to restore).
    #[error("{0}")]
    Unsupported(String),
    /// `restore` found no trashed segment of that name.
    #[error("no segment {name:?} in the trash of {store}")]
    NotInTrash { name: String, store: String },
    /// `restore` found the segment's place taken: `path` exists now.
    #[error("cannot restore {name:?}: {path} exists; move it away first")]
    Taken { name: String, path: String },
    /// Another process holds the segment's file open for writing: the action is skipped (not failed), and a later
    /// pass tries again.
    #[error("{path} is open for writing by another process{}; left as it is (a later pass tries again)",
        .pid.map_or(String::new(), |p| format!(" (pid {p})")))]
    Busy { path: String, pid: Option<u32> },
    /// The dataset was last passed over with another state database than this one: a lost database re-created empty
    /// (without its legal holds and audit trail) or a different `state_dir`. No pass runs.
    #[error(
        "dataset {dataset} was last passed over with state database {recorded}, but this state database is {current}: \
         it does not hold that one's legal holds and audit trail, so no pass runs. Restore the state database (or \
         point service.state_dir at it); if it is lost for good and no legal hold must be kept, delete {marker} to \
         manage the dataset with this one"
    )]
    OtherState {
        dataset: String,
        recorded: String,
        current: String,
        marker: String,
    },
}

impl StoreError {
    pub fn io(what: &'static str, path: impl std::fmt::Display, source: std::io::Error) -> Self {
        StoreError::Io {
            what,
            path: path.to_string(),
            source,
        }
    }
}

/// The result of a scan: segments (in no particular order; the pass sorts them) and what was skipped and why.
#[derive(Debug, Default)]
pub struct Scan {
    pub segments: Vec<Segment>,
    /// Entries that are not segments of this pass, with the reason (e.g. "no date in name"; "duplicate pending
    /// recovery").
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub name: String,
    pub reason: String,
}

/// What `recover` found (and, unless in report-only mode, did).
#[derive(Debug, Default, Clone, Serialize)]
pub struct Recovery {
    /// Temporary files of interrupted actions removed (or, report-only, that would be removed).
    pub temp_removed: Vec<String>,
    /// Duplicates resolved to one copy: `(name, kept tier, removed tier)`.
    pub duplicates_resolved: Vec<(String, Tier, Tier)>,
    /// Duplicates whose copies differ: left alone, excluded from passes until a human resolves them.
    pub conflicts: Vec<Skipped>,
    /// Files that look like leftovers (named like a temporary) but that this store cannot prove it wrote: left alone.
    pub left_alone: Vec<Skipped>,
    /// Segments found both in place and, with equal content, in the trash (an interrupted move into or out of a trash
    /// that is not one rename, e.g. an archive's): the trash's copy removed, the segment kept where it was.
    pub trash_copies_removed: Vec<String>,
}

impl Recovery {
    pub fn is_empty(&self) -> bool {
        self.temp_removed.is_empty()
            && self.duplicates_resolved.is_empty()
            && self.conflicts.is_empty()
            && self.left_alone.is_empty()
            && self.trash_copies_removed.is_empty()
    }
}

/// One planned action for a store to apply. Never `Keep`.
#[derive(Debug, Clone)]
pub struct Work<'a> {
    pub segment: &'a Segment,
    pub action: Action,
}

/// What applying one action did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Bytes the segment occupied before.
    pub bytes_before: u64,
    /// Bytes it occupies after in its new tier (0 when dropped; for an archive, 0 locally).
    pub bytes_after: u64,
    /// A drop that moved the segment into the trash (restorable until purged) rather than deleting it.
    pub trashed: bool,
}

/// A dropped segment kept in a store's trash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrashEntry {
    /// The segment's name, as scans showed it.
    pub name: String,
    /// The tier it was dropped from, and to which a restore puts it back.
    pub tier: Tier,
    /// Its size as stored (compressed size for a compressed segment).
    pub bytes: u64,
    /// When it was moved to the trash (wall clock, ms since the epoch).
    pub trashed_at_ms: i64,
    /// From when a pass purges it (ms since the epoch).
    pub expires_at_ms: i64,
    /// Where it lies, in the store's own terms (for the directory store, a path under the root or an object key):
    /// what [`Store::purge`] deletes.
    #[serde(skip)]
    pub locator: String,
    /// The labels its segment had (`(key, value)`, sorted by key), for the legal holds that cover the trash.
    #[serde(skip)]
    pub labels: Vec<(String, String)>,
}

/// Called with the number of actions finished since the last call, for progress bars.
pub type Progress<'a> = &'a (dyn Fn(u64) + Send + Sync);

/// A place where a dataset's segments live.
#[async_trait]
pub trait Store: Send + Sync {
    /// A short description for reports, e.g. `directory /var/log/app (archive file:///srv/archive)`.
    fn describe(&self) -> String;

    /// Whether the store can carry out `action` at all (e.g. archiving needs an archive destination). A plan using
    /// an unsupported action is refused whole before anything is applied.
    fn supports(&self, action: Action) -> bool {
        let _ = action;
        true
    }

    /// Checks that the dataset was last passed over with the state database `state_id` (where its legal holds and
    /// audit trail are), and with `write` records it when none is recorded yet: a pass with a state database that was
    /// lost and re-created empty would run without the holds, so [`StoreError::OtherState`] refuses it. The record
    /// lives with the data, not in the state directory. A store that keeps none accepts any.
    async fn bind_state(&self, dataset: &str, state_id: &str, write: bool) -> Result<(), StoreError> {
        let _ = (dataset, state_id, write);
        Ok(())
    }

    /// Lists the dataset's segments, after recovering from interrupted actions, from one walk of the store.
    ///
    /// Recovery finds temporary files and segments present in two tiers at once. With `repair` it removes the
    /// temporaries and resolves duplicates whose copies are identical to the copy in the later tier; without it (dry
    /// run) it only reports them. Copies that differ are reported as conflicts and left alone. The listing presents a
    /// duplicate once, in its later tier, or skips it when it conflicts. Label keys and values are interned into
    /// `symbols`.
    async fn scan(&self, repair: bool, symbols: &mut Symbols) -> Result<(Recovery, Scan), StoreError>;

    /// Only the recovery part of [`Store::scan`] (at start-up, in tests).
    async fn recover(&self, repair: bool) -> Result<Recovery, StoreError> {
        let (recovery, _) = self.scan(repair, &mut Symbols::new()).await?;
        Ok(recovery)
    }

    /// Applies a group of actions with at most `parallelism` in flight, each crash-safely. Returns one result per
    /// action, in order; a failed action leaves its segment as it was (or recoverable by `recover`). `now_ms` is the
    /// pass's now: a drop into the trash is timed by it, the clock its purge compares with.
    async fn apply(
        &self,
        work: &[Work<'_>],
        parallelism: usize,
        now_ms: i64,
        progress: Progress<'_>,
    ) -> Vec<Result<Applied, StoreError>>;

    /// The dataset's trash: dropped segments still restorable, oldest first. A store without a trash has none.
    async fn trash(&self) -> Result<Vec<TrashEntry>, StoreError> {
        Ok(Vec::new())
    }

    /// Deletes for good exactly `entries`, as [`Store::trash`] listed them (the caller chose them: expired, not under
    /// a hold, and recorded first), and returns those it deleted; one gone meanwhile (restored, or purged by another
    /// pass) is skipped. An entry is either purged whole or left as it was.
    async fn purge(&self, entries: &[TrashEntry]) -> Result<Vec<TrashEntry>, StoreError> {
        match entries.first() {
            None => Ok(Vec::new()),
            Some(e) => Err(StoreError::Unsupported(format!(
                "cannot purge {:?}: {} has no trash",
                e.name,
                self.describe()
            ))),
        }
    }

    /// Puts the trashed segment `name` back where and as it was (name, tier, bytes, modification time). With several
    /// entries of that name, restores the most recently trashed. Refuses ([`StoreError::Taken`]) when the segment
    /// exists now in any tier, and says [`StoreError::NotInTrash`] when there is nothing to restore.
    async fn restore(&self, name: &str) -> Result<TrashEntry, StoreError> {
        Err(StoreError::Unsupported(format!(
            "cannot restore {name:?}: {} has no trash",
            self.describe()
        )))
    }
}

/// Opens the store of a dataset, checking that it is reachable (root readable, archive destination listable).
pub async fn open(config: &StoreConfig) -> Result<Arc<dyn Store>, StoreError> {
    match config {
        StoreConfig::Directory(cfg) => Ok(Arc::new(dir::DirectoryStore::open(cfg.clone()).await?)),
    }
}
