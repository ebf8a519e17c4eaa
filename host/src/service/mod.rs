//! `retention serve`: the long-running service. Cron schedules start passes, the plugin directory is watched and
//! hot-swapped, config reloads on SIGHUP or through the API, every pass is recorded in the state database and counted
//! in the metrics, and SIGTERM/SIGINT stop it gracefully.
//!
//! [`Service`] owns the moving parts; the command line (`cli/serve.rs`) wires it to signals and the admin API (which
//! lives in `api/`: this module knows nothing of HTTP, nor of the command line).

pub mod plugins;
pub mod scheduler;
pub mod shadows;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, ConfigError};
use crate::execute::{self, PassRequest};
use crate::metrics::Metrics;
use crate::pass::report::PassReport;
use crate::plugin::Runtime;
use crate::state::{PassRow, StateDb};
use plugins::PluginDir;
use scheduler::{Clock, Runner, Tick};

/// Locks a mutex of the service's. A panic while holding one cannot leave its data half-changed (every critical
/// section is a few assignments), so a poisoned lock is taken as is rather than taking the service down.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What started a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Schedule,
    Api,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Api => "api",
        }
    }
}

/// Why a pass could not be started.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    #[error("no dataset {0:?} in the running config")]
    UnknownDataset(String),
    #[error("dataset {0:?} already has a pass running")]
    Busy(String),
    #[error("the service is shutting down")]
    ShuttingDown,
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error("cannot start the plugin runtime: {0:#}")]
    Runtime(anyhow::Error),
}

/// A dataset as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetStatus {
    pub name: String,
    pub plugin: String,
    /// The cron expression, if scheduled.
    pub schedule: Option<String>,
    pub next_run: Option<String>,
    pub running: bool,
    /// Scheduled ticks skipped since start because a pass was still running.
    pub ticks_skipped: u64,
    pub params: Vec<(String, String)>,
    pub store: String,
    pub apply_parallelism: usize,
    pub max_drop_bytes_fraction: f64,
    pub max_drop_segments_fraction: f64,
    pub keep_newest: u64,
    pub min_drop_age_secs: u64,
    /// Legal holds in force on the dataset.
    pub holds: Vec<crate::pass::hold::Hold>,
    /// The latest recorded pass (from the state database, so it survives restarts).
    pub last_pass: Option<PassRow>,
    /// The current shadow (shadow mode), with the comparison of its latest pass.
    pub shadow: Option<shadows::ShadowStatus>,
}

#[derive(Debug, Default)]
struct DatasetRuntime {
    running: bool,
    next_run: Option<DateTime<Utc>>,
    ticks_skipped: u64,
}

/// What a config reload did.
#[derive(Debug, Clone, Serialize)]
pub struct Reloaded {
    pub datasets: Vec<String>,
    /// Changes that take effect only after a restart.
    pub needs_restart: Vec<String>,
}

/// The running service.
pub struct Service {
    config_path: PathBuf,
    config: ArcSwap<Config>,
    /// Serialises reloads (SIGHUP and the API may race).
    reload_lock: tokio::sync::Mutex<()>,
    /// Serialises changes of shadows (a config shadow is recorded when first looked at).
    shadow_lock: Mutex<()>,
    pub plugins: Arc<PluginDir>,
    pub state: Arc<StateDb>,
    pub metrics: Arc<Metrics>,
    datasets: Mutex<HashMap<String, DatasetRuntime>>,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
    passes: TaskTracker,
    /// Cancels the current generation of schedule tasks (replaced on reload).
    schedules: Mutex<CancellationToken>,
    ready: AtomicBool,
    /// The plugin directory watcher; dropping it stops the events.
    watcher: Mutex<Option<notify::RecommendedWatcher>>,
    me: std::sync::Weak<Service>,
}

impl Service {
    /// Opens the state database and the plugin runtime. Nothing runs until [`Service::start`].
    pub fn new(config_path: &Path, config: Config, clock: Arc<dyn Clock>) -> Result<Arc<Service>, StartError> {
        let state = Arc::new(StateDb::open(&config.service.state_dir)?);
        let metrics = Arc::new(Metrics::new());
        let mut limits = config.runtime.clone();
        // Compiled code lives in the state directory, keyed by digest and engine; never next to the plugins.
        if limits.compile_cache {
            limits.cache_dir = Some(config.service.state_dir.join("compiled"));
        }
        let runtime = Runtime::new(limits).map_err(StartError::Runtime)?;
        let plugins = Arc::new(PluginDir::new(
            config.plugin_dir.clone(),
            runtime,
            state.clone(),
            metrics.clone(),
        ));
        plugins.set_users(&config);
        Ok(Arc::new_cyclic(|me| Service {
            config_path: config_path.to_path_buf(),
            config: ArcSwap::from_pointee(config),
            reload_lock: tokio::sync::Mutex::new(()),
            shadow_lock: Mutex::new(()),
            plugins,
            state,
            metrics,
            datasets: Mutex::new(HashMap::new()),
            clock,
            shutdown: CancellationToken::new(),
            passes: TaskTracker::new(),
            schedules: Mutex::new(CancellationToken::new()),
            ready: AtomicBool::new(false),
            watcher: Mutex::new(None),
            me: me.clone(),
        }))
    }

    fn arc(&self) -> Arc<Service> {
        self.me.upgrade().expect("the service is alive while its methods run")
    }

    /// Loads the plugin directory, starts watching it and starts the schedules. Ready afterwards.
    pub async fn start(&self) -> anyhow::Result<()> {
        self.plugins.scan().await;
        let watcher = self
            .plugins
            .watch(self.shutdown.clone())
            .map_err(|e| anyhow::anyhow!("cannot watch plugin directory {}: {e}", self.plugins.dir().display()))?;
        *lock(&self.watcher) = Some(watcher);
        self.start_schedules();
        self.ready.store(true, Ordering::SeqCst);
        Ok(())
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst) && !self.shutdown.is_cancelled()
    }

    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    fn start_schedules(&self) {
        let stop = self.shutdown.child_token();
        let old = std::mem::replace(&mut *lock(&self.schedules), stop.clone());
        old.cancel();
        let config = self.config.load_full();
        let mut rt = lock(&self.datasets);
        rt.retain(|name, r| r.running || config.dataset(name).is_some());
        for ds in &config.datasets {
            let entry = rt.entry(ds.name.clone()).or_default();
            entry.next_run = None;
            if let Some((_, schedule)) = &ds.schedule {
                let runner: Arc<dyn Runner> = self.arc();
                tokio::spawn(scheduler::run_schedule(
                    ds.name.clone(),
                    schedule.clone(),
                    self.clock.clone(),
                    runner,
                    stop.clone(),
                ));
            }
        }
    }

    /// Re-reads the config file. On any error the running config stays as it was and the error is returned; on
    /// success the new datasets, schedules and parameters apply from the next pass, and the plugin directory is
    /// rescanned.
    pub async fn reload_config(&self) -> Result<Reloaded, ConfigError> {
        let _one = self.reload_lock.lock().await;
        let new = Config::load_service(&self.config_path)?;
        let old = self.config.load_full();
        let mut needs_restart = Vec::new();
        if new.plugin_dir != old.plugin_dir {
            needs_restart.push(format!("plugin_dir (running: {})", old.plugin_dir.display()));
        }
        if new.service != old.service {
            needs_restart.push("[service]".to_string());
        }
        let (a, b) = (&new.runtime, &old.runtime);
        if a.memory_limit_bytes != b.memory_limit_bytes
            || a.call_timeout != b.call_timeout
            || a.batch_size != b.batch_size
            || a.compile_cache != b.compile_cache
        {
            needs_restart.push("[runtime]".to_string());
        }
        for n in &needs_restart {
            tracing::warn!("config reload: {n} changed; it takes effect at the next restart");
        }
        let datasets = new.datasets.iter().map(|d| d.name.clone()).collect();
        // Keep what needs a restart as it runs, so that the typed config matches what is in effect.
        let effective = Config {
            plugin_dir: old.plugin_dir.clone(),
            runtime: old.runtime.clone(),
            service: old.service.clone(),
            datasets: new.datasets,
        };
        self.plugins.set_users(&effective);
        self.config.store(Arc::new(effective));
        self.start_schedules();
        self.plugins.scan().await;
        tracing::info!("config reloaded");
        Ok(Reloaded {
            datasets,
            needs_restart,
        })
    }

    /// Starts a pass unless the dataset already runs one; the pass runs to its end even if the caller goes away.
    fn begin_pass(
        &self,
        dataset: &str,
        trigger: Trigger,
        dry_run: bool,
        force: bool,
    ) -> Result<tokio::task::JoinHandle<PassReport>, TriggerError> {
        if self.shutdown.is_cancelled() {
            return Err(TriggerError::ShuttingDown);
        }
        if self.config.load().dataset(dataset).is_none() {
            return Err(TriggerError::UnknownDataset(dataset.to_string()));
        }
        {
            let mut rt = lock(&self.datasets);
            let entry = rt.entry(dataset.to_string()).or_default();
            if entry.running {
                if trigger == Trigger::Schedule {
                    entry.ticks_skipped += 1;
                    self.metrics.tick_skipped(dataset);
                }
                return Err(TriggerError::Busy(dataset.to_string()));
            }
            entry.running = true;
        }
        let me = self.arc();
        let name = dataset.to_string();
        Ok(self.passes.spawn(async move {
            let report = me.execute(&name, trigger, dry_run, force).await;
            if let Some(r) = lock(&me.datasets).get_mut(&name) {
                r.running = false;
            }
            report
        }))
    }

    /// Runs a pass now (the API's trigger) and returns its report. `force` lets it past the fraction guards.
    pub async fn trigger(&self, dataset: &str, dry_run: bool, force: bool) -> Result<PassReport, TriggerError> {
        let handle = self.begin_pass(dataset, Trigger::Api, dry_run, force)?;
        handle.await.map_err(|_| TriggerError::ShuttingDown)
    }

    async fn execute(&self, name: &str, trigger: Trigger, dry_run: bool, force: bool) -> PassReport {
        let config = self.config.load_full();
        let now = self.clock.now();
        let now_s = now.to_rfc3339_opts(SecondsFormat::Millis, true);
        // Shadow mode runs in real passes only: a dry run is already a look without acting.
        // Whether `execute::pass` recorded the pass (a real pass that ran); one that did not start is recorded here.
        let mut recorded = false;
        let (shadow_row, shadow) = match config.dataset(name) {
            Some(ds) if !dry_run => self.shadow_for_pass(ds).unzip(),
            _ => (None, None),
        };
        let report = match config.dataset(name) {
            None => PassReport::not_started(
                name,
                dry_run,
                &now_s,
                String::new(),
                "the dataset was removed from the config".into(),
            ),
            Some(ds) => match self.plugins.get(&ds.plugin) {
                Err(e) => PassReport::not_started(name, dry_run, &now_s, String::new(), e.to_string()),
                Ok(plugin) => match crate::store::open(&ds.store).await {
                    Err(e) => PassReport::not_started(name, dry_run, &now_s, String::new(), e.to_string()),
                    Ok(store) => {
                        let req = PassRequest {
                            dataset: ds,
                            store,
                            plugin,
                            dry_run,
                            now,
                            force,
                            purge_by_now: false,
                            cancel: Some(self.shutdown.clone()),
                            shadow,
                            trigger: trigger.as_str(),
                        };
                        match execute::pass(&config, &self.state, req, &|_| {}).await {
                            Ok(ran) => {
                                if let Err(e) = ran.recorded {
                                    tracing::error!(dataset = name, "cannot record the pass: {e}");
                                }
                                // `execute::pass` records real passes; the service's history has its dry runs too.
                                recorded = !dry_run;
                                ran.report
                            }
                            Err(e) => PassReport::not_started(name, dry_run, &now_s, String::new(), e.to_string()),
                        }
                    }
                },
            },
        };
        let plugin_file = config.dataset(name).map_or("", |d| d.plugin.as_str());
        self.metrics.pass_finished(&report, plugin_file);
        match &report.error {
            None => tracing::info!(
                dataset = name,
                pass = %report.pass_id,
                trigger = trigger.as_str(),
                dry_run,
                duration_ms = format!("{:.1}", report.duration_ms),
                compressed = report.stats.compressed.segments,
                archived = report.stats.archived.segments,
                dropped = report.stats.dropped.segments,
                failed = report.stats.failed,
                "pass finished"
            ),
            Some(e) => tracing::warn!(
                dataset = name,
                pass = %report.pass_id,
                trigger = trigger.as_str(),
                status = report.status.as_str(),
                "pass did not complete: {e}"
            ),
        }
        let shadow_record = match (&report.shadow, &shadow_row) {
            (Some(c), Some(row)) => {
                self.metrics.shadow_pass(name, c.ok());
                match &c.error {
                    None => tracing::info!(
                        dataset = name,
                        pass = %report.pass_id,
                        shadow = %row.plugin,
                        differing = c.differing,
                        "shadow plan compared"
                    ),
                    Some(e) => tracing::warn!(
                        dataset = name,
                        pass = %report.pass_id,
                        shadow = %row.plugin,
                        "shadow did not plan (the pass was not affected): {e}"
                    ),
                }
                serde_json::to_string(c)
                    .map_err(|e| tracing::error!(dataset = name, "cannot encode the shadow comparison: {e}"))
                    .ok()
                    .map(|json| (row.id, json))
            }
            _ => None,
        };
        let keep = config.service.history_passes;
        let state = self.state.clone();
        let report = Arc::new(report);
        let r = report.clone();
        let record = tokio::task::spawn_blocking(move || {
            // A pass that did not start, or a dry run, is still part of the service's history.
            if !recorded {
                state.record_pass(&r, trigger.as_str(), keep)?;
            }
            match shadow_record {
                Some((id, json)) => state.record_shadow_result(&r.pass_id, id, &r.dataset, &json),
                None => Ok(()),
            }
        })
        .await;
        match record {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(dataset = name, "cannot record the pass: {e}"),
            Err(e) => tracing::error!(dataset = name, "cannot record the pass: {e}"),
        }
        Arc::try_unwrap(report).unwrap_or_else(|shared| (*shared).clone())
    }

    /// Every dataset of the running config with its schedule and last pass.
    pub fn datasets(&self) -> Vec<DatasetStatus> {
        let config = self.config.load_full();
        config
            .datasets
            .iter()
            .filter_map(|d| self.dataset_status(&config, &d.name))
            .collect()
    }

    pub fn dataset(&self, name: &str) -> Option<DatasetStatus> {
        self.dataset_status(&self.config.load_full(), name)
    }

    fn dataset_status(&self, config: &Config, name: &str) -> Option<DatasetStatus> {
        let ds = config.dataset(name)?;
        let (running, next_run, ticks_skipped) = {
            let rt = lock(&self.datasets);
            rt.get(name)
                .map_or((false, None, 0), |r| (r.running, r.next_run, r.ticks_skipped))
        };
        let last_pass = self.state.last_pass(name).unwrap_or_else(|e| {
            tracing::error!("cannot read the pass history: {e}");
            None
        });
        Some(DatasetStatus {
            name: ds.name.clone(),
            plugin: ds.plugin.clone(),
            schedule: ds.schedule.as_ref().map(|(s, _)| s.clone()),
            next_run: next_run.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
            running,
            ticks_skipped,
            params: ds.params.clone(),
            store: ds.store.describe(),
            apply_parallelism: ds.apply_parallelism,
            max_drop_bytes_fraction: ds.guard.max_drop_bytes_fraction,
            max_drop_segments_fraction: ds.guard.max_drop_segments_fraction,
            keep_newest: ds.guard.keep_newest,
            min_drop_age_secs: ds.guard.min_drop_age.as_secs(),
            holds: self.state.holds(Some(name), false).unwrap_or_else(|e| {
                tracing::error!("cannot read the legal holds: {e}");
                Vec::new()
            }),
            last_pass,
            shadow: self.shadow_summary(ds),
        })
    }

    /// What a hold on `dataset` with `selector` selects now: `(segments, trash entries)`, from a read-only scan of the
    /// dataset and a listing of its trash (nothing is repaired or changed), after binding the dataset to this state
    /// database (see `Store::bind_state`). The error says why it cannot be told.
    pub async fn hold_reach(
        &self,
        dataset: &str,
        selector: &crate::pass::hold::Selector,
    ) -> Result<(u64, u64), String> {
        let config = self.config.load_full();
        let ds = config
            .dataset(dataset)
            .ok_or_else(|| format!("no dataset {dataset:?} in the running config"))?;
        let hold = crate::pass::hold::Hold {
            id: 0,
            dataset: dataset.to_string(),
            selector: selector.clone(),
            reason: String::new(),
            author: String::new(),
            created_at: String::new(),
            lifted_at: None,
            lifted_by: None,
        };
        let store = crate::store::open(&ds.store).await.map_err(|e| e.to_string())?;
        // A dataset with a hold belongs to this state database from now on: should the database be lost, passes
        // with a new one are refused rather than run without the hold.
        store
            .bind_state(dataset, self.state.id(), true)
            .await
            .map_err(|e| e.to_string())?;
        let mut symbols = crate::segment::Symbols::new();
        let (_, scan) = store.scan(false, &mut symbols).await.map_err(|e| e.to_string())?;
        let segments = scan.segments.iter().filter(|s| hold.selects(s, &symbols)).count() as u64;
        let trash = match store.trash() {
            Some(t) => t.list().await.map_err(|e| e.to_string())?,
            None => Vec::new(),
        };
        let entries = trash
            .iter()
            .filter(|e| {
                hold.selects_name(&e.name, |key| {
                    e.labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
                })
            })
            .count() as u64;
        Ok((segments, entries))
    }

    /// The label keys segments of `dataset` can have (a hold's label selector must name one).
    pub fn label_keys(&self, dataset: &str) -> Option<Vec<String>> {
        let config = self.config.load_full();
        Some(config.dataset(dataset)?.store.label_keys())
    }

    /// Stops the service: no new passes, schedules end, running passes stop at their next action boundary; waits up
    /// to the configured shutdown timeout. Returns whether every pass stopped in time.
    pub async fn shutdown(&self) -> bool {
        self.shutdown.cancel();
        self.passes.close();
        let timeout = self.config.load().service.shutdown_timeout;
        let clean = tokio::time::timeout(timeout, self.passes.wait()).await.is_ok();
        lock(&self.watcher).take();
        clean
    }

    /// Cancelled when shutdown begins.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

impl Runner for Service {
    fn tick(&self, dataset: &str) -> Tick {
        match self.begin_pass(dataset, Trigger::Schedule, false, false) {
            Ok(_) => Tick::Started,
            Err(TriggerError::Busy(_)) => Tick::Skipped,
            // Shutting down, or the dataset left the config between reload and tick: not a skip to count.
            Err(e) => {
                tracing::info!(dataset, "scheduled pass not started: {e}");
                Tick::NotStarted
            }
        }
    }

    fn next_run(&self, dataset: &str, at: Option<DateTime<Utc>>) {
        if let Some(r) = lock(&self.datasets).get_mut(dataset) {
            r.next_run = at;
        }
    }
}

/// What an operator should know about where the admin API listens: a non-loopback address is reachable from other
/// machines (reads are open to them, and the token travels in clear text unless a TLS proxy is in front).
pub fn exposure_warnings(service: &crate::config::ServiceConfig) -> Vec<String> {
    if service.listen.ip().is_loopback() {
        return Vec::new();
    }
    vec![format!(
        "the admin API listens on {}, reachable from other machines: its reads (datasets, legal holds, audit trail) \
         are open to anyone who can reach it, and the bearer token travels in clear text; put a TLS-terminating \
         proxy in front and firewall the port, or listen on 127.0.0.1",
        service.listen
    )]
}
