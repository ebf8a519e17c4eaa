//! The audit trail: one record per action of a recorded pass, `purging` records before a purge, restores, and the
//! pending plan of a pass in progress, turned into `interrupted` records when its process died. Never pruned.

use rusqlite::{Connection, params};
use serde::Serialize;

use super::{StateDb, StateError};
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
pub(super) fn record_audit(tx: &rusqlite::Transaction<'_>, report: &PassReport) -> rusqlite::Result<()> {
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

impl StateDb {
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

    /// Records a restore from the archive (`retention archive restore`).
    pub fn record_unarchive(&self, dataset: &str, r: &crate::store::Restored, by: &str) -> Result<(), StateError> {
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let detail = match r.rows {
            Some(n) => format!("restored from the archive through the {by}: {n} rows"),
            None => format!("restored from the archive through the {by}"),
        };
        let rec = NewAudit {
            pass_id: "",
            dataset,
            segment: &r.name,
            tier_before: "archived",
            tier_after: Some("hot"),
            action: "restore",
            outcome: "done",
            reason: None,
            detail: Some(&detail),
            plugin: None,
            bytes: r.bytes,
        };
        insert_audit(&self.conn(), &at, &rec).map_err(|e| self.err(e))?;
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
}
