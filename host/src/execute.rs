//! Running a pass, and restoring from the trash, the way every entry point must (`retention run`, the service's
//! schedules and API): what binds a pass to the state database is done here once.
//!
//! A pass: the state database must still be the file that was opened (`StateDb::check_present`) and its legal holds
//! readable, or no pass runs; a real pass holds the dataset's lock (and, under it, turns the pending plan of a pass
//! whose process died into `interrupted` audit records); the plan is kept as pending before anything is applied, a
//! purge is recorded before it happens, the store checks the dataset belongs to this database; a real pass is
//! recorded, report and audit records, when it ends. A restore is recorded in the audit trail once it is done.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, DatasetConfig};
use crate::pass::report::PassReport;
use crate::pass::shadow::ShadowRun;
use crate::pass::{self, PassEvent, PassOptions};
use crate::plugin::LoadedPlugin;
use crate::state::{StateDb, StateError};
use crate::store::{Store, StoreError, TrashEntry};

/// What a pass is asked to do.
pub struct PassRequest<'a> {
    pub dataset: &'a DatasetConfig,
    pub store: Arc<dyn Store>,
    pub plugin: Arc<LoadedPlugin>,
    pub dry_run: bool,
    /// The pass's now (the clock for the service; `--now` for `retention run`).
    pub now: DateTime<Utc>,
    /// Lets the plan past the fraction guards (never past holds or the other guards).
    pub force: bool,
    /// Purges the trash by a `now` ahead of the clock (`retention run --purge-by-now`).
    pub purge_by_now: bool,
    /// Graceful shutdown: the pass stops between the store's groups of actions.
    pub cancel: Option<CancellationToken>,
    /// A shadow version that plans beside the active one (real passes of the service only).
    pub shadow: Option<ShadowRun>,
    /// What started it, as recorded: `cli`, `schedule` or `api`.
    pub trigger: &'static str,
}

/// A pass that ran: its report, and whether recording it failed (a real pass is recorded; a dry run is not).
pub struct Ran {
    pub report: PassReport,
    pub recorded: Result<(), StateError>,
}

/// Why a pass did not start: the state database is gone or its holds unreadable, or another pass holds the dataset.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotStarted(pub String);

/// Runs one pass of a dataset with everything that binds it (see the module's docs), and records it.
pub async fn pass(
    config: &Config,
    state: &Arc<StateDb>,
    req: PassRequest<'_>,
    progress: &(dyn Fn(PassEvent) + Send + Sync),
) -> Result<Ran, NotStarted> {
    let name = &req.dataset.name;
    // A database removed since it was opened would run this pass without the holds on disk.
    let holds = state
        .check_present()
        .and_then(|()| state.holds(Some(name), false))
        .map_err(|e| NotStarted(format!("cannot read the legal holds, so no pass: {e}")))?;
    let _lock = match req.dry_run {
        true => None,
        false => Some(
            crate::lock::lock_for_pass(&config.service.state_dir, state, name)
                .map_err(|e| NotStarted(e.to_string()))?,
        ),
    };
    let opts = PassOptions {
        dry_run: req.dry_run,
        now: req.now,
        cancel: req.cancel,
        force: req.force,
        holds,
        before_purge: Some(state.purge_hook()),
        before_apply: Some(state.apply_hook()),
        shadow: req.shadow,
        state_id: Some(state.id().to_string()),
        purge_by_now: req.purge_by_now,
    };
    let report = pass::run(req.dataset, req.store, req.plugin, &opts, progress).await;
    // A dry run changes nothing and has nothing to audit; keeping it out of the history keeps it as cheap as a
    // listing. A real pass is recorded with its audit records, under the dataset's lock still.
    let recorded = match req.dry_run {
        true => Ok(()),
        false => {
            let (state, keep, trigger) = (state.clone(), config.service.history_passes, req.trigger);
            let report = Arc::new(report);
            let r = report.clone();
            let recorded = tokio::task::spawn_blocking(move || state.record_pass(&r, trigger, keep))
                .await
                .unwrap_or_else(|e| Err(StateError::Encode(format!("recording task failed: {e}"))));
            let report = Arc::try_unwrap(report).unwrap_or_else(|shared| (*shared).clone());
            return Ok(Ran { report, recorded });
        }
    };
    Ok(Ran { report, recorded })
}

/// Restores the trashed segment `name` of `dataset` and records it in the audit trail (`by`: `admin API`,
/// `command line`). The restore stands even when it cannot be recorded: the second value is then why.
pub async fn restore(
    state: Option<&StateDb>,
    dataset: &str,
    store: &dyn Store,
    name: &str,
    by: &str,
) -> Result<(TrashEntry, Option<String>), StoreError> {
    let Some(trash) = store.trash() else {
        return Err(StoreError::Refused(format!(
            "cannot restore {name:?}: {} keeps no trash",
            store.describe()
        )));
    };
    let entry = trash.restore(name).await?;
    let unrecorded = match state.map(|db| db.record_restore(dataset, &entry, by)) {
        Some(Ok(())) => None,
        Some(Err(e)) => Some(e.to_string()),
        None => Some("the state database could not be opened".to_string()),
    };
    Ok((entry, unrecorded))
}

/// Restores the archived segment `name` of `dataset` into the dataset and records it in the audit trail (`by`: `admin
/// API`, `command line`). The restore stands even when it cannot be recorded: the second value is then why.
pub async fn unarchive(
    state: Option<&StateDb>,
    dataset: &str,
    store: &dyn Store,
    name: &str,
    by: &str,
) -> Result<(crate::store::Restored, Option<String>), StoreError> {
    let Some(u) = store.unarchive() else {
        return Err(StoreError::Refused(format!(
            "cannot restore {name:?} from the archive: {} cannot restore archived segments (only a table dataset \
             with an archive_url can)",
            store.describe()
        )));
    };
    let r = u.restore(name).await?;
    let unrecorded = match state.map(|db| db.record_unarchive(dataset, &r, by)) {
        Some(Ok(())) => None,
        Some(Err(e)) => Some(e.to_string()),
        None => Some("the state database could not be opened".to_string()),
    };
    Ok((r, unrecorded))
}
