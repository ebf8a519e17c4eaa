//! Configuration: the TOML file as written ([`RawConfig`], serde structs that refuse unknown keys) and the typed,
//! validated form the rest of the host uses ([`Config`]). Validation happens once, here, at the edge: a bad regex, glob,
//! URL, number or missing plugin file is reported with the field's path and the offending value, and nothing past this
//! module re-checks it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use crate::store::StoreConfig;
use crate::store::dir::config::{RawDirectory, canonical};
use crate::store::dir::{DirectoryConfig, Excluded};

/// A configuration problem, naming the field and the value that was wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{field}: {problem} (value: {value})")]
    Invalid {
        field: String,
        value: String,
        problem: String,
    },
}

impl From<crate::store::FieldError> for ConfigError {
    fn from(e: crate::store::FieldError) -> Self {
        ConfigError::Invalid {
            field: e.field,
            value: e.value,
            problem: e.problem,
        }
    }
}

fn invalid(field: impl Into<String>, value: impl ToString, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        value: value.to_string(),
        problem: problem.into(),
    }
}

// ---------------------------------------------------------------------------------------------------------------------
// The file as written.

/// The configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Directory holding the plugins, `<name>.wasm`; relative paths are relative to the config file.
    pub plugin_dir: PathBuf,
    /// Limits and batching of the plugin runtime.
    #[serde(default)]
    pub runtime: RawRuntime,
    /// How `retention serve` runs: state directory, admin API, shutdown.
    #[serde(default)]
    pub service: RawService,
    /// The datasets to manage, each with its store, plugin and guards.
    #[serde(default, rename = "dataset")]
    pub datasets: Vec<RawDataset>,
}

/// `[service]`: settings of `retention serve` (ignored by `retention run`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawService {
    /// Directory for the state database (pass and plugin history) and the compiled-plugin cache; relative paths are
    /// relative to the config file. Created when missing.
    pub state_dir: PathBuf,
    /// Address of the admin HTTP API and `/metrics`. Loopback by default: put a proxy in front to expose it.
    pub listen: String,
    /// Bearer token that mutating API endpoints require. The environment variable `RETENTION_API_TOKEN` overrides it
    /// (prefer it: config files get copied around). Without a token, mutating endpoints are refused.
    pub api_token: Option<String>,
    /// Longest wait on SIGTERM/SIGINT for running passes to stop at an action boundary, in milliseconds; after it the
    /// process exits anyway (every action is crash-safe, so the next start recovers).
    pub shutdown_timeout_ms: u64,
    /// Passes kept in the history; older ones are pruned (their reports with them).
    pub history_passes: u64,
}

impl Default for RawService {
    fn default() -> Self {
        RawService {
            state_dir: PathBuf::from("retention-state"),
            listen: "127.0.0.1:9477".to_string(),
            api_token: None,
            shutdown_timeout_ms: 30_000,
            history_passes: 10_000,
        }
    }
}

/// `[runtime]`: how plugins are run.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRuntime {
    /// Maximum linear memory of one plugin instance, in MiB. A plugin that grows past it fails its pass.
    pub memory_limit_mib: u64,
    /// Wall-clock budget of one call into a plugin (`begin`, one `observe` or `decide` batch), in milliseconds.
    pub call_timeout_ms: u64,
    /// Segments per `observe` / `decide` call.
    pub batch_size: usize,
    /// Directory for compiled plugin code, so that a plugin is compiled once, not on every run. Default:
    /// `$XDG_CACHE_HOME/retention` or `~/.cache/retention`; relative paths are relative to the config file.
    pub cache_dir: Option<PathBuf>,
    /// Set to false to compile plugins on every run and write no cache.
    pub compile_cache: bool,
}

impl Default for RawRuntime {
    fn default() -> Self {
        RawRuntime {
            memory_limit_mib: 64,
            call_timeout_ms: 2_000,
            batch_size: 4_096,
            cache_dir: None,
            compile_cache: true,
        }
    }
}

/// `[[dataset]]`: one dataset.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDataset {
    /// Unique name, shown in reports and passed to the plugin.
    pub name: String,
    /// Plugin that decides for this dataset: the file `<plugin_dir>/<plugin>.wasm`.
    pub plugin: String,
    /// When `retention serve` runs a pass, as a cron expression in UTC: 5 fields (`*/5 * * * *`, minute first) or 6-7
    /// with seconds first (`0 */5 * * * *`). Without it the dataset only runs when triggered through the API.
    pub schedule: Option<String>,
    /// Parameters handed to the plugin as strings (numbers and booleans are accepted and converted).
    #[serde(default)]
    pub params: BTreeMap<String, toml::Value>,
    /// The dataset is a directory of files.
    pub directory: Option<RawDirectory>,
    /// The dataset is a table of a PostgreSQL database.
    pub postgres: Option<crate::store::postgres::RawPostgres>,
    /// Limits that a plan must respect to be applied.
    #[serde(default)]
    pub guard: RawGuard,
    /// Actions applied at once (compressions run on this many threads).
    #[serde(default = "default_parallelism")]
    pub apply_parallelism: usize,
    /// Shadow mode (`retention serve`): another plugin decides beside `plugin` for a number of real passes, on the
    /// same segments, and acts on nothing; the service records how the two plans differ.
    pub shadow: Option<RawShadow>,
}

/// `[dataset.shadow]`: a new plugin version to try in shadow beside the dataset's plugin.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShadow {
    /// The shadow plugin: the file `<plugin_dir>/<plugin>.wasm`, another file than the dataset's `plugin`.
    pub plugin: String,
    /// Real passes that run the shadow, 1 to 10000.
    pub passes: u32,
}

/// Most passes a shadow may be given.
pub const MAX_SHADOW_PASSES: u32 = 10_000;

/// Whether `name` can name a plugin: the file `<plugin_dir>/<name>.wasm`, not a path and not a hidden file.
pub fn is_plugin_name(name: &str) -> bool {
    !(name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') || name.chars().any(char::is_control))
}

fn default_parallelism() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// `[dataset.guard]`: protective limits on one pass.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawGuard {
    /// Largest fraction (0 to 1) of the dataset's bytes that one pass may drop; a plan over it applies nothing.
    /// `retention run --force` (or `force=true` on the API's trigger) lets one pass past it.
    pub max_drop_bytes_fraction: f64,
    /// Largest fraction (0 to 1) of the dataset's segments that one pass may drop; a plan over it applies nothing.
    /// `--force` lets one pass past it.
    pub max_drop_segments_fraction: f64,
    /// The newest N segments (by end time, across tiers) are never dropped: a plan that drops one applies nothing.
    pub keep_newest: u64,
    /// Segments younger than this (by end time, against the pass's now) are never dropped: a plan that drops one
    /// applies nothing. In seconds.
    pub min_drop_age_secs: u64,
}

impl Default for RawGuard {
    fn default() -> Self {
        RawGuard {
            max_drop_bytes_fraction: 0.5,
            max_drop_segments_fraction: 0.5,
            keep_newest: 1,
            min_drop_age_secs: 3_600,
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------------
// The validated form.

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub plugin_dir: PathBuf,
    pub runtime: RuntimeConfig,
    pub service: ServiceConfig,
    pub datasets: Vec<DatasetConfig>,
}

/// The environment variable that holds the admin API's bearer token (it overrides `service.api_token`).
pub const API_TOKEN_ENV: &str = "RETENTION_API_TOKEN";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    pub state_dir: PathBuf,
    pub listen: std::net::SocketAddr,
    /// From `RETENTION_API_TOKEN` or the config; `None` refuses every mutating request.
    pub api_token: Option<String>,
    pub shutdown_timeout: Duration,
    pub history_passes: u64,
}

#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub memory_limit_bytes: usize,
    pub call_timeout: Duration,
    pub batch_size: usize,
    /// Where compiled plugin code is cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Whether compiled code is cached at all (`retention serve` keeps it in its state directory).
    pub compile_cache: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig::from_raw(&RawRuntime::default(), Path::new(".")).expect("defaults are valid")
    }
}

/// The per-user cache directory: `$XDG_CACHE_HOME/retention`, else `$HOME/.cache/retention`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let from = |var: &str| std::env::var_os(var).filter(|v| !v.is_empty()).map(PathBuf::from);
    from("XDG_CACHE_HOME")
        .or_else(|| from("HOME").map(|h| h.join(".cache")))
        .map(|d| d.join("retention"))
}

#[derive(Debug, Clone)]
pub struct DatasetConfig {
    pub name: String,
    pub plugin: String,
    /// Path of the plugin file, `<plugin_dir>/<plugin>.wasm`.
    pub plugin_path: PathBuf,
    /// The cron expression as written, and its parsed form.
    pub schedule: Option<(String, cron::Schedule)>,
    pub params: Vec<(String, String)>,
    pub store: StoreConfig,
    pub guard: GuardConfig,
    pub apply_parallelism: usize,
    /// The shadow of `[dataset.shadow]`, if any (the API may set another one, which wins).
    pub shadow: Option<ShadowConfig>,
}

/// A shadow set in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowConfig {
    pub plugin: String,
    pub passes: u32,
}

#[derive(Debug, Clone, Copy)]
pub struct GuardConfig {
    pub max_drop_bytes_fraction: f64,
    pub max_drop_segments_fraction: f64,
    pub keep_newest: u64,
    pub min_drop_age: Duration,
}

impl Default for GuardConfig {
    fn default() -> Self {
        let raw = RawGuard::default();
        GuardConfig {
            max_drop_bytes_fraction: raw.max_drop_bytes_fraction,
            max_drop_segments_fraction: raw.max_drop_segments_fraction,
            keep_newest: raw.keep_newest,
            min_drop_age: Duration::from_secs(raw.min_drop_age_secs),
        }
    }
}

impl Config {
    /// Reads and validates a config file for a one-off run: every dataset's plugin file must exist.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let config = Config::load_service(path)?;
        config.check_plugin_files()?;
        Ok(config)
    }

    /// Refuses a config whose datasets name plugin files that do not exist.
    pub fn check_plugin_files(&self) -> Result<(), ConfigError> {
        for (i, ds) in self.datasets.iter().enumerate() {
            if !ds.plugin_path.is_file() {
                return Err(invalid(
                    format!("dataset[{i}].plugin"),
                    &ds.plugin,
                    format!("no plugin file {}", ds.plugin_path.display()),
                ));
            }
        }
        Ok(())
    }

    /// Reads and validates a config file for the service, where plugin files come and go while it runs: a missing
    /// plugin disables its datasets instead of failing the config.
    pub fn load_service(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut config = Config::parse(&text, base).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })?;
        // The config file itself is the engine's: never a segment, even in a root that holds it.
        for ds in &mut config.datasets {
            let StoreConfig::Directory(d) = &mut ds.store else {
                continue;
            };
            d.excluded.push(Excluded {
                path: path.to_path_buf(),
                what: "the config file".to_string(),
            });
        }
        Ok(config)
    }

    /// Parses and validates config text; relative paths are resolved against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::new(),
            message: e.to_string().trim_end().to_string(),
        })?;
        Config::from_raw(raw, base)
    }

    fn from_raw(raw: RawConfig, base: &Path) -> Result<Config, ConfigError> {
        let plugin_dir = base.join(&raw.plugin_dir);
        if !plugin_dir.is_dir() {
            return Err(invalid(
                "plugin_dir",
                plugin_dir.display(),
                "is not a directory (build the plugins first, see README)",
            ));
        }
        let runtime = RuntimeConfig::from_raw(&raw.runtime, base)?;
        let service = ServiceConfig::from_raw(raw.service, base)?;
        if raw.datasets.is_empty() {
            return Err(invalid("dataset", "[]", "at least one [[dataset]] is required"));
        }
        let mut datasets = Vec::with_capacity(raw.datasets.len());
        for (i, d) in raw.datasets.into_iter().enumerate() {
            let ds = DatasetConfig::from_raw(d, i, base, &plugin_dir)?;
            if datasets.iter().any(|o: &DatasetConfig| o.name == ds.name) {
                return Err(invalid(
                    format!("dataset[{i}].name"),
                    &ds.name,
                    "duplicate dataset name",
                ));
            }
            datasets.push(ds);
        }
        // The engine's own directories, which no dataset may hold or manage.
        let mut engine: Vec<(PathBuf, String)> = vec![
            (
                canonical(&service.state_dir),
                "the state directory (service.state_dir: state database, locks, compiled plugins)".to_string(),
            ),
            (canonical(&plugin_dir), "the plugin directory (plugin_dir)".to_string()),
        ];
        if let Some(cache) = &runtime.cache_dir {
            engine.push((
                canonical(cache),
                "the compiled-plugin cache (runtime.cache_dir)".to_string(),
            ));
        }
        let mut dirs: Vec<(usize, String, &mut DirectoryConfig)> = datasets
            .iter_mut()
            .enumerate()
            .filter_map(|(i, d)| match &mut d.store {
                StoreConfig::Directory(dir) => Some((i, d.name.clone(), dir)),
                StoreConfig::Postgres(_) => None,
            })
            .collect();
        crate::store::dir::config::bound(&mut dirs, engine)?;
        Ok(Config {
            plugin_dir,
            runtime,
            service,
            datasets,
        })
    }

    pub fn dataset(&self, name: &str) -> Option<&DatasetConfig> {
        self.datasets.iter().find(|d| d.name == name)
    }
}

impl ServiceConfig {
    fn from_raw(raw: RawService, base: &Path) -> Result<ServiceConfig, ConfigError> {
        let listen = raw.listen.parse().map_err(|e| {
            invalid(
                "service.listen",
                &raw.listen,
                format!("expected host:port such as 127.0.0.1:9477: {e}"),
            )
        })?;
        let token = std::env::var(API_TOKEN_ENV).ok().or(raw.api_token);
        let api_token = match token {
            Some(t) if t.is_empty() => None,
            Some(t) if t.len() < 16 || t.chars().any(|c| c.is_whitespace() || c.is_control()) => {
                return Err(invalid(
                    "service.api_token",
                    "(hidden)",
                    format!("must be at least 16 characters without spaces ({API_TOKEN_ENV} or the config)"),
                ));
            }
            t => t,
        };
        if !(1..=3_600_000).contains(&raw.shutdown_timeout_ms) {
            return Err(invalid(
                "service.shutdown_timeout_ms",
                raw.shutdown_timeout_ms,
                "must be between 1 and 3600000",
            ));
        }
        if raw.history_passes == 0 {
            return Err(invalid("service.history_passes", 0, "must be at least 1"));
        }
        Ok(ServiceConfig {
            state_dir: base.join(raw.state_dir),
            listen,
            api_token,
            shutdown_timeout: Duration::from_millis(raw.shutdown_timeout_ms),
            history_passes: raw.history_passes,
        })
    }
}

/// Parses a cron expression: 5 fields (minute first, as in crontab) or 6-7 fields (seconds first, optional year).
pub fn parse_schedule(expr: &str) -> Result<cron::Schedule, String> {
    use std::str::FromStr;
    let fields = expr.split_whitespace().count();
    let full = match fields {
        5 => format!("0 {expr}"),
        6 | 7 => expr.to_string(),
        n => {
            return Err(format!(
                "expected 5 fields (min hour day month weekday) or 6-7 with seconds first, got {n}"
            ));
        }
    };
    let schedule = cron::Schedule::from_str(&full).map_err(|e| e.to_string())?;
    if schedule.upcoming(chrono::Utc).next().is_none() {
        return Err("it never fires again".to_string());
    }
    Ok(schedule)
}

impl RuntimeConfig {
    pub fn from_raw(raw: &RawRuntime, base: &Path) -> Result<RuntimeConfig, ConfigError> {
        if !(1..=4096).contains(&raw.memory_limit_mib) {
            return Err(invalid(
                "runtime.memory_limit_mib",
                raw.memory_limit_mib,
                "must be between 1 and 4096",
            ));
        }
        if !(1..=600_000).contains(&raw.call_timeout_ms) {
            return Err(invalid(
                "runtime.call_timeout_ms",
                raw.call_timeout_ms,
                "must be between 1 and 600000",
            ));
        }
        if !(1..=1 << 20).contains(&raw.batch_size) {
            return Err(invalid(
                "runtime.batch_size",
                raw.batch_size,
                "must be between 1 and 1048576",
            ));
        }
        let cache_dir = match (&raw.cache_dir, raw.compile_cache) {
            (_, false) => None,
            (Some(d), true) => Some(base.join(d)),
            (None, true) => default_cache_dir(),
        };
        Ok(RuntimeConfig {
            memory_limit_bytes: (raw.memory_limit_mib as usize) << 20,
            call_timeout: Duration::from_millis(raw.call_timeout_ms),
            batch_size: raw.batch_size,
            cache_dir,
            compile_cache: raw.compile_cache,
        })
    }
}

impl DatasetConfig {
    fn from_raw(raw: RawDataset, i: usize, base: &Path, plugin_dir: &Path) -> Result<DatasetConfig, ConfigError> {
        let at = |f: &str| format!("dataset[{i}].{f}");
        if raw.name.is_empty() || raw.name.chars().any(|c| c.is_control() || c == '/') {
            return Err(invalid(
                at("name"),
                format!("{:?}", raw.name),
                "must be non-empty, without '/'",
            ));
        }
        if !is_plugin_name(&raw.plugin) {
            return Err(invalid(
                at("plugin"),
                format!("{:?}", raw.plugin),
                "must be a plugin name (the file <plugin_dir>/<name>.wasm), not a path",
            ));
        }
        let plugin_path = plugin_dir.join(format!("{}.wasm", raw.plugin));
        let schedule = match raw.schedule {
            None => None,
            Some(expr) => {
                let parsed = parse_schedule(&expr)
                    .map_err(|e| invalid(at("schedule"), format!("{expr:?} (dataset {})", raw.name), e))?;
                Some((expr, parsed))
            }
        };
        let mut params = Vec::with_capacity(raw.params.len());
        flatten_params(&raw.params, "", &at("params"), &mut params)?;
        params.sort();
        let store = match (raw.directory, raw.postgres) {
            (Some(d), None) => StoreConfig::Directory(DirectoryConfig::from_raw(d, &at("directory"), base)?),
            (None, Some(p)) => StoreConfig::Postgres(crate::store::postgres::PostgresConfig::from_raw(
                p,
                &at("postgres"),
                base,
            )?),
            (Some(_), Some(_)) => {
                return Err(invalid(
                    at("postgres"),
                    "(and [dataset.directory])",
                    "a dataset has exactly one store: [dataset.directory] or [dataset.postgres]",
                ));
            }
            (None, None) => {
                return Err(invalid(
                    at("directory"),
                    "missing",
                    "a dataset needs a store: [dataset.directory] or [dataset.postgres]",
                ));
            }
        };
        let g = &raw.guard;
        for (key, f) in [
            ("max_drop_bytes_fraction", g.max_drop_bytes_fraction),
            ("max_drop_segments_fraction", g.max_drop_segments_fraction),
        ] {
            if !(0.0..=1.0).contains(&f) {
                return Err(invalid(at(&format!("guard.{key}")), f, "must be between 0 and 1"));
            }
        }
        if g.min_drop_age_secs > 100 * 365 * 86_400 {
            return Err(invalid(
                at("guard.min_drop_age_secs"),
                g.min_drop_age_secs,
                "must be at most 100 years",
            ));
        }
        let guard = GuardConfig {
            max_drop_bytes_fraction: g.max_drop_bytes_fraction,
            max_drop_segments_fraction: g.max_drop_segments_fraction,
            keep_newest: g.keep_newest,
            min_drop_age: Duration::from_secs(g.min_drop_age_secs),
        };
        if !(1..=256).contains(&raw.apply_parallelism) {
            return Err(invalid(
                at("apply_parallelism"),
                raw.apply_parallelism,
                "must be between 1 and 256",
            ));
        }
        let shadow = match raw.shadow {
            None => None,
            Some(sh) => {
                if !is_plugin_name(&sh.plugin) {
                    return Err(invalid(
                        at("shadow.plugin"),
                        format!("{:?}", sh.plugin),
                        "must be a plugin name (the file <plugin_dir>/<name>.wasm), not a path",
                    ));
                }
                if sh.plugin == raw.plugin {
                    return Err(invalid(
                        at("shadow.plugin"),
                        format!("{:?}", sh.plugin),
                        "must be another plugin file than the dataset's plugin",
                    ));
                }
                if !(1..=MAX_SHADOW_PASSES).contains(&sh.passes) {
                    return Err(invalid(
                        at("shadow.passes"),
                        sh.passes,
                        format!("must be between 1 and {MAX_SHADOW_PASSES}"),
                    ));
                }
                Some(ShadowConfig {
                    plugin: sh.plugin,
                    passes: sh.passes,
                })
            }
        };
        Ok(DatasetConfig {
            name: raw.name,
            plugin: raw.plugin,
            plugin_path,
            schedule,
            params,
            store,
            guard,
            apply_parallelism: raw.apply_parallelism,
            shadow,
        })
    }
}

/// Turns the `params` table into `key = string` pairs. Nested tables become dotted keys, so that TOML's dotted keys
/// (`override.level.debug.drop_after_days = 7`) reach the plugin as written.
fn flatten_params(
    table: &BTreeMap<String, toml::Value>,
    prefix: &str,
    field: &str,
    out: &mut Vec<(String, String)>,
) -> Result<(), ConfigError> {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        let value = match v {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Float(x) => x.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Table(t) => {
                let t: BTreeMap<String, toml::Value> = t.clone().into_iter().collect();
                flatten_params(&t, &key, field, out)?;
                continue;
            }
            other => {
                return Err(invalid(
                    format!("{field}.{key}"),
                    other,
                    "must be a string, number or boolean",
                ));
            }
        };
        out.push((key, value));
    }
    Ok(())
}

/// Parses a `key=value` parameter given on the command line.
pub fn parse_param(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected key=value, got {s:?}")),
    }
}

#[cfg(test)]
mod tests;
