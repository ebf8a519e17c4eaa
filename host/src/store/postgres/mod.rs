//! The PostgreSQL store: a table as a dataset. The config section, the connection (the password from an environment
//! variable or a file, `lock_timeout` and `statement_timeout` on every session, UTC), and three layouts, found when
//! the store opens (or configured):
//! - a declaratively RANGE-partitioned table: a segment per leaf partition (time range from its bounds, parsed by
//!   the server; bytes from `pg_total_relation_size`; rows from the planner's estimate; labels `schema`, `table` and
//!   the named captures of `labels` over the partition's name; the DEFAULT partition never a segment), `scan.rs`;
//! - a plain table: a segment per time bucket and label column values, rows exact (`bucket.rs`);
//! - a TimescaleDB hypertable: a segment per chunk, compressed with TimescaleDB's own compression, dropped into the
//!   trash (`detach_chunk`) or with `drop_chunks` (`chunk.rs`).
//!
//! Actions: **drop**, crash-safely, into a trash schema with a grace period or for good (`drop.rs`, `recover.rs`,
//! `trash.rs`; a bucket's rows in batches, `bucket.rs`). **archive** of a partition as verified Parquet
//! (`archive.rs`, `columnar.rs`), of a bucket through a staging table (`bucket_archive.rs`), of a TimescaleDB chunk in the transaction that drops it (`chunk_archive.rs`), restored by `retention archive
//! restore` (the [`Unarchive`] capability); an archived segment's drop moves its objects into the archive's trash
//! (`archive_trash.rs`). **compress** of a chunk is TimescaleDB's `compress_chunk`; elsewhere it
//! is refused (vanilla PostgreSQL has no table compression), and so is dropping a compressed chunk into the trash. A plan that
//! asks for a refused action is refused whole before anything is applied. What is left of the issue is in `PLAN.md`.
//!
//! Layout: `config.rs` (the section), `sql.rs` (quoting), `scan.rs`, `bucket.rs`, `bucket_archive.rs`, `chunk.rs`, `chunk_archive.rs`, `intent.rs` (what a table records
//! on itself while an action is under way, and in the trash), `drop.rs`, `recover.rs`, `trash.rs`, `archive.rs`, `unarchive.rs`, `archive_trash.rs`,
//! `columnar.rs`, `state.rs` (the state binding).

mod archive;
mod archive_trash;
mod bucket;
mod bucket_archive;
mod chunk;
mod chunk_archive;
mod columnar;
pub mod config;
mod drop;
mod intent;
mod recover;
mod scan;
mod sql;
pub mod state;
#[cfg(test)]
mod tests;
mod trash;
mod unarchive;

pub use archive::CRASH_POINTS as ARCHIVE_CRASH_POINTS;
pub use archive_trash::{CRASH_POINTS as ARCHIVE_TRASH_CRASH_POINTS, RESTORE_POINTS as ARCHIVE_UNTRASH_POINTS};
pub use bucket::CRASH_POINTS as BUCKET_CRASH_POINTS;
pub use bucket_archive::{
    CRASH_POINTS as BUCKET_ARCHIVE_CRASH_POINTS, RESTORE_POINTS as BUCKET_RESTORE_POINTS, STAGING_SCHEMA,
};
pub use chunk::{CRASH_POINTS as CHUNK_CRASH_POINTS, TRASH_CRASH_POINTS as CHUNK_TRASH_CRASH_POINTS};
pub use chunk_archive::{CRASH_POINTS as CHUNK_ARCHIVE_CRASH_POINTS, RESTORE_POINTS as CHUNK_RESTORE_POINTS};
pub use drop::CRASH_POINTS;
pub use unarchive::RESTORE_POINTS;

use async_trait::async_trait;

pub use config::{PostgresConfig, RawPostgres};

use crate::segment::{Action, Symbols, Tier};
use crate::store::object;
use crate::store::{
    Applied, ApplyOptions, BoxError, Capabilities, Recovery, Scan, Store, StoreError, Trash, TrashEntry, Unarchive,
    Work,
};

/// Why compress is refused.
const NO_COMPRESS: &str = "PostgreSQL has no compression of a table's partitions (TimescaleDB's chunk compression is \
                           for hypertables): plan keep, archive or drop for this dataset instead";

/// Why archive is refused without an archive destination.
const NO_ARCHIVE: &str = "the dataset has no archive destination: set archive_url in [dataset.postgres] (file:// or \
                          s3://), or plan keep or drop instead";

/// Why compress is refused on a hypertable without compression.
const NO_CHUNK_COMPRESSION: &str = "compression is not enabled on this hypertable: ALTER TABLE <hypertable> SET \
                                    (timescaledb.compress) (with compress_segmentby as its queries need), or plan keep \
                                    or drop";

/// Why a compressed chunk is not compressed again.
const ALREADY_COMPRESSED: &str = "the chunk is compressed already";

pub struct PostgresStore {
    config: PostgresConfig,
    archive: Option<object::Archive>,
    /// The table's layout, as the config says or as found when the store was opened.
    layout: config::Layout,
    /// The hypertable, when the layout is one.
    hyper: Option<chunk::Hypertable>,
}

fn backend(what: impl Into<String>, e: impl Into<BoxError>) -> StoreError {
    let source: BoxError = e.into();
    let source = match source.downcast::<tokio_postgres::Error>() {
        Ok(pg) => Box::new(ServerError(*pg)) as BoxError,
        Err(other) => other,
    };
    StoreError::Backend {
        what: what.into(),
        source,
    }
}

/// A client error shown with what the server said (tokio-postgres's own `Display` of a server error is only "db
/// error"): its message, SQLSTATE, detail and hint.
#[derive(Debug)]
pub struct ServerError(pub tokio_postgres::Error);

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some(db) = self.0.as_db_error() else {
            return match std::error::Error::source(&self.0) {
                Some(cause) => write!(f, "{}: {cause}", self.0),
                None => write!(f, "{}", self.0),
            };
        };
        write!(f, "{} (SQLSTATE {})", db.message(), db.code().code())?;
        if let Some(d) = db.detail() {
            write!(f, ": {d}")?;
        }
        if let Some(h) = db.hint() {
            write!(f, "; hint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ServerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl PostgresStore {
    /// Opens the store, checking that the server answers and the table exists.
    pub async fn open(config: PostgresConfig) -> Result<PostgresStore, StoreError> {
        let archive = match &config.archive_url {
            Some(u) => Some(object::Archive::open(u).await?),
            None => None,
        };
        let mut store = PostgresStore {
            config,
            archive,
            layout: config::Layout::Partitioned,
            hyper: None,
        };
        let client = store.connect().await?;
        (store.layout, store.hyper) = scan::check_table(&client, &store.config).await?;
        Ok(store)
    }

    /// The buckets' settings when the table is cut into time buckets.
    fn buckets(&self) -> Option<&config::Buckets> {
        match self.layout {
            config::Layout::Buckets => self.config.buckets.as_ref(),
            config::Layout::Partitioned | config::Layout::Hypertable => None,
        }
    }

    /// A new session: the password from where the config says, the store's timeouts, UTC.
    async fn connect(&self) -> Result<tokio_postgres::Client, StoreError> {
        let c = &self.config;
        let mut pg: tokio_postgres::Config = c
            .url
            .parse()
            .map_err(|e| backend(format!("cannot parse {}", c.url), e))?;
        match &c.password {
            config::Password::None => {}
            config::Password::Env(var) => {
                let pw = std::env::var(var).map_err(|_| {
                    StoreError::Refused(format!(
                        "the password of {} is in the environment variable {var}, which is not set: set it (or change \
                         password_env)",
                        c.url
                    ))
                })?;
                pg.password(pw);
            }
            config::Password::File(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| StoreError::io("cannot read the password file", path.display(), e))?;
                pg.password(text.lines().next().unwrap_or_default());
            }
        }
        let (client, connection) = pg
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| backend(format!("cannot connect to {}", c.url), e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!("postgres connection ended: {e}");
            }
        });
        // DEALLOCATE ALL: a session handed over by a pooler in session mode, or shared by every connection (pglite),
        // may hold statements an earlier client prepared; tokio-postgres names its statements s0, s1, ... in each
        // process, so a new client's would collide with them. A fresh session has none: then it does nothing.
        client
            .batch_execute(&format!(
                "DEALLOCATE ALL; SET lock_timeout = {}; SET statement_timeout = {}; SET TimeZone = 'UTC'; \
                 SET standard_conforming_strings = on",
                c.lock_timeout.as_millis(),
                c.statement_timeout.as_millis()
            ))
            .await
            .map_err(|e| backend("cannot set up the session", e))?;
        Ok(client)
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn describe(&self) -> String {
        format!(
            "postgres {} table {}.{}",
            self.config.url, self.config.schema, self.config.table
        )
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::all();
        if let Some(h) = &self.hyper {
            if self.archive.is_none() {
                for tier in [Tier::Hot, Tier::Compressed, Tier::Archived] {
                    caps = caps.without(tier, Action::Archive, NO_ARCHIVE);
                }
            }
            if !h.compression {
                caps = caps.without(Tier::Hot, Action::Compress, NO_CHUNK_COMPRESSION);
            }
            caps = caps
                .without(Tier::Compressed, Action::Compress, ALREADY_COMPRESSED)
                .without(Tier::Archived, Action::Compress, NO_COMPRESS);
            return caps;
        }
        for tier in [Tier::Hot, Tier::Compressed, Tier::Archived] {
            caps = caps.without(tier, Action::Compress, NO_COMPRESS);
            if self.archive.is_none() {
                caps = caps.without(tier, Action::Archive, NO_ARCHIVE);
            }
        }
        caps
    }

    async fn bind_state(&self, dataset: &str, state_id: &str, write: bool) -> Result<(), StoreError> {
        let client = self.connect().await?;
        if write {
            // A real pass: the privileges its actions need, named before anything is written (the binding included).
            scan::check_privileges(&client, &self.config, self.layout).await?;
        }
        state::bind(&client, &self.config, dataset, state_id, write).await
    }

    async fn scan(&self, repair: bool, symbols: &mut Symbols) -> Result<(Recovery, Scan), StoreError> {
        let mut client = self.connect().await?;
        let (layout, _) = scan::check_table(&client, &self.config).await?;
        if layout != self.layout {
            return Err(StoreError::Refused(format!(
                "table {}.{} was {:?} when the dataset was opened and is {layout:?} now: reload the config",
                self.config.schema, self.config.table, self.layout
            )));
        }
        let recovery = recover::recover(&mut client, &self.config, self.archive.as_ref(), repair).await?;
        let mut scan = match (self.buckets(), &self.hyper) {
            (Some(b), _) => bucket::scan(&client, &self.config, b, symbols).await?,
            (None, Some(_)) => chunk::scan(&client, &self.config, symbols).await?,
            (None, None) => scan::partitions(&client, &self.config, symbols).await?,
        };
        if let Some(a) = &self.archive {
            let (archived, skipped) = archive::scan(a, &self.config, symbols).await?;
            scan.segments.extend(archived);
            scan.skipped.extend(skipped);
        }
        Ok((recovery, scan))
    }

    async fn apply(&self, work: &[Work<'_>], opts: &ApplyOptions<'_>) -> Vec<Option<Result<Applied, StoreError>>> {
        let mut client = match self.connect().await {
            Ok(c) => c,
            Err(e) => return work.iter().map(|_| Some(Err(e.again()))).collect(),
        };
        // The role's privileges, once, before anything is applied: a missing one fails every action, saying which
        // GRANT is missing, rather than the first DETACH failing halfway through a plan.
        if let Err(e) = scan::check_privileges(&client, &self.config, self.layout).await {
            return work.iter().map(|_| Some(Err(e.again()))).collect();
        }
        let mut out = Vec::with_capacity(work.len());
        // One action at a time: each is a few catalog statements, and the parent's locks are better taken in turn.
        for w in work {
            if opts.cancel.is_some_and(|c| c.is_cancelled()) {
                out.push(None);
                continue;
            }
            // An archived segment (of any layout): its objects deleted, or moved into the archive's trash.
            if w.action == Action::Drop
                && w.segment.tier == Tier::Archived
                && let Some(a) = &self.archive
            {
                let result = if self.config.trash_grace.is_zero() {
                    archive::drop_archived(a, w.segment).await
                } else {
                    archive_trash::trash_archived(a, &self.config, w.segment, opts.now_ms).await
                };
                (opts.progress)(1);
                out.push(Some(result));
                continue;
            }
            if let Some(h) = &self.hyper {
                let result = match (w.action, &self.archive) {
                    (Action::Archive, Some(a)) if w.segment.tier != Tier::Archived => {
                        chunk_archive::archive_chunk(&mut client, a, &self.config, h, w.segment, opts.now_ms).await
                    }
                    (Action::Compress, _) if h.compression && w.segment.tier == Tier::Hot => {
                        chunk::compress(&client, &self.config, w.segment).await
                    }
                    (Action::Drop, _) if self.config.trash_grace.is_zero() => {
                        chunk::drop_chunk(&client, &self.config, h, w.segment).await
                    }
                    (Action::Drop, _) if w.segment.tier != Tier::Archived => {
                        chunk::trash_chunk(&mut client, &self.config, w.segment, opts.now_ms).await
                    }
                    (action, _) => Err(StoreError::Unsupported {
                        segment: w.segment.name.clone(),
                        action,
                        tier: w.segment.tier,
                        why: match action {
                            Action::Archive | Action::Drop => NO_ARCHIVE,
                            _ if w.segment.tier == Tier::Compressed => ALREADY_COMPRESSED,
                            _ if w.segment.tier == Tier::Archived => NO_COMPRESS,
                            _ => NO_CHUNK_COMPRESSION,
                        }
                        .to_string(),
                    }),
                };
                (opts.progress)(1);
                out.push(Some(result));
                continue;
            }
            let result = match (w.action, w.segment.tier, &self.archive) {
                (Action::Drop, Tier::Hot, _) if let Some(b) = self.buckets() => {
                    bucket::drop_bucket(&mut client, &self.config, b, w.segment, opts.now_ms).await
                }
                (Action::Drop, _, _) => drop::drop_partition(&mut client, &self.config, w.segment, opts.now_ms).await,
                (Action::Archive, Tier::Hot, Some(a)) if let Some(b) = self.buckets() => {
                    bucket_archive::archive_bucket(&mut client, a, &self.config, b, w.segment, opts.now_ms).await
                }
                (Action::Archive, Tier::Hot, Some(a)) => {
                    archive::archive_partition(&mut client, a, &self.config, w.segment, opts.now_ms).await
                }
                (action, _, _) => Err(StoreError::Unsupported {
                    segment: w.segment.name.clone(),
                    action,
                    tier: w.segment.tier,
                    why: match action {
                        Action::Compress => NO_COMPRESS,
                        _ => NO_ARCHIVE,
                    }
                    .to_string(),
                }),
            };
            (opts.progress)(1);
            out.push(Some(result));
        }
        out
    }

    fn trash(&self) -> Option<&dyn Trash> {
        Some(self)
    }

    fn unarchive(&self) -> Option<&dyn Unarchive> {
        self.archive.is_some().then_some(self as &dyn Unarchive)
    }
}

#[async_trait]
impl Unarchive for PostgresStore {
    async fn restore(&self, name: &str) -> Result<crate::store::Restored, StoreError> {
        let a = self.archive.as_ref().expect("unarchive() is None without an archive");
        let mut client = self.connect().await?;
        let (rel, m) = unarchive::lookup(a, &self.config, name).await?;
        let u = match m.bucket {
            Some(_) => bucket_archive::unarchive(&mut client, a, &self.config, name, &rel, m).await?,
            // A TimescaleDB chunk's bound is the slice it covered.
            None if m.bound.starts_with('{') => {
                chunk_archive::unarchive(&mut client, a, &self.config, name, &rel, m).await?
            }
            None => unarchive::unarchive(&mut client, a, &self.config, name, &rel, m).await?,
        };
        Ok(crate::store::Restored {
            name: u.name,
            rows: Some(u.rows),
            bytes: u.bytes,
            archived_at_ms: u.archived_at_ms,
        })
    }
}

#[async_trait]
impl Trash for PostgresStore {
    /// Tables in the trash schemas, and archived segments in the archive's trash.
    async fn list(&self) -> Result<Vec<TrashEntry>, StoreError> {
        let client = self.connect().await?;
        let mut out: Vec<TrashEntry> = trash::list(&client, &self.config)
            .await?
            .into_iter()
            .map(|t| t.entry)
            .collect();
        if let Some(a) = &self.archive {
            out.extend(archive_trash::list(a, &self.config).await?.into_iter().map(|t| t.entry));
            out.sort_by(|a, b| (a.trashed_at_ms, &a.name).cmp(&(b.trashed_at_ms, &b.name)));
        }
        Ok(out)
    }

    async fn purge(&self, entries: &[TrashEntry]) -> Result<Vec<TrashEntry>, StoreError> {
        let client = self.connect().await?;
        // Each purges only what its own listing shows now.
        let mut purged = trash::purge(&client, &self.config, entries).await?;
        if let Some(a) = &self.archive {
            purged.extend(archive_trash::purge(a, &self.config, entries).await?);
        }
        Ok(purged)
    }

    /// The latest entry of that name, a table's or an archived segment's.
    async fn restore(&self, name: &str) -> Result<TrashEntry, StoreError> {
        let mut client = self.connect().await?;
        if let Some(a) = &self.archive {
            let objects = archive_trash::list(a, &self.config).await?;
            if let Some(o) = objects.iter().rev().find(|t| t.entry.name == name) {
                let tables = trash::list(&client, &self.config).await?;
                let later_table = tables
                    .iter()
                    .any(|t| t.entry.name == name && t.entry.trashed_at_ms > o.entry.trashed_at_ms);
                if !later_table {
                    archive_trash::restore(a, &self.config, o).await?;
                    return Ok(o.entry.clone());
                }
            }
        }
        trash::restore(&mut client, &self.config, name).await
    }
}
