//! The plugin runtime: loads, checks and runs decision plugins in a sandbox.
//!
//! One [`Runtime`] holds one wasmtime `Engine` (pooling allocator, epoch interruption) and a cache of compiled plugins
//! keyed by the sha256 of their bytes. A [`LoadedPlugin`] is a compiled component that passed the world check and
//! answered `info`; every pass gets a fresh [`PluginRun`] (a new `Store` and instance), so no state leaks from one pass
//! to the next. Every call runs under an epoch deadline and a memory cap; any failure is a [`PluginError`] naming the
//! plugin, the call and the cause.

pub mod batch;
pub mod bindings;
mod engine;
mod host;
mod inspect;
mod limits;
mod output;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Engine, Store, Trap};

pub use bindings::{POLICY_EXPORT, WORLD};
pub use engine::Compiler;
pub use host::LogLine;
pub use limits::{MAX_LOG_LINE_BYTES, MAX_LOG_LINES};

use crate::config::RuntimeConfig;
use crate::segment::{Decision, Reasons, Segment, Symbols};
use batch::{Batches, SymbolFeed};
use bindings::{Plugin, PluginPre};
use engine::Tier;
use host::HostState;

/// Components smaller than this always compile with Cranelift: it takes tens of milliseconds for them (a Rust plugin
/// is ~0.1 MB), and the baseline compiler's time only pays off for interpreters compiled to WebAssembly (Python
/// ~18 MB, StarlingMonkey ~12 MB, QuickJS ~1.7 MB).
pub const QUICK_LOAD_ABOVE_BYTES: usize = 1 << 20;
/// How often the engine's epoch advances; the granularity of call deadlines.
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Longest reason text kept; longer ones are cut (the WIT documents this figure).
pub const MAX_REASON_BYTES: usize = 512;

/// Why a call into a plugin failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// The call ran past its deadline.
    Timeout,
    /// The plugin grew its memory past the cap.
    Memory,
    /// The plugin trapped (panic, `unreachable`, out-of-bounds access, ...).
    Trap,
    /// The plugin answered, but the answer breaks the contract.
    InvalidOutput,
    /// The plugin returned an error of its own (e.g. a bad parameter).
    Refused,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Timeout => "timeout",
            FailureKind::Memory => "memory",
            FailureKind::Trap => "trap",
            FailureKind::InvalidOutput => "invalid-output",
            FailureKind::Refused => "refused",
        }
    }
}

/// A plugin that could not be loaded, or a call into it that failed.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("cannot read plugin {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} is not a WebAssembly file (garbage bytes: it starts with {start})")]
    NotWasm { path: String, start: String },
    #[error(
        "{path} is a core WebAssembly module, not a component: build the plugin for wasm32-wasip2 \
         (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule { path: String },
    #[error("{path} is not a valid WebAssembly component: {detail}")]
    Invalid { path: String, detail: String },
    #[error("{path} is a component of another world, not {world}: {detail}", world = WORLD)]
    WrongWorld { path: String, detail: String },
    #[error("{path} imports {import}, which this host does not provide: {hint}")]
    UnsupportedImport {
        path: String,
        /// The import, e.g. `wasi:http/types@0.2.3`.
        import: String,
        /// What to do about it.
        hint: String,
    },
    #[error(
        "{path} needs {needs_mib} MiB of memory to start, more than `runtime.memory_limit_mib = {cap_mib}`: raise \
         the limit to at least {needs_mib} in the config (`--memory-limit-mib` for `retention plugin check|test`)"
    )]
    MemoryTooSmall { path: String, needs_mib: u64, cap_mib: u64 },
    #[error("plugin {plugin} failed in {call}: {kind}: {detail}", kind = kind.as_str())]
    Call {
        /// `name version (sha256 prefix)`, or the file path before `info` answered.
        plugin: String,
        /// The call and, for batches, which one (`decide batch 3`).
        call: String,
        kind: FailureKind,
        detail: String,
    },
}

impl PluginError {
    /// The kind of a failed call; `None` for a plugin that could not be loaded at all.
    pub fn kind(&self) -> Option<FailureKind> {
        match self {
            PluginError::Call { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

/// What a plugin says about itself, plus what the host measured loading it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PluginMeta {
    pub name: String,
    pub version: String,
    pub description: String,
    /// Hex sha256 of the component's bytes: the plugin's identity.
    pub digest: String,
    pub size_bytes: u64,
    /// Time to compile the component, or to load its compiled code from the cache.
    pub compile_ms: f64,
    /// Whether the compiled code came from the on-disk cache.
    pub cached: bool,
    /// Which compiler made the code (`cranelift`, or `winch` for a quick first load).
    pub compiler: Compiler,
    /// The component's imports, e.g. `retention:policy/host@0.1.0`, `wasi:cli/environment@0.2.0`.
    pub imports: Vec<String>,
}

impl PluginMeta {
    /// `name version (sha256 1a2b3c4d)`, as used in error messages.
    pub fn label(&self) -> String {
        format!("{} {} (sha256 {})", self.name, self.version, &self.digest[..12])
    }
}

/// A plugin version: what its `info` says and the sha256 of its bytes. What a report, a shadow comparison and the
/// audit trail record of the plugin that planned.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PluginVersion {
    pub name: String,
    pub version: String,
    pub digest: String,
}

impl From<&PluginMeta> for PluginVersion {
    fn from(m: &PluginMeta) -> Self {
        PluginVersion {
            name: m.name.clone(),
            version: m.version.clone(),
            digest: m.digest.clone(),
        }
    }
}

/// The engines and the compiled plugins.
pub struct Runtime {
    /// Cranelift: what passes run, and what the disk cache holds.
    optimizing: Tier,
    /// Winch, for a fast first load ([`Runtime::load_quick`]): set up on the first load that wants it (most commands
    /// never do: `retention run` and small plugins use Cranelift); `None` inside if it could not be.
    baseline: OnceLock<Option<Tier>>,
    /// Where the epoch ticker finds the baseline engine once there is one.
    baseline_ticks: Arc<OnceLock<wasmtime::EngineWeak>>,
    limits: RuntimeConfig,
    /// Loaded plugins by digest and compiler, while anyone still holds them: loading the same bytes again costs
    /// nothing, and a version nobody uses any more is freed.
    cache: Mutex<HashMap<(String, Compiler), Weak<LoadedPlugin>>>,
}

/// Where a load found the plugin's compiled code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoadSource {
    /// Already loaded in this process (same digest).
    Memory,
    /// Compiled code from the on-disk cache: no compile.
    DiskCache,
    /// Compiled now.
    Compiled,
}

impl LoadSource {
    pub fn as_str(self) -> &'static str {
        match self {
            LoadSource::Memory => "memory",
            LoadSource::DiskCache => "disk-cache",
            LoadSource::Compiled => "compiled",
        }
    }
}

impl Runtime {
    /// Creates the engines and starts the epoch ticker that enforces call deadlines.
    pub fn new(limits: RuntimeConfig) -> anyhow::Result<Arc<Runtime>> {
        let optimizing = Tier::new(&limits, Compiler::Cranelift)?;
        let baseline_ticks: Arc<OnceLock<wasmtime::EngineWeak>> = Arc::new(OnceLock::new());
        let (weak, baseline_weak) = (optimizing.engine.weak(), baseline_ticks.clone());
        std::thread::Builder::new().name("epoch-ticker".into()).spawn(move || {
            // Ends with the runtime: the optimising engine lives exactly as long as it.
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                if let Some(b) = baseline_weak.get().and_then(wasmtime::EngineWeak::upgrade) {
                    b.increment_epoch();
                }
                std::thread::sleep(EPOCH_TICK);
            }
        })?;
        Ok(Arc::new(Runtime {
            optimizing,
            baseline: OnceLock::new(),
            baseline_ticks,
            limits,
            cache: Mutex::new(HashMap::new()),
        }))
    }

    /// Loads the plugin at `path`: read, identify by digest, compile (or reuse the cached compile), check the world,
    /// and ask for its info on a throw-away instance.
    pub fn load_file(self: &Arc<Self>, path: &Path) -> Result<Arc<LoadedPlugin>, PluginError> {
        let (bytes, shown) = read(path)?;
        self.load_bytes(&bytes, &shown)
    }

    /// Like [`Runtime::load_file`], as fast as it can ([`Runtime::load_quick`]).
    pub fn load_file_quick(self: &Arc<Self>, path: &Path) -> Result<Arc<LoadedPlugin>, PluginError> {
        let (bytes, shown) = read(path)?;
        self.load_quick(&bytes, &shown).map(|(p, _)| p)
    }

    /// Like [`Runtime::load_file`], from bytes; `shown` names the plugin in errors.
    pub fn load_bytes(self: &Arc<Self>, bytes: &[u8], shown: &str) -> Result<Arc<LoadedPlugin>, PluginError> {
        self.load_bytes_traced(bytes, shown).map(|(p, _)| p)
    }

    /// Like [`Runtime::load_bytes`], and says where the compiled code came from.
    pub fn load_bytes_traced(
        self: &Arc<Self>,
        bytes: &[u8],
        shown: &str,
    ) -> Result<(Arc<LoadedPlugin>, LoadSource), PluginError> {
        let digest = hex::encode(Sha256::digest(bytes));
        self.load_with(Compiler::Cranelift, bytes, &digest, shown)
    }

    /// Loads as fast as it can: code already loaded or in the disk cache, else compiled by the baseline compiler
    /// (Winch) in a fraction of Cranelift's time. For answers that cannot wait (a new version in the service, `plugin
    /// check`, `plugin test`); the service then swaps in Cranelift's code ([`Runtime::load_bytes_traced`]) when it is
    /// ready. [`LoadedPlugin::compiler`] says which it got.
    pub fn load_quick(
        self: &Arc<Self>,
        bytes: &[u8],
        shown: &str,
    ) -> Result<(Arc<LoadedPlugin>, LoadSource), PluginError> {
        let digest = hex::encode(Sha256::digest(bytes));
        if bytes.len() < QUICK_LOAD_ABOVE_BYTES
            || self.baseline().is_none()
            || self.memory_cached(&digest, Compiler::Cranelift).is_some()
        {
            return self.load_with(Compiler::Cranelift, bytes, &digest, shown);
        }
        if let Some(p) = self.memory_cached(&digest, Compiler::Winch) {
            return Ok((p, LoadSource::Memory));
        }
        if self.disk_cache_path(&digest).is_some_and(|p| p.is_file()) {
            return self.load_with(Compiler::Cranelift, bytes, &digest, shown);
        }
        match self.load_with(Compiler::Winch, bytes, &digest, shown) {
            // Winch does not implement every WebAssembly proposal: what it refuses, Cranelift may compile.
            Err(PluginError::Invalid { detail, .. }) => {
                tracing::debug!(plugin = %shown, "the baseline compiler refused the plugin, compiling with Cranelift: {detail}");
                self.load_with(Compiler::Cranelift, bytes, &digest, shown)
            }
            other => other,
        }
    }

    fn memory_cached(&self, digest: &str, compiler: Compiler) -> Option<Arc<LoadedPlugin>> {
        self.cache
            .lock()
            .expect("cache lock")
            .get(&(digest.to_string(), compiler))
            .and_then(Weak::upgrade)
    }

    /// The baseline engine, set up on first use.
    fn baseline(&self) -> Option<&Tier> {
        self.baseline
            .get_or_init(|| {
                let tier = Tier::new(&self.limits, Compiler::Winch)
                    .inspect_err(|e| tracing::warn!("no baseline compiler, every load compiles with Cranelift: {e:#}"))
                    .ok()?;
                let _ = self.baseline_ticks.set(tier.engine.weak());
                Some(tier)
            })
            .as_ref()
    }

    fn tier(&self, compiler: Compiler) -> &Tier {
        match compiler {
            Compiler::Winch => self.baseline().unwrap_or(&self.optimizing),
            Compiler::Cranelift => &self.optimizing,
        }
    }

    fn load_with(
        self: &Arc<Self>,
        compiler: Compiler,
        bytes: &[u8],
        digest: &str,
        shown: &str,
    ) -> Result<(Arc<LoadedPlugin>, LoadSource), PluginError> {
        if let Some(p) = self.memory_cached(digest, compiler) {
            return Ok((p, LoadSource::Memory));
        }
        let digest = digest.to_string();
        inspect::check_header(bytes, shown)?;
        // Before compiling: a cap the plugin cannot start under is the config's problem, said as such, and must not
        // cost a compile (or a cached compile) on every attempt.
        let cap = self.limits.memory_limit_bytes as u64;
        if let Some(needs) = inspect::initial_memory_bytes(bytes)
            && needs > cap
        {
            return Err(PluginError::MemoryTooSmall {
                path: shown.to_string(),
                needs_mib: needs.div_ceil(1 << 20),
                cap_mib: cap >> 20,
            });
        }
        let tier = self.tier(compiler);
        let started = Instant::now();
        let (component, cached) = match compiler {
            Compiler::Cranelift => self.compile(bytes, &digest, shown)?,
            // Baseline code is not worth a cache entry: Cranelift's replaces it within seconds.
            Compiler::Winch => (
                Component::new(&tier.engine, bytes).map_err(|e| PluginError::Invalid {
                    path: shown.to_string(),
                    detail: format!("{e:#}"),
                })?,
                false,
            ),
        };
        let compile_ms = started.elapsed().as_secs_f64() * 1e3;
        let imports = inspect::check_world(&tier.engine, &component, shown)?;
        let pre = tier
            .linker
            .instantiate_pre(&component)
            .map_err(|e| PluginError::WrongWorld {
                path: shown.to_string(),
                detail: format!("{e:#}"),
            })?;
        let pre = PluginPre::new(pre).map_err(|e| PluginError::WrongWorld {
            path: shown.to_string(),
            detail: format!("{e:#}"),
        })?;

        let mut meta = PluginMeta {
            name: String::new(),
            version: String::new(),
            description: String::new(),
            digest: digest.clone(),
            size_bytes: bytes.len() as u64,
            compile_ms,
            cached,
            compiler,
            imports,
        };
        let mut plugin = LoadedPlugin {
            meta: meta.clone(),
            pre,
            engine: tier.engine.clone(),
            runtime: self.clone(),
        };
        // Before `info` answers, errors name the file.
        plugin.meta.name = shown.to_string();
        let mut run = plugin.instantiate("load")?;
        let info = run.call("info", |p, s| p.retention_policy_policy().call_info(s))?;
        meta.name = info.name;
        meta.version = info.version;
        meta.description = info.description;
        for (what, v) in [("name", &meta.name), ("version", &meta.version)] {
            if v.is_empty() || v.len() > 128 || v.chars().any(char::is_control) {
                return Err(PluginError::Call {
                    plugin: shown.to_string(),
                    call: "info".into(),
                    kind: FailureKind::InvalidOutput,
                    detail: format!("{what} must be 1 to 128 printable characters, got {v:?}"),
                });
            }
        }
        limits::truncate_utf8(&mut meta.description, 1024);
        plugin.meta = meta;
        let plugin = Arc::new(plugin);
        let mut cache = self.cache.lock().expect("cache lock");
        cache.retain(|_, p| p.strong_count() > 0);
        cache.insert((digest, compiler), Arc::downgrade(&plugin));
        let source = if cached {
            LoadSource::DiskCache
        } else {
            LoadSource::Compiled
        };
        Ok((plugin, source))
    }
}

impl Runtime {
    /// Compiles a component, or loads its compiled code from the cache directory (keyed by the plugin's digest and
    /// the engine's compatibility hash, so a new host version or engine setting never reuses stale code). The cache
    /// holds only code this host compiled itself; precompiled bytes from anywhere else are never loaded. Cache
    /// trouble is logged and costs a compile, never a failure.
    fn compile(&self, bytes: &[u8], digest: &str, shown: &str) -> Result<(Component, bool), PluginError> {
        let engine = &self.optimizing.engine;
        let cached_path = self.disk_cache_path(digest);
        if let Some(path) = &cached_path
            && path.is_file()
        {
            // SAFETY: the file was written by `compile` below from `Engine::precompile_component` output of an engine
            // with the same compatibility hash, into a directory only this host writes; wasmtime re-checks the
            // header and engine settings on load.
            match unsafe { Component::deserialize_file(engine, path) } {
                Ok(c) => return Ok((c, true)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "discarding unusable compiled-plugin cache entry: {e:#}");
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        let invalid = |e: wasmtime::Error| PluginError::Invalid {
            path: shown.to_string(),
            detail: format!("{e:#}"),
        };
        let Some(path) = cached_path else {
            return Ok((Component::new(engine, bytes).map_err(invalid)?, false));
        };
        let code = engine.precompile_component(bytes).map_err(invalid)?;
        if let Err(e) = write_atomically(&path, &code) {
            tracing::warn!(path = %path.display(), "cannot cache compiled plugin: {e}");
        }
        // SAFETY: `code` is this engine's own output of a moment ago.
        let component = unsafe { Component::deserialize(engine, &code) }.map_err(invalid)?;
        Ok((component, false))
    }

    /// Where Cranelift's code for the plugin `digest` is cached, if caching is on.
    fn disk_cache_path(&self, digest: &str) -> Option<std::path::PathBuf> {
        self.limits.cache_dir.as_ref().map(|dir| {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            self.optimizing.engine.precompile_compatibility_hash().hash(&mut h);
            dir.join(format!("{digest}-{:016x}.cwasm", h.finish()))
        })
    }
}

/// A plugin file's bytes, and its path as errors show it.
fn read(path: &Path) -> Result<(Vec<u8>, String), PluginError> {
    let shown = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) => Ok((bytes, shown)),
        Err(source) => Err(PluginError::Read { path: shown, source }),
    }
}

/// Writes a file under a temporary name and renames it into place, so a reader never sees half of it.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// A compiled plugin that passed its checks. Cheap to share; instantiate once per pass.
pub struct LoadedPlugin {
    pub meta: PluginMeta,
    pre: PluginPre<HostState>,
    /// The engine that compiled `pre`: its stores must come from the same one.
    engine: Engine,
    runtime: Arc<Runtime>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin").field("meta", &self.meta).finish()
    }
}

impl LoadedPlugin {
    /// A fresh instance in a fresh store, for one pass. `tag` labels its log lines.
    pub fn instantiate(&self, tag: &str) -> Result<PluginRun, PluginError> {
        let limits = &self.runtime.limits;
        let mut store = Store::new(
            &self.engine,
            HostState::new(limits.memory_limit_bytes, format!("{} {tag}", self.meta.name)),
        );
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(deadline_ticks(limits.call_timeout));
        let instance = self.pre.instantiate(&mut store);
        store.data_mut().drain_output(true);
        let mut run = PluginRun {
            store,
            instance: None,
            label: self.meta.label_or_name(),
            timeout: limits.call_timeout,
            observed: 0,
            decided: 0,
        };
        match instance {
            Ok(i) => {
                run.instance = Some(i);
                Ok(run)
            }
            Err(e) => Err(run.classify("instantiate", e)),
        }
    }

    /// Runs the plugin over a whole pass: `begin`, optional `observe` batches, `decide` batches. Returns one decision
    /// per segment, in order, or the first failure (nothing of a failed plan may be applied).
    pub fn plan(
        &self,
        context: PassInput<'_>,
        segments: Arc<Vec<Segment>>,
        symbols: &Symbols,
    ) -> Result<PlanOutput, PluginError> {
        let mut batches = Batches::build(&segments, self.runtime.limits.batch_size);
        self.plan_batches(context, segments, symbols, &mut batches)
    }

    /// Like [`LoadedPlugin::plan`], over batches already built from `segments` (the boundary benchmark times this
    /// part alone).
    pub fn plan_batches(
        &self,
        context: PassInput<'_>,
        segments: Arc<Vec<Segment>>,
        symbols: &Symbols,
        batches: &mut Batches,
    ) -> Result<PlanOutput, PluginError> {
        let mut run = self.instantiate(context.pass_id)?;
        let options = run.begin(&context, &batches.totals)?;
        let mut feed = SymbolFeed::new(symbols);
        if options.observe_first {
            for i in 0..batches.len() {
                feed.attach(batches, i);
                let (range, batch) = &batches.list[i];
                run.observe(batch, &segments, range.clone())?;
            }
        }
        let mut decisions = Vec::with_capacity(segments.len());
        let mut reasons = Reasons::default();
        for i in 0..batches.len() {
            // With observe-first, every symbol went out with `observe`: `decide` gets the same batches without them.
            feed.attach(batches, i);
            let (range, batch) = &batches.list[i];
            run.decide(batch, &segments, range.clone(), &mut decisions, &mut reasons)?;
        }
        let state = run.store.data_mut();
        Ok(PlanOutput {
            decisions,
            reasons,
            log: std::mem::take(&mut state.log.lines),
            log_dropped: state.log.dropped,
            peak_memory_bytes: state.limiter.peak_bytes,
        })
    }
}

impl PluginMeta {
    fn label_or_name(&self) -> String {
        if self.version.is_empty() {
            self.name.clone()
        } else {
            self.label()
        }
    }
}

/// What a pass tells the plugin in `begin`.
#[derive(Debug, Clone)]
pub struct PassInput<'a> {
    pub pass_id: &'a str,
    pub dataset: &'a str,
    pub now_ms: i64,
    pub dry_run: bool,
    pub params: &'a [(String, String)],
}

/// The plugin's plan for a pass.
#[derive(Debug)]
pub struct PlanOutput {
    /// One decision per segment, in the order of the segments given.
    pub decisions: Vec<Decision>,
    /// The texts the decisions' reasons refer to.
    pub reasons: Reasons,
    pub log: Vec<LogLine>,
    pub log_dropped: u64,
    /// The largest linear memory the instance had during the pass, in bytes.
    pub peak_memory_bytes: usize,
}

/// wasmtime has its own error type (not anyhow's) since v42.
pub(crate) fn wasm_err(e: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{e:#}")
}

fn deadline_ticks(timeout: Duration) -> u64 {
    (timeout.as_millis() as u64).div_ceil(EPOCH_TICK.as_millis() as u64) + 1
}

/// One instance of a plugin, for one pass.
pub struct PluginRun {
    store: Store<HostState>,
    instance: Option<Plugin>,
    label: String,
    timeout: Duration,
    /// Batches observed and decided so far, to name a failing batch (each call counts its own batches from 0).
    observed: usize,
    decided: usize,
}

impl PluginRun {
    /// Calls into the plugin under a fresh deadline, classifying any failure.
    fn call<T>(
        &mut self,
        call: &str,
        f: impl FnOnce(&Plugin, &mut Store<HostState>) -> wasmtime::Result<T>,
    ) -> Result<T, PluginError> {
        let instance = self.instance.as_ref().expect("instantiated");
        self.store.set_epoch_deadline(deadline_ticks(self.timeout));
        // The tail quoted in a failure's error is this call's own stderr.
        self.store.data().stderr.clear_tail();
        let r = f(instance, &mut self.store);
        let r = match r {
            Ok(v) => Ok(v),
            Err(e) => Err(self.classify(call, e)),
        };
        self.store.data_mut().drain_output(true);
        r
    }

    fn classify(&mut self, call: &str, e: wasmtime::Error) -> PluginError {
        let mut error = self.classify_cause(call, e);
        if let PluginError::Call { detail, .. } = &mut error {
            // A Python traceback, a JavaScript exception, a Rust panic message: what the plugin printed last is
            // usually the only account of why it trapped.
            let tail = self.store.data().stderr.tail();
            if !tail.is_empty() {
                detail.push_str("\n  the plugin's stderr ended with:");
                for line in tail {
                    detail.push_str("\n    ");
                    detail.push_str(&line);
                }
            }
        }
        error
    }

    fn classify_cause(&mut self, call: &str, e: wasmtime::Error) -> PluginError {
        let (kind, detail) = if let Some(asked) = self.store.data_mut().limiter.exceeded.take() {
            (
                FailureKind::Memory,
                format!(
                    "memory limit of {} MiB exceeded (the plugin asked for {} MiB): if a pass this large needs it, \
                     raise `runtime.memory_limit_mib` (`--memory-limit-mib` for `retention plugin check|test`)",
                    self.store.data().limiter.cap_bytes >> 20,
                    asked.div_ceil(1 << 20)
                ),
            )
        } else if let Some(Trap::Interrupt) = e.downcast_ref::<Trap>() {
            (
                FailureKind::Timeout,
                format!("no answer within the deadline of {} ms", self.timeout.as_millis()),
            )
        } else {
            (FailureKind::Trap, format!("{e:#}"))
        };
        PluginError::Call {
            plugin: self.label.clone(),
            call: call.to_string(),
            kind,
            detail,
        }
    }

    fn refused(&self, call: &str, kind: FailureKind, detail: String) -> PluginError {
        PluginError::Call {
            plugin: self.label.clone(),
            call: call.to_string(),
            kind,
            detail,
        }
    }

    /// `begin`: hands the plugin the pass context.
    pub fn begin(
        &mut self,
        input: &PassInput<'_>,
        totals: &crate::segment::TierTotals,
    ) -> Result<bindings::PassOptions, PluginError> {
        let t = |t: crate::segment::Tally| bindings::TierTotals {
            segments: t.segments,
            bytes: t.bytes,
        };
        let ctx = bindings::PassContext {
            pass_id: input.pass_id.to_string(),
            dataset: input.dataset.to_string(),
            now_ms: input.now_ms,
            dry_run: input.dry_run,
            params: input
                .params
                .iter()
                .map(|(k, v)| bindings::Param {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
            totals: bindings::DatasetTotals {
                hot: t(totals.hot),
                compressed: t(totals.compressed),
                archived: t(totals.archived),
            },
        };
        let r = self.call("begin", |p, s| p.retention_policy_policy().call_begin(s, &ctx))?;
        r.map_err(|msg| self.refused("begin", FailureKind::Refused, bounded(msg)))
    }

    /// `observe`: shows the plugin one batch.
    pub fn observe(
        &mut self,
        batch: &bindings::SegmentBatch,
        segments: &Arc<Vec<Segment>>,
        range: std::ops::Range<usize>,
    ) -> Result<(), PluginError> {
        let call = format!("observe (batch {})", self.observed);
        self.observed += 1;
        self.set_batch(segments, range);
        let r = self.call(&call, |p, s| p.retention_policy_policy().call_observe(s, batch));
        self.clear_batch();
        r?.map_err(|msg| self.refused(&call, FailureKind::Refused, bounded(msg)))
    }

    /// `decide`: asks for one batch's verdicts, checks them against the contract and appends the decisions.
    pub fn decide(
        &mut self,
        batch: &bindings::SegmentBatch,
        segments: &Arc<Vec<Segment>>,
        range: std::ops::Range<usize>,
        out: &mut Vec<Decision>,
        reasons: &mut Reasons,
    ) -> Result<(), PluginError> {
        let call = format!("decide (batch {})", self.decided);
        self.decided += 1;
        self.set_batch(segments, range.clone());
        let r = self.call(&call, |p, s| p.retention_policy_policy().call_decide(s, batch));
        self.clear_batch();
        let verdicts = r?.map_err(|msg| self.refused(&call, FailureKind::Refused, bounded(msg)))?;
        batch::check_and_append(&verdicts, batch, &segments[range], out, reasons)
            .map_err(|detail| self.refused(&call, FailureKind::InvalidOutput, detail))
    }

    fn set_batch(&mut self, segments: &Arc<Vec<Segment>>, range: std::ops::Range<usize>) {
        let b = &mut self.store.data_mut().batch;
        b.segments = Some(segments.clone());
        b.range = range;
    }

    fn clear_batch(&mut self) {
        self.store.data_mut().batch = host::CurrentBatch::default();
    }
}

/// A plugin's own error message, bounded so that a hostile plugin cannot fill reports.
fn bounded(mut msg: String) -> String {
    limits::truncate_utf8(&mut msg, MAX_LOG_LINE_BYTES);
    msg
}
