//! Record: the service's state that must survive a restart, in an embedded SQLite database
//! (`<state_dir>/state.sqlite3`): the history of passes (with their full reports) and of plugin loads, legal holds,
//! the audit trail, and shadows with their comparisons.
//!
//! The database is the service's memory, not the data's: losing it loses history, never a segment. Writes are small
//! and rare (one per pass, one per plugin event), so one connection behind a mutex is enough; WAL mode lets a reader
//! (`sqlite3` on the command line) look while the service runs.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::pass::hold::{Hold, Selector};
use crate::pass::report::PassReport;

/// The schema version this host writes; `PRAGMA user_version` in the file.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS passes (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    pass_id      TEXT NOT NULL UNIQUE,
    dataset      TEXT NOT NULL,
    trigger      TEXT NOT NULL,
    dry_run      INTEGER NOT NULL,
    status       TEXT NOT NULL,
    error        TEXT,
    plugin_name    TEXT,
    plugin_version TEXT,
    plugin_digest  TEXT,
    started_at   TEXT NOT NULL,
    duration_ms  REAL NOT NULL,
    stats        TEXT NOT NULL,
    report_zst   BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS passes_by_dataset ON passes (dataset, seq);
CREATE TABLE IF NOT EXISTS plugin_events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    at           TEXT NOT NULL,
    plugin       TEXT NOT NULL,
    event        TEXT NOT NULL,
    digest       TEXT,
    version      TEXT,
    source       TEXT,
    load_ms      REAL,
    reason       TEXT
);
CREATE INDEX IF NOT EXISTS plugin_events_by_plugin ON plugin_events (plugin, seq);
CREATE TABLE IF NOT EXISTS holds (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset      TEXT NOT NULL,
    selector     TEXT NOT NULL,
    reason       TEXT NOT NULL,
    author       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    lifted_at    TEXT,
    lifted_by    TEXT
);
CREATE TABLE IF NOT EXISTS audit (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    at           TEXT NOT NULL,
    pass_id      TEXT NOT NULL,
    dataset      TEXT NOT NULL,
    segment      TEXT NOT NULL,
    tier_before  TEXT,
    tier_after   TEXT,
    action       TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    reason       TEXT,
    detail       TEXT,
    plugin_name    TEXT,
    plugin_version TEXT,
    plugin_digest  TEXT,
    bytes        INTEGER NOT NULL
);
-- The plan of a pass that is applying it, until the pass is recorded: what a pass whose process died did.
CREATE TABLE IF NOT EXISTS pending_passes (
    pass_id      TEXT PRIMARY KEY,
    dataset      TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    plugin_name    TEXT,
    plugin_version TEXT,
    plugin_digest  TEXT,
    plan_zst     BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_dataset ON audit (dataset, seq);
CREATE INDEX IF NOT EXISTS audit_by_segment ON audit (segment, seq);
CREATE INDEX IF NOT EXISTS audit_by_pass ON audit (pass_id);
CREATE TABLE IF NOT EXISTS shadows (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset      TEXT NOT NULL,
    source       TEXT NOT NULL,
    plugin       TEXT NOT NULL,
    passes       INTEGER NOT NULL,
    passes_left  INTEGER NOT NULL,
    config_key   TEXT,
    set_at       TEXT NOT NULL,
    ended_at     TEXT,
    ended_how    TEXT
);
CREATE INDEX IF NOT EXISTS shadows_by_dataset ON shadows (dataset, id);
CREATE TABLE IF NOT EXISTS shadow_results (
    pass_id      TEXT PRIMARY KEY,
    shadow_id    INTEGER NOT NULL,
    dataset      TEXT NOT NULL,
    at           TEXT NOT NULL,
    comparison   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS shadow_results_by_shadow ON shadow_results (shadow_id);
-- Facts about the database itself: `id`, a UUID made when it was created, which each dataset's store records at its
-- first real pass, so that a pass run with another database (a lost one re-created empty) is refused.
CREATE TABLE IF NOT EXISTS meta (
    key          TEXT PRIMARY KEY,
    value        TEXT NOT NULL
);
";

/// A state database problem.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot create state directory {path}: {source}")]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("state database {path}: {source}")]
    Sqlite { path: PathBuf, source: rusqlite::Error },
    #[error(
        "state database {path} has schema version {found}, newer than this host's {SCHEMA_VERSION}: \
         use a newer retention or another state_dir"
    )]
    NewerSchema { path: PathBuf, found: i64 },
    #[error("cannot encode a pass report: {0}")]
    Encode(String),
    #[error(
        "state database {path} was removed or replaced since it was opened{}: its legal holds and audit trail can no \
         longer be trusted, so no pass runs; restore it and restart",
        .source.as_ref().map_or(String::new(), |e| format!(" ({e})"))
    )]
    Gone {
        path: PathBuf,
        source: Option<std::io::Error>,
    },
}

/// Device and inode of a file.
fn file_identity(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(path)?;
    Ok((md.dev(), md.ino()))
}

/// One row of the pass history (the full report is fetched separately).
#[derive(Debug, Clone, Serialize)]
pub struct PassRow {
    pub pass_id: String,
    pub dataset: String,
    /// `schedule` or `api`.
    pub trigger: String,
    pub dry_run: bool,
    pub status: String,
    pub error: Option<String>,
    pub plugin_name: Option<String>,
    pub plugin_version: Option<String>,
    pub plugin_digest: Option<String>,
    pub started_at: String,
    pub duration_ms: f64,
    /// The report's `stats`, as JSON.
    pub stats: serde_json::Value,
}

/// A step in a plugin's life: loaded, rejected, removed, rolled back.
#[derive(Debug, Clone, Serialize)]
pub struct PluginEvent {
    pub at: String,
    /// The plugin's file name without `.wasm`.
    pub plugin: String,
    /// `loaded`, `rejected`, `removed` or `rolled-back`.
    pub event: String,
    pub digest: Option<String>,
    pub version: Option<String>,
    /// For loads: `compiled`, `disk-cache` or `memory`.
    pub source: Option<String>,
    pub load_ms: Option<f64>,
    /// For rejections: why.
    pub reason: Option<String>,
}

/// The state database.
pub struct StateDb {
    path: PathBuf,
    conn: Mutex<Connection>,
    /// The database's own identity (the `meta` table's `id`).
    id: String,
    /// Device and inode of the database file when it was opened: a file removed or replaced since means the holds
    /// this connection reads are no longer the ones on disk.
    file: (u64, u64),
}

impl StateDb {
    /// Opens (creating when needed) `<dir>/state.sqlite3`.
    pub fn open(dir: &Path) -> Result<StateDb, StateError> {
        std::fs::create_dir_all(dir).map_err(|source| StateError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join("state.sqlite3");
        let err = |source| StateError::Sqlite {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        // A pass record lost to a power cut is history, not data: NORMAL is durable across process crashes.
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(err)?;
        let found: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(err)?;
        if found > SCHEMA_VERSION {
            return Err(StateError::NewerSchema { path, found });
        }
        conn.execute_batch(SCHEMA).map_err(err)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(err)?;
        // A database without an id (new, or written before ids existed) gets one now; another process opening it
        // at the same instant keeps whichever was inserted first.
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('id', ?1)",
            params![uuid::Uuid::new_v4().to_string()],
        )
        .map_err(err)?;
        let id: String = conn
            .query_row("SELECT value FROM meta WHERE key = 'id'", [], |r| r.get(0))
            .map_err(err)?;
        let file = file_identity(&path).map_err(|source| StateError::Gone {
            path: path.clone(),
            source: Some(source),
        })?;
        Ok(StateDb {
            path,
            conn: Mutex::new(conn),
            id,
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The database's identity: stores record it at a dataset's first real pass and refuse passes with another.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Checks that the database file is still the one this connection opened: a state database removed (or
    /// replaced) while the service runs would otherwise lose what is recorded from then on, and a later
    /// `retention run` would start without its legal holds. A pass checks this first and does not run otherwise.
    pub fn check_present(&self) -> Result<(), StateError> {
        match file_identity(&self.path) {
            Ok(f) if f == self.file => Ok(()),
            Ok(_) => Err(StateError::Gone {
                path: self.path.clone(),
                source: None,
            }),
            Err(e) => Err(StateError::Gone {
                path: self.path.clone(),
                source: Some(e),
            }),
        }
    }

    fn err(&self, source: rusqlite::Error) -> StateError {
        StateError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (each statement is atomic): go on.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a finished pass, its report and its audit records (one transaction); keeps at most `keep` passes
    /// (oldest pruned; the audit trail is never pruned).
    pub fn record_pass(&self, report: &PassReport, trigger: &str, keep: u64) -> Result<(), StateError> {
        let json = serde_json::to_vec(report).map_err(|e| StateError::Encode(e.to_string()))?;
        let report_zst = zstd::bulk::compress(&json, 3).map_err(|e| StateError::Encode(e.to_string()))?;
        let stats = serde_json::to_string(&report.stats).map_err(|e| StateError::Encode(e.to_string()))?;
        let plugin = report.plugin.as_ref();
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        tx.execute(
            "INSERT INTO passes (pass_id, dataset, trigger, dry_run, status, error, plugin_name, plugin_version,
                                 plugin_digest, started_at, duration_ms, stats, report_zst)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            params![
                report.pass_id,
                report.dataset,
                trigger,
                report.dry_run,
                report.status.as_str(),
                report.error,
                plugin.map(|p| &p.name),
                plugin.map(|p| &p.version),
                plugin.map(|p| &p.digest),
                report.started_at,
                report.duration_ms,
                stats,
                report_zst,
            ],
        )
        .map_err(|e| self.err(e))?;
        tx.execute(
            "DELETE FROM passes WHERE seq <= (SELECT MAX(seq) FROM passes) - ?1",
            params![keep as i64],
        )
        .map_err(|e| self.err(e))?;
        record_audit(&tx, report).map_err(|e| self.err(e))?;
        tx.execute("DELETE FROM pending_passes WHERE pass_id = ?1", params![report.pass_id])
            .map_err(|e| self.err(e))?;
        // Shadow comparisons go with their passes.
        tx.execute(
            "DELETE FROM shadow_results WHERE pass_id NOT IN (SELECT pass_id FROM passes)",
            [],
        )
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Sets a hold; returns it with its id.
    pub fn add_hold(&self, dataset: &str, selector: &Selector, reason: &str, author: &str) -> Result<Hold, StateError> {
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let sel = serde_json::to_string(selector).map_err(|e| StateError::Encode(e.to_string()))?;
        let conn = self.conn();
        conn.execute(
            "INSERT INTO holds (dataset, selector, reason, author, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![dataset, sel, reason, author, at],
        )
        .map_err(|e| self.err(e))?;
        Ok(Hold {
            id: conn.last_insert_rowid(),
            dataset: dataset.to_string(),
            selector: selector.clone(),
            reason: reason.to_string(),
            author: author.to_string(),
            created_at: at,
            lifted_at: None,
            lifted_by: None,
        })
    }

    /// Lifts a hold; `Ok(None)` when there is no such hold, an error-free no-op when it was lifted already.
    pub fn lift_hold(&self, id: i64, by: &str) -> Result<Option<Hold>, StateError> {
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        self.conn()
            .execute(
                "UPDATE holds SET lifted_at = ?2, lifted_by = ?3 WHERE id = ?1 AND lifted_at IS NULL",
                params![id, at, by],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.holds(None, true)?.into_iter().find(|h| h.id == id))
    }

    /// Holds of one dataset or all; lifted ones only with `include_lifted`.
    pub fn holds(&self, dataset: Option<&str>, include_lifted: bool) -> Result<Vec<Hold>, StateError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, dataset, selector, reason, author, created_at, lifted_at, lifted_by FROM holds
                 WHERE (?1 IS NULL OR dataset = ?1) AND (?2 OR lifted_at IS NULL) ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![dataset, include_lifted], |r| {
                let sel: String = r.get(2)?;
                Ok((
                    sel,
                    Hold {
                        id: r.get(0)?,
                        dataset: r.get(1)?,
                        selector: Selector::NamePrefix(String::new()),
                        reason: r.get(3)?,
                        author: r.get(4)?,
                        created_at: r.get(5)?,
                        lifted_at: r.get(6)?,
                        lifted_by: r.get(7)?,
                    },
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (sel, mut hold) = row.map_err(|e| self.err(e))?;
            // A selector this host cannot read must not silently select nothing: refuse to go on.
            hold.selector = serde_json::from_str(&sel)
                .map_err(|e| StateError::Encode(format!("hold {} has an unreadable selector {sel:?}: {e}", hold.id)))?;
            out.push(hold);
        }
        Ok(out)
    }

    /// Pass history, newest first: at most `limit` rows, of one dataset or all, older than the pass `before` (the
    /// paging cursor: the last `pass_id` of the previous page).
    pub fn passes(&self, dataset: Option<&str>, before: Option<&str>, limit: u32) -> Result<Vec<PassRow>, StateError> {
        let conn = self.conn();
        let before_seq: i64 = match before {
            None => i64::MAX,
            Some(id) => conn
                .query_row("SELECT seq FROM passes WHERE pass_id = ?1", params![id], |r| r.get(0))
                .optional()
                .map_err(|e| self.err(e))?
                .unwrap_or(-1),
        };
        let mut stmt = conn
            .prepare_cached(
                "SELECT pass_id, dataset, trigger, dry_run, status, error, plugin_name, plugin_version, plugin_digest,
                        started_at, duration_ms, stats
                 FROM passes WHERE seq < ?1 AND (?2 IS NULL OR dataset = ?2) ORDER BY seq DESC LIMIT ?3",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![before_seq, dataset, limit], |r| {
                let stats: String = r.get(11)?;
                Ok(PassRow {
                    pass_id: r.get(0)?,
                    dataset: r.get(1)?,
                    trigger: r.get(2)?,
                    dry_run: r.get(3)?,
                    status: r.get(4)?,
                    error: r.get(5)?,
                    plugin_name: r.get(6)?,
                    plugin_version: r.get(7)?,
                    plugin_digest: r.get(8)?,
                    started_at: r.get(9)?,
                    duration_ms: r.get(10)?,
                    stats: serde_json::from_str(&stats).unwrap_or(serde_json::Value::Null),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Whether a pass with this id is in the history (for telling a bad cursor from the end of the list).
    pub fn has_pass(&self, pass_id: &str) -> Result<bool, StateError> {
        self.conn()
            .query_row("SELECT 1 FROM passes WHERE pass_id = ?1", params![pass_id], |_| Ok(()))
            .optional()
            .map(|r| r.is_some())
            .map_err(|e| self.err(e))
    }

    /// One pass's full report, as the JSON it was recorded as.
    pub fn pass_report(&self, pass_id: &str) -> Result<Option<Vec<u8>>, StateError> {
        let zst: Option<Vec<u8>> = self
            .conn()
            .query_row(
                "SELECT report_zst FROM passes WHERE pass_id = ?1",
                params![pass_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        match zst {
            None => Ok(None),
            Some(z) => zstd::stream::decode_all(&z[..])
                .map(Some)
                .map_err(|e| StateError::Encode(format!("stored report of pass {pass_id} is unreadable: {e}"))),
        }
    }

    /// The latest pass of a dataset.
    pub fn last_pass(&self, dataset: &str) -> Result<Option<PassRow>, StateError> {
        Ok(self.passes(Some(dataset), None, 1)?.into_iter().next())
    }

    /// Records a plugin event.
    pub fn record_plugin_event(&self, e: &PluginEvent) -> Result<(), StateError> {
        self.conn()
            .execute(
                "INSERT INTO plugin_events (at, plugin, event, digest, version, source, load_ms, reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    e.at, e.plugin, e.event, e.digest, e.version, e.source, e.load_ms, e.reason
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Plugin events, newest first, of one plugin or all.
    pub fn plugin_events(&self, plugin: Option<&str>, limit: u32) -> Result<Vec<PluginEvent>, StateError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT at, plugin, event, digest, version, source, load_ms, reason FROM plugin_events
                 WHERE (?1 IS NULL OR plugin = ?1) ORDER BY seq DESC LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![plugin, limit], |r| {
                Ok(PluginEvent {
                    at: r.get(0)?,
                    plugin: r.get(1)?,
                    event: r.get(2)?,
                    digest: r.get(3)?,
                    version: r.get(4)?,
                    source: r.get(5)?,
                    load_ms: r.get(6)?,
                    reason: r.get(7)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }
}

mod audit;
mod shadows;
#[cfg(test)]
mod tests;

use audit::record_audit;
pub use audit::{AuditFilter, AuditRecord};
pub use shadows::{ShadowResult, ShadowRow};
