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
use crate::pass::report::{Outcome, PassReport, PassStatus};
use crate::segment::Action;

/// One audit record to write; the time is the caller's.
struct NewAudit<'a> {
    pass_id: &'a str,
    dataset: &'a str,
    segment: &'a str,
    tier_before: &'a str,
    tier_after: Option<&'a str>,
    action: &'a str,
    outcome: &'a str,
    reason: Option<&'a str>,
    detail: Option<&'a str>,
    plugin: Option<&'a crate::plugin::PluginVersion>,
    bytes: u64,
}

/// The one statement that writes the audit trail (inside a transaction or not).
fn insert_audit(conn: &Connection, at: &str, r: &NewAudit<'_>) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO audit (at, pass_id, dataset, segment, tier_before, tier_after, action, outcome, reason, detail,
                            plugin_name, plugin_version, plugin_digest, bytes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?
    .execute(params![
        at,
        r.pass_id,
        r.dataset,
        r.segment,
        r.tier_before,
        r.tier_after,
        r.action,
        r.outcome,
        r.reason,
        r.detail,
        r.plugin.map(|p| &p.name),
        r.plugin.map(|p| &p.version),
        r.plugin.map(|p| &p.digest),
        r.bytes as i64,
    ])?;
    Ok(())
}

/// Writes the audit records of a pass: every archive, drop and compression it applied or tried, every one a hold
/// overrode, and every one a guard refused; and the trash entries it purged. Dry runs and plans that failed in the
/// plugin have none.
fn record_audit(tx: &rusqlite::Transaction<'_>, report: &PassReport) -> rusqlite::Result<()> {
    if report.dry_run || report.status == PassStatus::Failed {
        return Ok(());
    }
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let plugin = report.plugin.as_ref();
    for row in &report.segments {
        let here = Some(row.tier.as_str());
        let (action, outcome, tier_after, detail) = if let Some(o) = &row.overridden {
            (o.action, "overridden", here, Some(o.hold.as_str()))
        } else if row.action == Action::Keep {
            continue;
        } else if report.status == PassStatus::Refused {
            (row.action, "refused", here, report.error.as_deref())
        } else {
            match row.outcome {
                Outcome::Done if row.trashed => (row.action, "trashed", Some("trash"), None),
                Outcome::Done => (
                    row.action,
                    "done",
                    row.action.tier_after(row.tier).map(|t| t.as_str()),
                    None,
                ),
                Outcome::Failed => (row.action, "failed", here, row.error.as_deref()),
                Outcome::Skipped => (row.action, "skipped", here, row.error.as_deref()),
                Outcome::Planned => (row.action, "not-started", here, report.error.as_deref()),
            }
        };
        let r = NewAudit {
            pass_id: &report.pass_id,
            dataset: &report.dataset,
            segment: &row.name,
            tier_before: row.tier.as_str(),
            tier_after,
            action: action.as_str(),
            outcome,
            reason: row.reason.as_deref(),
            detail,
            plugin,
            bytes: row.bytes,
        };
        insert_audit(tx, &at, &r)?;
    }
    for e in &report.purged {
        let expired = chrono::DateTime::from_timestamp_millis(e.expires_at_ms)
            .map_or_else(|| e.expires_at_ms.to_string(), |t| t.to_rfc3339());
        let reason = format!("its grace period ended at {expired}");
        let detail = format!("dropped from the {} tier", e.tier.as_str());
        let r = NewAudit {
            pass_id: &report.pass_id,
            dataset: &report.dataset,
            segment: &e.name,
            tier_before: "trash",
            tier_after: None,
            action: "purge",
            outcome: "done",
            reason: Some(&reason),
            detail: Some(&detail),
            plugin,
            bytes: e.bytes,
        };
        insert_audit(tx, &at, &r)?;
    }
    Ok(())
}

/// One action of a pending plan, as stored.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct PendingAction<'a> {
    segment: std::borrow::Cow<'a, str>,
    tier: std::borrow::Cow<'a, str>,
    action: std::borrow::Cow<'a, str>,
    bytes: u64,
    reason: Option<std::borrow::Cow<'a, str>>,
}

/// The detail of an `interrupted` audit record.
const INTERRUPTED: &str = "the process ended during this pass (killed or crashed) before recording it: the action may \
                           or may not have been applied; where the segment is now tells";

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

/// A shadow of a dataset (shadow mode), as recorded: the latest row of a dataset is its current shadow unless ended.
#[derive(Debug, Clone, Serialize)]
pub struct ShadowRow {
    pub id: i64,
    pub dataset: String,
    /// `config` (from `[dataset.shadow]`) or `api`.
    pub source: String,
    /// The shadow's plugin name.
    pub plugin: String,
    /// Passes it was given.
    pub passes: u32,
    /// Real passes that will still run it; 0 when used up (it can still be promoted or discarded).
    pub passes_left: u32,
    /// The `[dataset.shadow]` this row stands for (`plugin:passes`): a config shadow that was ended does not come
    /// back until the config's shadow changes. For an API shadow, the config's shadow when it was set.
    #[serde(skip)]
    pub config_key: Option<String>,
    pub set_at: String,
    /// When it was promoted or discarded.
    pub ended_at: Option<String>,
    /// `promoted` or `discarded`.
    pub ended_how: Option<String>,
}

/// One recorded shadow comparison (its JSON as written by the service).
#[derive(Debug, Clone)]
pub struct ShadowResult {
    pub pass_id: String,
    pub at: String,
    pub comparison: String,
}

/// One line of the audit trail: an action applied, failed, overridden by a hold or refused by a guard.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    /// Position in the trail; the paging cursor.
    pub seq: i64,
    /// When it was recorded (the end of its pass).
    pub at: String,
    pub pass_id: String,
    pub dataset: String,
    pub segment: String,
    pub tier_before: Option<String>,
    /// `None` when the segment is gone (a drop) or did not change.
    pub tier_after: Option<String>,
    /// What was decided: `compress`, `archive`, `drop` (the plugin's decision, also when overridden).
    pub action: String,
    /// `done`, `trashed`, `failed`, `overridden` (by a hold), `refused` (by a guard), `not-started` (shutdown),
    /// `interrupted` (the process died during the pass); `purging`, written before a purge.
    pub outcome: String,
    /// The plugin's reason.
    pub reason: Option<String>,
    /// The error, the hold or the guard.
    pub detail: Option<String>,
    pub plugin_name: Option<String>,
    pub plugin_version: Option<String>,
    pub plugin_digest: Option<String>,
    /// Bytes of the segment before the action.
    pub bytes: u64,
}

/// Filters of an audit query; `None` matches everything.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFilter {
    pub dataset: Option<String>,
    pub segment: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<String>,
    pub pass_id: Option<String>,
}

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

    /// The latest shadow row of a dataset (ended or not), if any.
    pub fn latest_shadow(&self, dataset: &str) -> Result<Option<ShadowRow>, StateError> {
        self.conn()
            .query_row(
                "SELECT id, dataset, source, plugin, passes, passes_left, config_key, set_at, ended_at, ended_how
                 FROM shadows WHERE dataset = ?1 ORDER BY id DESC LIMIT 1",
                params![dataset],
                |r| {
                    Ok(ShadowRow {
                        id: r.get(0)?,
                        dataset: r.get(1)?,
                        source: r.get(2)?,
                        plugin: r.get(3)?,
                        passes: r.get(4)?,
                        passes_left: r.get(5)?,
                        config_key: r.get(6)?,
                        set_at: r.get(7)?,
                        ended_at: r.get(8)?,
                        ended_how: r.get(9)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Starts a new shadow for a dataset (the previous one, if any, is superseded); returns it.
    pub fn start_shadow(
        &self,
        dataset: &str,
        source: &str,
        plugin: &str,
        passes: u32,
        config_key: Option<&str>,
    ) -> Result<ShadowRow, StateError> {
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        {
            let conn = self.conn();
            conn.execute(
                "INSERT INTO shadows (dataset, source, plugin, passes, passes_left, config_key, set_at)
                 VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6)",
                params![dataset, source, plugin, passes, config_key, at],
            )
            .map_err(|e| self.err(e))?;
        }
        Ok(self.latest_shadow(dataset)?.expect("the shadow was just written"))
    }

    /// Ends a shadow (`how`: `promoted` or `discarded`).
    pub fn end_shadow(&self, id: i64, how: &str) -> Result<(), StateError> {
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        self.conn()
            .execute(
                "UPDATE shadows SET ended_at = ?2, ended_how = ?3 WHERE id = ?1 AND ended_at IS NULL",
                params![id, at, how],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Records a pass's shadow comparison and counts the pass against the shadow's remaining passes (one
    /// transaction). The pass must be recorded first.
    pub fn record_shadow_result(
        &self,
        pass_id: &str,
        shadow_id: i64,
        dataset: &str,
        comparison: &str,
    ) -> Result<(), StateError> {
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        tx.execute(
            "INSERT OR REPLACE INTO shadow_results (pass_id, shadow_id, dataset, at, comparison)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![pass_id, shadow_id, dataset, at, comparison],
        )
        .map_err(|e| self.err(e))?;
        tx.execute(
            "UPDATE shadows SET passes_left = passes_left - 1 WHERE id = ?1 AND passes_left > 0",
            params![shadow_id],
        )
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(())
    }

    /// A shadow's comparisons, newest first.
    pub fn shadow_results(&self, shadow_id: i64, limit: u32) -> Result<Vec<ShadowResult>, StateError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT pass_id, at, comparison FROM shadow_results WHERE shadow_id = ?1 ORDER BY rowid DESC LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![shadow_id, limit], |r| {
                Ok(ShadowResult {
                    pass_id: r.get(0)?,
                    at: r.get(1)?,
                    comparison: r.get(2)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Records trash entries about to be purged (outcome `purging`), before the purge: a crash after it leaves a
    /// record of every segment that may be gone.
    pub fn record_purge_intent(
        &self,
        pass_id: &str,
        dataset: &str,
        entries: &[crate::store::TrashEntry],
    ) -> Result<(), StateError> {
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        for e in entries {
            let detail = format!("dropped from the {} tier", e.tier.as_str());
            let r = NewAudit {
                pass_id,
                dataset,
                segment: &e.name,
                tier_before: "trash",
                tier_after: None,
                action: "purge",
                outcome: "purging",
                reason: Some("its grace period ended"),
                detail: Some(&detail),
                plugin: None,
                bytes: e.bytes,
            };
            insert_audit(&tx, &at, &r).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Keeps the plan of a pass about to apply it, as pending until [`StateDb::record_pass`] records the pass (one
    /// row, the plan zstd-compressed). Called with the dataset's lock held (see `lock.rs`).
    pub fn record_pending(
        &self,
        report: &PassReport,
        actions: &[crate::pass::PlannedAction<'_>],
    ) -> Result<(), StateError> {
        let plan: Vec<PendingAction<'_>> = actions
            .iter()
            .map(|a| PendingAction {
                segment: a.segment.into(),
                tier: a.tier.as_str().into(),
                action: a.action.as_str().into(),
                bytes: a.bytes,
                reason: a.reason.map(Into::into),
            })
            .collect();
        let json = serde_json::to_vec(&plan).map_err(|e| StateError::Encode(e.to_string()))?;
        let plan_zst = zstd::bulk::compress(&json, 3).map_err(|e| StateError::Encode(e.to_string()))?;
        let plugin = report.plugin.as_ref();
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO pending_passes
                     (pass_id, dataset, started_at, plugin_name, plugin_version, plugin_digest, plan_zst)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    report.pass_id,
                    report.dataset,
                    report.started_at,
                    plugin.map(|p| &p.name),
                    plugin.map(|p| &p.version),
                    plugin.map(|p| &p.digest),
                    plan_zst,
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// A hook for [`crate::pass::PassOptions::before_apply`] that keeps the plan here as pending.
    pub fn apply_hook(self: &std::sync::Arc<Self>) -> crate::pass::ApplyHook {
        let me = self.clone();
        std::sync::Arc::new(move |report, actions| me.record_pending(report, actions).map_err(|e| e.to_string()))
    }

    /// Records the actions of `dataset`'s passes that died while applying their plan (still pending: their process
    /// ended before recording them), as audit records with outcome `interrupted`, and forgets them. Returns how many
    /// actions were recorded. Must be called with the dataset's lock held, so that no pending pass is alive.
    pub fn settle_interrupted(&self, dataset: &str) -> Result<usize, StateError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        type Row = (String, Option<String>, Option<String>, Option<String>, Vec<u8>);
        let pending: Vec<Row> = {
            let mut st = tx
                .prepare(
                    "SELECT pass_id, plugin_name, plugin_version, plugin_digest, plan_zst FROM pending_passes
                     WHERE dataset = ?1 ORDER BY started_at",
                )
                .map_err(|e| self.err(e))?;
            let rows = st
                .query_map(params![dataset], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
                .map_err(|e| self.err(e))?;
            rows.collect::<Result<_, _>>().map_err(|e| self.err(e))?
        };
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut settled = 0;
        for (pass_id, name, version, digest, plan_zst) in pending {
            let plan: Vec<PendingAction<'static>> = zstd::decode_all(&plan_zst[..])
                .map_err(|e| e.to_string())
                .and_then(|json| serde_json::from_slice(&json).map_err(|e| e.to_string()))
                .map_err(|e| StateError::Encode(format!("pending pass {pass_id}: {e}")))?;
            let plugin = match (name, version, digest) {
                (Some(name), Some(version), Some(digest)) => {
                    Some(crate::plugin::PluginVersion { name, version, digest })
                }
                _ => None,
            };
            for a in &plan {
                let r = NewAudit {
                    pass_id: &pass_id,
                    dataset,
                    segment: &a.segment,
                    tier_before: &a.tier,
                    tier_after: None,
                    action: &a.action,
                    outcome: "interrupted",
                    reason: a.reason.as_deref(),
                    detail: Some(INTERRUPTED),
                    plugin: plugin.as_ref(),
                    bytes: a.bytes,
                };
                insert_audit(&tx, &at, &r).map_err(|e| self.err(e))?;
            }
            settled += plan.len();
            tx.execute("DELETE FROM pending_passes WHERE pass_id = ?1", params![pass_id])
                .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(settled)
    }

    /// A hook for [`crate::pass::PassOptions::before_purge`] that records purge intents here.
    pub fn purge_hook(self: &std::sync::Arc<Self>) -> crate::pass::PurgeHook {
        let me = self.clone();
        std::sync::Arc::new(move |pass_id, dataset, entries| {
            me.record_purge_intent(pass_id, dataset, entries)
                .map_err(|e| e.to_string())
        })
    }

    /// Records a segment restored from the trash (`by`: who asked, e.g. `api` or `cli`).
    pub fn record_restore(&self, dataset: &str, e: &crate::store::TrashEntry, by: &str) -> Result<(), StateError> {
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let detail = format!("restored through the {by}");
        let r = NewAudit {
            pass_id: "",
            dataset,
            segment: &e.name,
            tier_before: "trash",
            tier_after: Some(e.tier.as_str()),
            action: "restore",
            outcome: "done",
            reason: None,
            detail: Some(&detail),
            plugin: None,
            bytes: e.bytes,
        };
        insert_audit(&self.conn(), &at, &r).map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The audit trail, newest first, after the filters; `before` is the `seq` cursor of the previous page.
    pub fn audit(&self, f: &AuditFilter, before: Option<i64>, limit: u32) -> Result<Vec<AuditRecord>, StateError> {
        self.audit_query(f, "seq < ?6 ORDER BY seq DESC", before.unwrap_or(i64::MAX), limit)
    }

    /// The audit trail, oldest first, from `after` (exclusive), for exporting in pages.
    pub fn audit_after(&self, f: &AuditFilter, after: i64, limit: u32) -> Result<Vec<AuditRecord>, StateError> {
        self.audit_query(f, "seq > ?6 ORDER BY seq ASC", after, limit)
    }

    fn audit_query(
        &self,
        f: &AuditFilter,
        order: &str,
        cursor: i64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StateError> {
        let conn = self.conn();
        let sql = format!(
            "SELECT seq, at, pass_id, dataset, segment, tier_before, tier_after, action, outcome, reason, detail,
                    plugin_name, plugin_version, plugin_digest, bytes FROM audit
             WHERE (?1 IS NULL OR dataset = ?1) AND (?2 IS NULL OR segment = ?2) AND (?3 IS NULL OR action = ?3)
               AND (?4 IS NULL OR outcome = ?4) AND (?5 IS NULL OR pass_id = ?5) AND {order} LIMIT ?7"
        );
        let mut stmt = conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(
                params![f.dataset, f.segment, f.action, f.outcome, f.pass_id, cursor, limit],
                |r| {
                    Ok(AuditRecord {
                        seq: r.get(0)?,
                        at: r.get(1)?,
                        pass_id: r.get(2)?,
                        dataset: r.get(3)?,
                        segment: r.get(4)?,
                        tier_before: r.get(5)?,
                        tier_after: r.get(6)?,
                        action: r.get(7)?,
                        outcome: r.get(8)?,
                        reason: r.get(9)?,
                        detail: r.get(10)?,
                        plugin_name: r.get(11)?,
                        plugin_version: r.get(12)?,
                        plugin_digest: r.get(13)?,
                        bytes: r.get::<_, i64>(14)? as u64,
                    })
                },
            )
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
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

#[cfg(test)]
mod tests;
