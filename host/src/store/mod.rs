//! Stores: where a dataset's segments live and how actions on them are carried out, crash-safely.
//!
//! One trait, [`Store`], one folder per store (`dir/`; shared protocols in `object/`, `durable.rs`, `beneath.rs`). A store repairs what an interrupted pass left behind and lists segments
//! ([`Store::scan`], one walk for both), and applies a group of planned actions ([`Store::apply`]). The pass never touches
//! data itself; it only asks the store.
//!
//! The contract every store keeps: if the process dies at any instant, every segment's content still exists, complete,
//! in at least one visible place, no visible name holds a partial copy, and the next `recover` removes temporary
//! leftovers and resolves any duplicate to exactly one copy.
//!
//! What a store can do is data ([`Capabilities`]: which actions from which tier); what the scan saw of a segment is
//! the store's own [`ChangeToken`]; errors are store-neutral ([`StoreError`]). A store may keep dropped segments in a
//! *trash* for a grace period, an optional capability of its own ([`Store::trash`], [`Trash`]). Each store owns its
//! config section and its groups of actions. The store-independent checks every store's tests run are in
//! `conformance.rs`.

pub mod beneath;
pub mod compare;
// Public (and compiled outside tests) so that the integration tests can run the checks on a store whose server only
// they start (TimescaleDB); it is test support, not part of the engine's API.
#[doc(hidden)]
pub mod conformance;
pub mod dir;
pub mod durable;
pub mod object;
pub mod postgres;
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
    Postgres(postgres::PostgresConfig),
}

impl StoreConfig {
    /// A short description: `directory /var/log/app`.
    pub fn describe(&self) -> String {
        match self {
            StoreConfig::Directory(d) => format!("directory {}", d.root.display()),
            StoreConfig::Postgres(p) => format!("postgres {} table {}.{}", p.url, p.schema, p.table),
        }
    }

    /// The names of the labels the store's segments can have (a hold's label selector must name one).
    pub fn label_keys(&self) -> Vec<String> {
        match self {
            StoreConfig::Directory(d) => d.label_keys(),
            StoreConfig::Postgres(p) => p.label_keys(),
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

/// A store's own error, kept as the source of [`StoreError::Backend`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A store failure in store-neutral terms, so that the pass, the API and the command line can map it to an outcome, an
/// exit code or an HTTP status without knowing the store; the backend's own error is the source of
/// [`StoreError::Backend`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The segment is no longer what the scan saw (its change token, size or kind differs, or it is gone): the action
    /// left it as it is.
    #[error("{what} changed since the scan ({detail}); left as it is, it may still be written to")]
    Changed { what: String, detail: String },
    /// The store cannot carry out this action from this tier (see [`Capabilities`]).
    #[error("cannot {action} segment {segment} from tier {tier}: {why}")]
    Unsupported {
        segment: String,
        action: Action,
        tier: Tier,
        why: String,
    },
    /// Another process holds the segment's data open for writing: the action is skipped (not failed), and a later
    /// pass tries again.
    #[error("{place} is open for writing by another process{}; left as it is (a later pass tries again)",
        .pid.map_or(String::new(), |p| format!(" (pid {p})")))]
    Busy { place: String, pid: Option<u32> },
    /// The place an action or a restore would put the segment is taken: nothing is ever overwritten.
    #[error("cannot {doing} {name:?}: {place} already exists (nothing is ever overwritten); move it away first")]
    Taken {
        doing: &'static str,
        name: String,
        place: String,
    },
    /// A restore found no trashed segment of that name.
    #[error("no segment {name:?} in the trash of {store}")]
    NotInTrash { name: String, store: String },
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
    /// The store refused, for a reason it states (a locator it did not make, a symlink in the way, a trash that is no
    /// directory, a copy that does not read back equal).
    #[error("{0}")]
    Refused(String),
    /// The backend failed (a filesystem call, an object store request, a database statement).
    #[error("{what}: {source}")]
    Backend {
        what: String,
        #[source]
        source: BoxError,
    },
}

impl StoreError {
    /// A failed filesystem call on `path`.
    pub fn io(what: &'static str, path: impl std::fmt::Display, source: std::io::Error) -> Self {
        StoreError::Backend {
            what: format!("{what} {path}"),
            source: Box::new(source),
        }
    }

    /// Whether the backend said "not found" (a file or an object gone meanwhile).
    pub fn is_not_found(&self) -> bool {
        let StoreError::Backend { source, .. } = self else {
            return false;
        };
        if let Some(e) = source.downcast_ref::<std::io::Error>() {
            return e.kind() == std::io::ErrorKind::NotFound;
        }
        matches!(
            source.downcast_ref::<object_store::Error>(),
            Some(object_store::Error::NotFound { .. })
        )
    }

    /// The same failure again, for each action of a group that one group step failed.
    pub fn again(&self) -> StoreError {
        match self {
            StoreError::Changed { what, detail } => StoreError::Changed {
                what: what.clone(),
                detail: detail.clone(),
            },
            StoreError::Unsupported {
                segment,
                action,
                tier,
                why,
            } => StoreError::Unsupported {
                segment: segment.clone(),
                action: *action,
                tier: *tier,
                why: why.clone(),
            },
            StoreError::Busy { place, pid } => StoreError::Busy {
                place: place.clone(),
                pid: *pid,
            },
            StoreError::Taken { doing, name, place } => StoreError::Taken {
                doing,
                name: name.clone(),
                place: place.clone(),
            },
            StoreError::NotInTrash { name, store } => StoreError::NotInTrash {
                name: name.clone(),
                store: store.clone(),
            },
            StoreError::OtherState { .. } | StoreError::Refused(_) => StoreError::Refused(self.to_string()),
            StoreError::Backend { what, source } => StoreError::Backend {
                what: what.clone(),
                source: Box::new(std::io::Error::other(source.to_string())),
            },
        }
    }
}

/// What a store can do, as data: which actions it carries out from which tier, and why not where it cannot. The
/// contract's tier table (compress only from hot, archive from hot or compressed, drop from any) is the most any
/// store allows. The pass checks a whole plan against it before anything is applied.
#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    denied: Vec<(Tier, Action, String)>,
}

impl Capabilities {
    /// Every action the contract allows, from every tier.
    pub fn all() -> Self {
        Capabilities::default()
    }

    /// Without `action` from `tier`, saying why (the reason a plan that asks for it is refused with).
    pub fn without(mut self, tier: Tier, action: Action, why: impl Into<String>) -> Self {
        self.denied.push((tier, action, why.into()));
        self
    }

    /// Ok when the store can carry out `action` from `tier` (keep always), else why not.
    pub fn check(&self, tier: Tier, action: Action) -> Result<(), &str> {
        if action == Action::Keep {
            return Ok(());
        }
        if !action.allowed_from(tier) {
            return Err("the contract's tier table does not allow it");
        }
        match self.denied.iter().find(|(t, a, _)| *t == tier && *a == action) {
            Some((_, _, why)) => Err(why),
            None => Ok(()),
        }
    }
}

pub use crate::segment::ChangeToken;

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
    /// Interrupted actions the store finished or undid from what they recorded (a table store's detached partition
    /// moved into the trash), each with what was done.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub settled: Vec<Skipped>,
}

impl Recovery {
    pub fn is_empty(&self) -> bool {
        self.temp_removed.is_empty()
            && self.duplicates_resolved.is_empty()
            && self.conflicts.is_empty()
            && self.left_alone.is_empty()
            && self.trash_copies_removed.is_empty()
            && self.settled.is_empty()
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

/// How [`Store::apply`] runs.
pub struct ApplyOptions<'a> {
    /// Actions in flight at once (compressions on this many threads).
    pub parallelism: usize,
    /// The pass's now: a drop into the trash is timed by it, the clock its purge compares with.
    pub now_ms: i64,
    pub progress: Progress<'a>,
    /// Checked between the store's groups of actions: once cancelled (graceful shutdown), the actions not started
    /// stay so, never one half-done.
    pub cancel: Option<&'a tokio_util::sync::CancellationToken>,
}

/// A place where a dataset's segments live.
#[async_trait]
pub trait Store: Send + Sync {
    /// A short description for reports, e.g. `directory /var/log/app (archive file:///srv/archive)`.
    fn describe(&self) -> String;

    /// Which actions the store can carry out from which tier (e.g. archiving needs an archive destination). A plan
    /// asking for one it cannot is refused whole before anything is applied.
    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
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

    /// Applies a plan's actions (never a keep), each crash-safely, with at most `opts.parallelism` in flight. The
    /// store decides its own groups and transactions (a database store cannot run some statements inside a
    /// transaction block) and checks `opts.cancel` between groups. Returns one result per action, in order: `None`
    /// for one not started because of the cancellation; a failed action leaves its segment as it was (or recoverable
    /// by `recover`).
    async fn apply(&self, work: &[Work<'_>], opts: &ApplyOptions<'_>) -> Vec<Option<Result<Applied, StoreError>>>;

    /// The store's trash, if it keeps dropped segments restorable for a grace period.
    fn trash(&self) -> Option<&dyn Trash> {
        None
    }

    /// Restoring archived segments into the dataset, if the store can (a table store puts an archived partition
    /// back into its table).
    fn unarchive(&self) -> Option<&dyn Unarchive> {
        None
    }
}

/// The optional capability of a store that can put an archived segment back where it came from, as it was.
#[async_trait]
pub trait Unarchive: Send + Sync {
    /// Restores the archived segment `name` (as scans show it) into the dataset, and deletes its archive objects
    /// once it is back. Refuses ([`StoreError::Taken`]) when the segment exists in the dataset now.
    async fn restore(&self, name: &str) -> Result<Restored, StoreError>;
}

/// What a restore from the archive put back.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    pub name: String,
    /// Rows put back, for a table store.
    pub rows: Option<u64>,
    /// The archive object's size.
    pub bytes: u64,
    /// When it had been archived (ms since the epoch).
    pub archived_at_ms: i64,
}

/// The optional capability of a store that keeps dropped segments for a grace period: a trashed segment counts as
/// one recoverable place until it is purged.
#[async_trait]
pub trait Trash: Send + Sync {
    /// Dropped segments still restorable, oldest first, each with its labels.
    async fn list(&self) -> Result<Vec<TrashEntry>, StoreError>;

    /// Deletes for good exactly `entries`, as [`Trash::list`] listed them (the caller chose them: expired, not under
    /// a hold, and recorded first), and returns those it deleted; one gone meanwhile (restored, or purged by another
    /// pass) is skipped. An entry is either purged whole or left as it was.
    async fn purge(&self, entries: &[TrashEntry]) -> Result<Vec<TrashEntry>, StoreError>;

    /// Puts the trashed segment `name` back where and as it was (name, tier, bytes, modification time). With several
    /// entries of that name, restores the most recently trashed. Refuses ([`StoreError::Taken`]) when the segment
    /// exists now in any tier, and says [`StoreError::NotInTrash`] when there is nothing to restore.
    async fn restore(&self, name: &str) -> Result<TrashEntry, StoreError>;
}

/// Opens the store of a dataset, checking that it is reachable (root readable, archive destination listable).
pub async fn open(config: &StoreConfig) -> Result<Arc<dyn Store>, StoreError> {
    match config {
        StoreConfig::Directory(cfg) => Ok(Arc::new(dir::DirectoryStore::open(cfg.clone()).await?)),
        StoreConfig::Postgres(cfg) => Ok(Arc::new(postgres::PostgresStore::open(cfg.clone()).await?)),
    }
}
