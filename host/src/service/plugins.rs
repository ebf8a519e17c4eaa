//! The plugin directory, hot-swapped: every `<name>.wasm` in it is a plugin that datasets name.
//!
//! A new file is loaded off the pass path (read, compile or take compiled code from the cache, check the world, call
//! `info`, run it on a small built-in batch with the parameters of every dataset that uses it) and only then swapped in,
//! atomically, with `arc-swap`. A pass takes the active version once ([`PluginDir::get`]) and keeps that `Arc` to the
//! end, so it never sees two versions. A plugin that fails any step is rejected with its reason recorded, and the
//! previous good version keeps serving; a removed file disables the datasets that use it.
//!
//! Files are picked up on the events that mean "complete": a rename into the directory, or the close of a file opened
//! for writing. A file still being copied in is not read until its writer closes it; if it is read half-written anyway
//! (a writer that closes and reopens), it fails to load and is rejected, and the next close loads it whole.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwapOption;
use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::lock;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::plugin::{Compiler, FailureKind, LoadSource, LoadedPlugin, PassInput, PluginError, Runtime};
use crate::segment::{Segment, Symbols, Tier};
use crate::state::{PluginEvent, StateDb};

/// Previous good versions kept per plugin for rollback.
const KEEP_PREVIOUS: usize = 4;

fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The plugin name of a file in the plugin directory: `<name>.wasm`, not hidden, not an editor or copy temporary.
pub fn plugin_name(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let stem = file.strip_suffix(".wasm")?;
    if stem.is_empty() || stem.starts_with(['.', '#', '~']) || stem.contains(['/', '\\']) {
        return None;
    }
    Some(stem.to_string())
}

/// Where a plugin stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginState {
    /// A good version is serving.
    Active,
    /// The file was removed: datasets that use it fail their passes until it is back.
    Removed,
    /// Every version seen so far was rejected: nothing serves.
    Rejected,
}

/// Why a version was refused.
#[derive(Debug, Clone, Serialize)]
pub struct Rejection {
    pub at: String,
    /// sha256 of the refused file's bytes (absent when it could not be read).
    pub digest: Option<String>,
    pub reason: String,
}

/// A loaded version and when it was swapped in.
#[derive(Clone)]
struct Version {
    plugin: Arc<LoadedPlugin>,
    loaded_at: String,
    source: LoadSource,
    load_ms: f64,
}

/// What the API shows of a plugin version.
#[derive(Debug, Clone, Serialize)]
pub struct VersionInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    pub digest: String,
    pub size_bytes: u64,
    pub loaded_at: String,
    /// Where the compiled code came from: `compiled`, `disk-cache` or `memory`.
    pub source: LoadSource,
    /// Which compiler's code serves: `winch` (baseline, a large plugin's first seconds) or `cranelift`.
    pub compiler: Compiler,
    /// Time from reading the file to the swap (compile or cache load, checks, trial batch).
    pub load_ms: f64,
}

impl Version {
    fn info(&self) -> VersionInfo {
        let m = &self.plugin.meta;
        VersionInfo {
            name: m.name.clone(),
            version: m.version.clone(),
            description: m.description.clone(),
            digest: m.digest.clone(),
            size_bytes: m.size_bytes,
            loaded_at: self.loaded_at.clone(),
            source: self.source,
            compiler: m.compiler,
            load_ms: self.load_ms,
        }
    }
}

/// A plugin as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PluginStatus {
    /// The file name without `.wasm`: what datasets name.
    pub plugin: String,
    pub state: PluginState,
    pub active: Option<VersionInfo>,
    /// Earlier good versions, newest first; `rollback` goes to the first.
    pub previous: Vec<VersionInfo>,
    pub last_rejection: Option<Rejection>,
    /// Datasets of the running config that use it.
    pub datasets: Vec<String>,
}

struct Slot {
    active: ArcSwapOption<LoadedPlugin>,
    meta: Mutex<SlotMeta>,
}

struct SlotMeta {
    state: PluginState,
    current: Option<Version>,
    previous: Vec<Version>,
    last_rejection: Option<Rejection>,
    /// Digest of the file last accepted from the directory. An unchanged file is not loaded again, so a rollback holds
    /// until a new file is written.
    file_digest: Option<String>,
    /// Digest of the file last rejected: the same bytes are not tried again (a rename gives several events) until the
    /// config changes (new parameters may make its trial pass).
    rejected_file: Option<String>,
}

/// Why a dataset's plugin cannot serve a pass.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Unavailable {
    #[error("no plugin {name:?}: there is no file {path}")]
    Missing { name: String, path: String },
    #[error("plugin {name:?} was removed from the plugin directory: its datasets are disabled until {path} is back")]
    Removed { name: String, path: String },
    #[error("plugin {name:?} has no good version (last rejection: {reason})")]
    Rejected { name: String, reason: String },
}

/// Why a rollback was refused.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error("no plugin {0:?}")]
    Unknown(String),
    #[error("plugin {0:?} has no previous version to roll back to")]
    NoPrevious(String),
    #[error("plugin {0:?} was removed from the plugin directory: write a file to serve it again")]
    Removed(String),
}

/// Per plugin, the datasets that use it and their parameters (for the trial batch).
type Users = HashMap<String, Vec<(String, Vec<(String, String)>)>>;

/// The plugin directory and the versions loaded from it.
pub struct PluginDir {
    dir: PathBuf,
    runtime: Arc<Runtime>,
    state: Arc<StateDb>,
    metrics: Arc<Metrics>,
    slots: Mutex<BTreeMap<String, Arc<Slot>>>,
    users: Mutex<Users>,
    /// Loads run one at a time, in the order their events came.
    load_lock: tokio::sync::Mutex<()>,
    /// Bumped after every swap, rejection or removal (tests and benchmarks wait on it).
    changes: tokio::sync::watch::Sender<u64>,
}

impl PluginDir {
    pub fn new(dir: PathBuf, runtime: Arc<Runtime>, state: Arc<StateDb>, metrics: Arc<Metrics>) -> PluginDir {
        PluginDir {
            dir,
            runtime,
            state,
            metrics,
            slots: Mutex::new(BTreeMap::new()),
            users: Mutex::new(HashMap::new()),
            load_lock: tokio::sync::Mutex::new(()),
            changes: tokio::sync::watch::channel(0).0,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Learns which datasets use which plugin, with what parameters (a config load or reload).
    pub fn set_users(&self, config: &Config) {
        let mut users = Users::new();
        for ds in &config.datasets {
            users
                .entry(ds.plugin.clone())
                .or_default()
                .push((ds.name.clone(), ds.params.clone()));
        }
        *lock(&self.users) = users;
        for slot in lock(&self.slots).values() {
            lock(&slot.meta).rejected_file = None;
        }
    }

    /// A receiver that sees a new value after every swap, rejection, removal or rollback.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn path_of(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.wasm"))
    }

    /// The active version of a plugin, pinned: the caller keeps this version however the directory changes.
    pub fn get(&self, name: &str) -> Result<Arc<LoadedPlugin>, Unavailable> {
        let slot = lock(&self.slots).get(name).cloned();
        let path = self.path_of(name).display().to_string();
        let Some(slot) = slot else {
            return Err(Unavailable::Missing {
                name: name.to_string(),
                path,
            });
        };
        if let Some(p) = slot.active.load_full() {
            return Ok(p);
        }
        let meta = lock(&slot.meta);
        Err(match meta.state {
            PluginState::Removed | PluginState::Active => Unavailable::Removed {
                name: name.to_string(),
                path,
            },
            PluginState::Rejected => Unavailable::Rejected {
                name: name.to_string(),
                reason: meta
                    .last_rejection
                    .as_ref()
                    .map_or_else(|| "unknown".into(), |r| r.reason.clone()),
            },
        })
    }

    fn slot(&self, name: &str) -> Arc<Slot> {
        lock(&self.slots)
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(Slot {
                    active: ArcSwapOption::empty(),
                    meta: Mutex::new(SlotMeta {
                        state: PluginState::Rejected,
                        current: None,
                        previous: Vec::new(),
                        last_rejection: None,
                        file_digest: None,
                        rejected_file: None,
                    }),
                })
            })
            .clone()
    }

    /// Loads every plugin file of the directory and disables plugins whose file is gone. Used at start-up and on
    /// reload; unchanged files cost a digest.
    pub async fn scan(&self) {
        let mut present = Vec::new();
        match std::fs::read_dir(&self.dir) {
            Ok(entries) => {
                for e in entries.flatten() {
                    if let Some(name) = plugin_name(&e.path())
                        && e.file_type().is_ok_and(|t| t.is_file() || t.is_symlink())
                    {
                        present.push(name);
                    }
                }
            }
            Err(e) => tracing::error!(dir = %self.dir.display(), "cannot list the plugin directory: {e}"),
        }
        present.sort();
        let known: Vec<String> = lock(&self.slots).keys().cloned().collect();
        for name in known.iter().filter(|n| !present.contains(n)) {
            self.sync(name).await;
        }
        for name in &present {
            self.sync(name).await;
        }
    }

    /// Brings one plugin in line with its file: loads a new version, or disables the plugin when the file is gone.
    pub async fn sync(&self, name: &str) {
        let _one_at_a_time = self.load_lock.lock().await;
        let path = self.path_of(name);
        let started = Instant::now();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.removed(name);
                return;
            }
            Err(e) => {
                self.reject(name, None, format!("cannot read {}: {e}", path.display()));
                return;
            }
        };
        let digest = hex::encode(Sha256::digest(&bytes));
        let slot = self.slot(name);
        {
            let meta = lock(&slot.meta);
            if meta.state == PluginState::Active && meta.file_digest.as_deref() == Some(&digest) {
                return; // The file already loaded (a touch, a rescan), or rolled back from.
            }
            if meta.rejected_file.as_deref() == Some(&digest) {
                return; // Rejected already, and nothing changed since.
            }
        }
        let users = lock(&self.users).get(name).cloned().unwrap_or_default();
        let runtime = self.runtime.clone();
        let shown = path.display().to_string();
        let bytes = Arc::new(bytes);
        let loaded = {
            let (bytes, users) = (bytes.clone(), users.clone());
            tokio::task::spawn_blocking(move || {
                // The baseline compiler's code for a large plugin: serving in a second or two, not ten.
                let (plugin, source) = runtime.load_quick(&bytes, &shown)?;
                trial(&plugin, &users)?;
                Ok::<_, PluginError>((plugin, source))
            })
            .await
        };
        match loaded {
            Ok(Ok((plugin, source))) => {
                let quick = plugin.meta.compiler == Compiler::Winch;
                self.swap_in(name, &slot, plugin, source, started);
                if quick {
                    self.optimize(name, slot, bytes, users);
                }
            }
            Ok(Err(e)) => {
                if let Some(kind) = e.kind() {
                    self.metrics.plugin_failed(name, kind);
                }
                self.reject(name, Some(digest), e.to_string());
            }
            Err(e) => self.reject(name, Some(digest), format!("loading task failed: {e}")),
        }
    }

    fn swap_in(&self, name: &str, slot: &Slot, plugin: Arc<LoadedPlugin>, source: LoadSource, started: Instant) {
        let version = Version {
            plugin: plugin.clone(),
            loaded_at: now_rfc3339(),
            source,
            load_ms: started.elapsed().as_secs_f64() * 1e3,
        };
        {
            let mut meta = lock(&slot.meta);
            if let Some(old) = meta.current.take() {
                meta.previous.insert(0, old);
                meta.previous.truncate(KEEP_PREVIOUS);
            }
            // A version that comes back is the current one, not also a previous one.
            meta.previous.retain(|v| v.plugin.meta.digest != plugin.meta.digest);
            meta.current = Some(version.clone());
            meta.state = PluginState::Active;
            meta.file_digest = Some(plugin.meta.digest.clone());
            slot.active.store(Some(plugin.clone()));
        }
        let m = &plugin.meta;
        tracing::info!(
            plugin = %name,
            name = %m.name,
            version = %m.version,
            digest = %m.digest,
            source = %source.as_str(),
            load_ms = %format!("{:.1}", version.load_ms),
            "plugin loaded"
        );
        self.metrics.plugin_event(name, "loaded");
        self.metrics.plugin_compiled(name, source.as_str());
        self.metrics.plugin_active(name, Some(m));
        self.record(PluginEvent {
            at: version.loaded_at.clone(),
            plugin: name.to_string(),
            event: "loaded".into(),
            digest: Some(m.digest.clone()),
            version: Some(m.version.clone()),
            source: Some(source.as_str().into()),
            load_ms: Some(version.load_ms),
            reason: None,
        });
    }

    /// Compiles a version that serves on baseline code with Cranelift, on a thread of its own (passes and later
    /// loads go on meanwhile), and swaps the optimised code in if that version is still the current one. The same
    /// bytes and the same trial: it is the same version, with faster code. A failure here leaves the baseline code
    /// serving and is only logged.
    fn optimize(&self, name: &str, slot: Arc<Slot>, bytes: Arc<Vec<u8>>, users: Vec<(String, Vec<(String, String)>)>) {
        let runtime = self.runtime.clone();
        let metrics = self.metrics.clone();
        let changes = self.changes.clone();
        let shown = self.path_of(name).display().to_string();
        let thread_name = format!("optimize-{name}");
        let name = name.to_string();
        // A plain thread, not the runtime's blocking pool: a shutdown must not wait for a compile of seconds.
        let spawned = std::thread::Builder::new().name(thread_name).spawn(move || {
            let started = Instant::now();
            let optimized = runtime.load_bytes_traced(&bytes, &shown).and_then(|(plugin, _)| {
                trial(&plugin, &users)?;
                Ok(plugin)
            });
            let plugin = match optimized {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(plugin = %name, "cannot optimise the plugin, its baseline code keeps serving: {e}");
                    return;
                }
            };
            let mut meta = lock(&slot.meta);
            let Some(current) = meta.current.as_mut() else { return };
            if current.plugin.meta.digest != plugin.meta.digest || current.plugin.meta.compiler != Compiler::Winch {
                return; // A newer version (or a rollback) came first.
            }
            current.plugin = plugin.clone();
            slot.active.store(Some(plugin));
            drop(meta);
            tracing::info!(
                plugin = %name,
                compile_ms = %format!("{:.1}", started.elapsed().as_secs_f64() * 1e3),
                "plugin optimised: passes now run Cranelift's code"
            );
            metrics.plugin_event(&name, "optimized");
            changes.send_modify(|n| *n += 1);
        });
        if let Err(e) = spawned {
            tracing::warn!("cannot start optimising the plugin, its baseline code keeps serving: {e}");
        }
    }

    fn reject(&self, name: &str, digest: Option<String>, reason: String) {
        let slot = self.slot(name);
        let at = now_rfc3339();
        {
            let mut meta = lock(&slot.meta);
            meta.rejected_file = digest.clone();
            meta.last_rejection = Some(Rejection {
                at: at.clone(),
                digest: digest.clone(),
                reason: reason.clone(),
            });
            if meta.current.is_none() {
                meta.state = PluginState::Rejected;
            }
        }
        tracing::warn!(plugin = %name, "plugin rejected, the previous good version (if any) keeps serving: {reason}");
        self.metrics.plugin_event(name, "rejected");
        self.record(PluginEvent {
            at,
            plugin: name.to_string(),
            event: "rejected".into(),
            digest,
            version: None,
            source: None,
            load_ms: None,
            reason: Some(reason),
        });
    }

    fn removed(&self, name: &str) {
        let Some(slot) = lock(&self.slots).get(name).cloned() else {
            return;
        };
        {
            let mut meta = lock(&slot.meta);
            if meta.state == PluginState::Removed {
                return;
            }
            if let Some(old) = meta.current.take() {
                meta.previous.insert(0, old);
                meta.previous.truncate(KEEP_PREVIOUS);
            }
            meta.state = PluginState::Removed;
            meta.file_digest = None;
            meta.rejected_file = None;
            slot.active.store(None);
        }
        tracing::warn!(plugin = %name, "plugin file removed: datasets that use it are disabled");
        self.metrics.plugin_event(name, "removed");
        self.metrics.plugin_active(name, None);
        self.record(PluginEvent {
            at: now_rfc3339(),
            plugin: name.to_string(),
            event: "removed".into(),
            digest: None,
            version: None,
            source: None,
            load_ms: None,
            reason: None,
        });
    }

    /// Serves the previous good version again, until a new file is written into the directory. The directory stays
    /// the source of truth: a restart loads the file that is there.
    pub async fn rollback(&self, name: &str) -> Result<PluginStatus, RollbackError> {
        let _one_at_a_time = self.load_lock.lock().await;
        let slot = lock(&self.slots)
            .get(name)
            .cloned()
            .ok_or_else(|| RollbackError::Unknown(name.to_string()))?;
        let back = {
            let mut meta = lock(&slot.meta);
            if meta.state == PluginState::Removed {
                return Err(RollbackError::Removed(name.to_string()));
            }
            if meta.previous.is_empty() {
                return Err(RollbackError::NoPrevious(name.to_string()));
            }
            let mut back = meta.previous.remove(0);
            back.loaded_at = now_rfc3339();
            meta.current = Some(back.clone());
            meta.state = PluginState::Active;
            slot.active.store(Some(back.plugin.clone()));
            back
        };
        let m = &back.plugin.meta;
        tracing::info!(plugin = %name, version = %m.version, digest = %m.digest, "plugin rolled back");
        self.metrics.plugin_event(name, "rolled-back");
        self.metrics.plugin_active(name, Some(m));
        self.record(PluginEvent {
            at: back.loaded_at.clone(),
            plugin: name.to_string(),
            event: "rolled-back".into(),
            digest: Some(m.digest.clone()),
            version: Some(m.version.clone()),
            source: None,
            load_ms: None,
            reason: None,
        });
        Ok(self.status(name).expect("the slot exists"))
    }

    fn record(&self, event: PluginEvent) {
        if let Err(e) = self.state.record_plugin_event(&event) {
            tracing::error!("cannot record a plugin event: {e}");
        }
        self.changes.send_modify(|n| *n += 1);
    }

    /// Every plugin seen, by name.
    pub fn list(&self) -> Vec<PluginStatus> {
        let names: Vec<String> = lock(&self.slots).keys().cloned().collect();
        names.iter().filter_map(|n| self.status(n)).collect()
    }

    pub fn status(&self, name: &str) -> Option<PluginStatus> {
        let slot = lock(&self.slots).get(name).cloned()?;
        let datasets = lock(&self.users)
            .get(name)
            .map(|u| u.iter().map(|(d, _)| d.clone()).collect())
            .unwrap_or_default();
        let meta = lock(&slot.meta);
        Some(PluginStatus {
            plugin: name.to_string(),
            state: meta.state,
            active: if meta.state == PluginState::Active {
                meta.current.as_ref().map(Version::info)
            } else {
                None
            },
            previous: meta.previous.iter().map(Version::info).collect(),
            last_rejection: meta.last_rejection.clone(),
            datasets,
        })
    }

    /// Watches the directory and keeps the plugins in line with it until `stop`. The returned watcher must be kept
    /// alive for as long as watching should go on.
    pub fn watch(
        self: &Arc<Self>,
        stop: tokio_util::sync::CancellationToken,
    ) -> notify::Result<notify::RecommendedWatcher> {
        use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
        use notify::{RecursiveMode, Watcher};

        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Option<String>>();
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(event) => {
                if event.need_rescan() {
                    let _ = tx.send(None);
                    return;
                }
                // Only the events that mean a file is complete (renamed in, closed after writing) or gone.
                let complete = matches!(
                    event.kind,
                    EventKind::Access(AccessKind::Close(AccessMode::Write))
                        | EventKind::Modify(ModifyKind::Name(_))
                        | EventKind::Remove(_)
                );
                if complete {
                    for p in &event.paths {
                        if let Some(name) = plugin_name(p) {
                            let _ = tx.send(Some(name));
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!("plugin directory watch error, rescanning: {e}");
                let _ = tx.send(None);
            }
        })?;
        watcher.watch(&self.dir, RecursiveMode::NonRecursive)?;
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let first = tokio::select! {
                    _ = stop.cancelled() => return,
                    m = rx.recv() => match m { Some(m) => m, None => return },
                };
                // Collapse a burst (a rename gives from/to/both events) into one load per name.
                let mut todo = vec![first];
                while let Ok(m) = rx.try_recv() {
                    todo.push(m);
                }
                if todo.iter().any(Option::is_none) {
                    me.scan().await;
                    continue;
                }
                let mut names: Vec<String> = todo.into_iter().flatten().collect();
                names.dedup();
                let mut seen = std::collections::HashSet::new();
                for name in names {
                    if seen.insert(name.clone()) {
                        me.sync(&name).await;
                    }
                }
            }
        });
        Ok(watcher)
    }
}

/// Runs a freshly loaded plugin once on a small built-in batch, as a dry run, with the parameters of every dataset
/// that uses it (or none). Any failure rejects the version; with no dataset using it, a plugin may refuse the empty
/// parameters (it may need some) without being rejected.
fn trial(plugin: &LoadedPlugin, users: &[(String, Vec<(String, String)>)]) -> Result<(), PluginError> {
    let mut symbols = Symbols::new();
    let segments = Arc::new(trial_segments(&mut symbols));
    let now_ms = Utc::now().timestamp_millis();
    let none = [("(no dataset)".to_string(), Vec::new())];
    let runs: &[(String, Vec<(String, String)>)] = if users.is_empty() { &none } else { users };
    for (dataset, params) in runs {
        let input = PassInput {
            pass_id: "load-trial",
            dataset,
            now_ms,
            dry_run: true,
            params,
        };
        match plugin.plan(input, segments.clone(), &symbols) {
            Ok(_) => {}
            Err(e) if users.is_empty() && e.kind() == Some(FailureKind::Refused) => {}
            Err(PluginError::Call {
                plugin,
                call,
                kind,
                detail,
            }) => {
                return Err(PluginError::Call {
                    plugin,
                    call: format!("trial batch ({dataset}): {call}"),
                    kind,
                    detail,
                });
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Eight segments across tiers, ages, labels and names: a plugin that handles these handles the shape of real data.
fn trial_segments(symbols: &mut Symbols) -> Vec<Segment> {
    const DAY: i64 = 86_400_000;
    let now = Utc::now().timestamp_millis();
    let rows: [(&str, &str, &str, i64, Tier); 8] = [
        ("api", "info", "2020-01-01", 2_000, Tier::Archived),
        ("web", "debug", "2024-06-01", 500, Tier::Compressed),
        ("api", "error", "2025-01-01", 400, Tier::Compressed),
        ("web", "info", "2025-10-01", 60, Tier::Hot),
        ("api", "debug", "2025-11-20", 10, Tier::Hot),
        ("web", "error", "2025-11-28", 2, Tier::Hot),
        ("api", "info", "2025-11-29", 1, Tier::Hot),
        ("web", "info", "2025-11-30", 0, Tier::Hot),
    ];
    let (k_service, k_level, k_date) = (
        symbols.intern("service"),
        symbols.intern("level"),
        symbols.intern("date"),
    );
    rows.iter()
        .map(|&(service, level, date, age_days, tier)| {
            let t = now - age_days * DAY;
            let mut labels: crate::segment::Labels = [
                (k_service, symbols.intern(service)),
                (k_level, symbols.intern(level)),
                (k_date, symbols.intern(date)),
            ]
            .into_iter()
            .collect();
            labels.sort_by_key(|(k, _)| *k);
            Segment {
                name: format!("{service}/{level}-{date}.log"),
                tier,
                start_ms: t - DAY,
                end_ms: t,
                rows: None,
                bytes: 1_000 + age_days as u64,
                labels,
                locator: String::new(),
                token: Default::default(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_complete_non_hidden_wasm_files_are_plugins() {
        assert_eq!(plugin_name(Path::new("/p/tiering.wasm")).as_deref(), Some("tiering"));
        for ignored in [
            "/p/.tiering.wasm",
            "/p/tiering.wasm.tmp",
            "/p/tiering.wasm~",
            "/p/#tiering.wasm#",
            "/p/.wasm",
            "/p/tiering.cwasm",
            "/p/README",
        ] {
            assert_eq!(plugin_name(Path::new(ignored)), None, "{ignored}");
        }
    }
}
