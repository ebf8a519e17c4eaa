//! Shadow mode in the service: which shadow a dataset has (the API's, else the config's), its remaining passes, its
//! comparisons, and promoting or discarding it. The plans and their comparison are `crate::pass::shadow`'s.
//!
//! A dataset's shadows are rows of the state database's `shadows` table; the latest row of a dataset is its current
//! shadow unless it was ended (promoted or discarded). A `[dataset.shadow]` of the config becomes a row the first time
//! it is looked at, keyed by its plugin and passes: once ended (by the API) it does not come back until the config's
//! shadow changes. A shadow set through the API wins over the config's until it is ended.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::Service;
use super::lock;
use super::plugins::PluginStatus;
use crate::config::{DatasetConfig, MAX_SHADOW_PASSES, is_plugin_name};
use crate::pass::shadow::{ShadowComparison, ShadowRun, Totals, Version};
use crate::state::{ShadowRow, StateError};

/// Comparisons shown by the API for a shadow, newest first.
pub const RECENT_COMPARISONS: u32 = 20;

/// Why a shadow request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ShadowError {
    #[error("no dataset {0:?} in the running config")]
    UnknownDataset(String),
    #[error("dataset {0:?} has no shadow")]
    NoShadow(String),
    /// A bad request (plugin name, passes).
    #[error("{0}")]
    Invalid(String),
    /// The request does not fit the shadow's state (never ran, failed, file changed since).
    #[error("{0}")]
    Conflict(String),
    #[error("cannot write plugin file {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    State(#[from] StateError),
}

/// A recorded comparison, with its pass.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedComparison {
    pub pass_id: String,
    /// When it was recorded (the end of its pass).
    pub at: String,
    #[serde(flatten)]
    pub comparison: ShadowComparison,
}

/// A dataset's shadow as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ShadowStatus {
    #[serde(flatten)]
    pub row: ShadowRow,
    /// The dataset's plugin, which the shadow would replace.
    pub active_plugin: String,
    /// `running` (passes left), `done` (no passes left: promote or discard it), `promoted` or `discarded`.
    pub state: &'static str,
    /// The comparison of its latest pass.
    pub latest: Option<RecordedComparison>,
}

/// What a promotion did.
#[derive(Debug, Clone, Serialize)]
pub struct Promoted {
    /// The shadow plugin whose bytes were promoted.
    pub from: String,
    /// The dataset's plugin file that now holds them.
    pub to: String,
    pub path: String,
    /// The version that ran in shadow and was written.
    pub version: Version,
    /// The dataset's plugin after the plugin directory loaded the file (a version that fails its load trial is
    /// rejected there, and the previous one keeps serving).
    pub plugin: Option<PluginStatus>,
}

fn state_of(row: &ShadowRow) -> &'static str {
    match (row.ended_how.as_deref(), row.passes_left) {
        (Some("promoted"), _) => "promoted",
        (Some(_), _) => "discarded",
        (None, 0) => "done",
        (None, _) => "running",
    }
}

fn config_key(ds: &DatasetConfig) -> Option<String> {
    ds.shadow.as_ref().map(|c| format!("{}:{}", c.plugin, c.passes))
}

impl Service {
    fn shadow_dataset(&self, name: &str) -> Result<DatasetConfig, ShadowError> {
        self.config()
            .dataset(name)
            .cloned()
            .ok_or_else(|| ShadowError::UnknownDataset(name.to_string()))
    }

    /// The dataset's current shadow (not ended; it may have no passes left), making the config's shadow a row when
    /// it is new.
    pub(super) fn current_shadow(&self, ds: &DatasetConfig) -> Result<Option<ShadowRow>, StateError> {
        let _one = lock(&self.shadow_lock);
        let latest = self.state.latest_shadow(&ds.name)?;
        let key = config_key(ds);
        match (latest, &ds.shadow) {
            (Some(r), _) if r.source == "api" && r.ended_at.is_none() => Ok(Some(r)),
            // The config's shadow as already recorded; an ended one (or one an API shadow superseded and that was
            // ended) stays ended until the config's shadow changes.
            (Some(r), Some(_)) if r.config_key == key => Ok(r.ended_at.is_none().then_some(r)),
            (_, Some(c)) => {
                let row = self
                    .state
                    .start_shadow(&ds.name, "config", &c.plugin, c.passes, key.as_deref())?;
                tracing::info!(dataset = %ds.name, shadow = %c.plugin, passes = c.passes, "shadow set by the config");
                Ok(Some(row))
            }
            // A config shadow that left the config is no shadow any more.
            _ => Ok(None),
        }
    }

    /// The shadow a real pass should run: the current one while it has passes left, pinned.
    pub(super) fn shadow_for_pass(&self, ds: &DatasetConfig) -> Option<(ShadowRow, ShadowRun)> {
        let row = match self.current_shadow(ds) {
            Ok(Some(r)) if r.passes_left > 0 => r,
            Ok(_) => return None,
            Err(e) => {
                // The pass goes on without its shadow: a shadow never costs the active pass.
                tracing::error!(dataset = %ds.name, "cannot read the dataset's shadow, none runs: {e}");
                return None;
            }
        };
        let run = ShadowRun {
            plugin: row.plugin.clone(),
            loaded: self.plugins.get(&row.plugin).map_err(|e| e.to_string()),
        };
        Some((row, run))
    }

    fn recorded(&self, shadow_id: i64, limit: u32) -> Result<Vec<RecordedComparison>, StateError> {
        let mut out = Vec::new();
        for r in self.state.shadow_results(shadow_id, limit)? {
            match serde_json::from_str(&r.comparison) {
                Ok(comparison) => out.push(RecordedComparison {
                    pass_id: r.pass_id,
                    at: r.at,
                    comparison,
                }),
                Err(e) => tracing::warn!(pass = %r.pass_id, "skipping an unreadable shadow comparison: {e}"),
            }
        }
        Ok(out)
    }

    fn shadow_status(&self, ds: &DatasetConfig, row: ShadowRow) -> Result<ShadowStatus, StateError> {
        let latest = self.recorded(row.id, 1)?.into_iter().next();
        Ok(ShadowStatus {
            state: state_of(&row),
            active_plugin: ds.plugin.clone(),
            row,
            latest,
        })
    }

    /// The dataset's current shadow with its latest comparison, for the dataset's status.
    pub(super) fn shadow_summary(&self, ds: &DatasetConfig) -> Option<ShadowStatus> {
        let current = self
            .current_shadow(ds)
            .and_then(|r| r.map(|r| self.shadow_status(ds, r)).transpose());
        current.unwrap_or_else(|e| {
            tracing::error!("cannot read the dataset's shadow: {e}");
            None
        })
    }

    /// The dataset's shadow (the current one, else the last one ended), its recent comparisons newest first, and
    /// totals over them.
    pub fn shadow(
        &self,
        dataset: &str,
    ) -> Result<(Option<ShadowStatus>, Vec<RecordedComparison>, Totals), ShadowError> {
        let ds = self.shadow_dataset(dataset)?;
        let row = match self.current_shadow(&ds)? {
            Some(r) => Some(r),
            None => self.state.latest_shadow(dataset)?.filter(|r| r.ended_at.is_some()),
        };
        let Some(row) = row else {
            return Ok((None, Vec::new(), Totals::default()));
        };
        let comparisons = self.recorded(row.id, RECENT_COMPARISONS)?;
        let totals = Totals::of(comparisons.iter().map(|c| &c.comparison));
        Ok((Some(self.shadow_status(&ds, row)?), comparisons, totals))
    }

    /// Puts `plugin` in shadow of the dataset for its next `passes` real passes, replacing any shadow it had.
    pub fn set_shadow(&self, dataset: &str, plugin: &str, passes: u32) -> Result<ShadowStatus, ShadowError> {
        let ds = self.shadow_dataset(dataset)?;
        if !is_plugin_name(plugin) {
            return Err(ShadowError::Invalid(format!(
                "plugin must be a plugin name (the file <plugin_dir>/<name>.wasm), not a path, got {plugin:?}"
            )));
        }
        if plugin == ds.plugin {
            return Err(ShadowError::Invalid(format!(
                "plugin {plugin:?} is the dataset's own plugin: a shadow is another plugin file"
            )));
        }
        if !(1..=MAX_SHADOW_PASSES).contains(&passes) {
            return Err(ShadowError::Invalid(format!(
                "passes must be between 1 and {MAX_SHADOW_PASSES}, got {passes}"
            )));
        }
        let row = {
            let _one = lock(&self.shadow_lock);
            self.state
                .start_shadow(dataset, "api", plugin, passes, config_key(&ds).as_deref())?
        };
        tracing::info!(dataset, shadow = plugin, passes, "shadow set through the API");
        Ok(self.shadow_status(&ds, row)?)
    }

    /// Ends the dataset's shadow without changing anything else.
    pub fn discard_shadow(&self, dataset: &str) -> Result<ShadowStatus, ShadowError> {
        let ds = self.shadow_dataset(dataset)?;
        let row = self
            .current_shadow(&ds)?
            .ok_or_else(|| ShadowError::NoShadow(dataset.to_string()))?;
        self.state.end_shadow(row.id, "discarded")?;
        tracing::info!(dataset, shadow = %row.plugin, "shadow discarded");
        let row = self.state.latest_shadow(dataset)?.unwrap_or(row);
        Ok(self.shadow_status(&ds, row)?)
    }

    /// Makes the shadow version the dataset's plugin: writes the exact bytes that ran in shadow to the dataset's
    /// plugin file (atomically), lets the plugin directory load them as it loads any new file, and ends the shadow.
    pub async fn promote_shadow(&self, dataset: &str) -> Result<Promoted, ShadowError> {
        let ds = self.shadow_dataset(dataset)?;
        let row = self
            .current_shadow(&ds)?
            .ok_or_else(|| ShadowError::NoShadow(dataset.to_string()))?;
        let latest = self.recorded(row.id, 1)?.into_iter().next().ok_or_else(|| {
            ShadowError::Conflict(format!(
                "shadow {:?} of dataset {dataset:?} has not run in a pass yet: nothing to promote on",
                row.plugin
            ))
        })?;
        let ran = match (&latest.comparison.shadow, &latest.comparison.error) {
            (Some(v), None) => v.clone(),
            (_, error) => {
                return Err(ShadowError::Conflict(format!(
                    "shadow {:?} failed in its latest pass ({}): {}",
                    row.plugin,
                    latest.pass_id,
                    error.as_deref().unwrap_or("it did not run")
                )));
            }
        };
        let dir = self.plugins.dir().to_path_buf();
        let from = dir.join(format!("{}.wasm", row.plugin));
        let bytes = std::fs::read(&from)
            .map_err(|e| ShadowError::Conflict(format!("cannot read the shadow's file {}: {e}", from.display())))?;
        let digest = hex::encode(Sha256::digest(&bytes));
        if digest != ran.digest {
            return Err(ShadowError::Conflict(format!(
                "{} changed since it ran in shadow (sha256 {} ran, the file is {}): let it run a shadow pass first",
                from.display(),
                ran.digest,
                digest
            )));
        }
        let to = dir.join(format!("{}.wasm", ds.plugin));
        write_atomically(&dir, &ds.plugin, &bytes).map_err(|source| ShadowError::Write {
            path: to.clone(),
            source,
        })?;
        self.state.end_shadow(row.id, "promoted")?;
        tracing::info!(
            dataset,
            shadow = %row.plugin,
            plugin = %ds.plugin,
            version = %ran.version,
            digest = %ran.digest,
            "shadow promoted: its bytes are the dataset's plugin file now"
        );
        // The watcher would load it too; loading it now lets the answer say how the load went.
        self.plugins.sync(&ds.plugin).await;
        Ok(Promoted {
            from: row.plugin,
            to: ds.plugin.clone(),
            path: to.display().to_string(),
            version: ran,
            plugin: self.plugins.status(&ds.plugin),
        })
    }
}

/// Writes `<dir>/<name>.wasm` the way the README asks people to: a hidden temporary in the same directory (which the
/// watcher ignores), made durable, renamed into place, and the rename made durable.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.wasm.promote-{}", uuid::Uuid::now_v7()));
    let written = (|| {
        let mut f = std::fs::File::create_new(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, dir.join(format!("{name}.wasm")))?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}
