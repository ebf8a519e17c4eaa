//! The command line: `retention run`, `retention serve`, `retention status`, `retention plugin check|test`,
//! `retention trash list|restore`, `retention demo`.
//!
//! Parsing is clap's; each command is a small function over the library. Exit codes: 0 success, 1 a pass or check
//! failed (the report or message says why), 2 bad usage or configuration.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};

use crate::config::{Config, RuntimeConfig, parse_param};
use crate::pass::{self, PassEvent, PassOptions};
use crate::plugin::{PassInput, PluginMeta, Runtime};
use crate::report::PassStatus;
use crate::segment::{Segment, Symbols, Tier};

#[derive(Debug, Parser)]
#[command(
    name = "retention",
    version,
    about = "A data-retention engine whose decisions are WebAssembly plugins"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs one pass over each configured dataset (or one of them).
    Run(RunArgs),
    /// Plugin author tools.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Runs as a service: cron schedules, hot-swapped plugin directory, admin API and metrics.
    Serve(ServeArgs),
    /// Shows a running service's plugins and datasets, through its admin API.
    Status(StatusArgs),
    /// Generates a sample log tree and config, then runs a dry run and a real pass on it.
    Demo(DemoArgs),
    /// Lists or restores dropped segments kept in a dataset's trash.
    #[command(subcommand)]
    Trash(TrashCommand),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The configuration file (TOML).
    #[arg(long, short)]
    pub config: PathBuf,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The service's API address. Default: `service.listen` of `--config`, else http://127.0.0.1:9477.
    #[arg(long)]
    pub url: Option<String>,
    /// Take the API address from this configuration file.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The configuration file (TOML).
    #[arg(long, short)]
    pub config: PathBuf,
    /// Only this dataset.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Print the plan; touch nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// The pass's "now" (RFC 3339), instead of the clock.
    #[arg(long, value_parser = parse_now)]
    pub now: Option<DateTime<Utc>>,
    /// Let this pass past the fraction guards (max_drop_bytes_fraction, max_drop_segments_fraction). Never past a
    /// legal hold, keep_newest or min_drop_age_secs.
    #[arg(long)]
    pub force: bool,
    /// With a `--now` ahead of the clock: purge the trash by that now too (without it, only entries whose grace has
    /// ended by the clock are purged).
    #[arg(long)]
    pub purge_by_now: bool,
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Checks that a file is a plugin of our world; prints its info, digest, size, compile time and imports.
    Check {
        /// The plugin (.wasm component).
        file: PathBuf,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Runs a plugin on segments described in JSON and prints each decision with its reason.
    Test(TestArgs),
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// The plugin (.wasm component).
    pub file: PathBuf,
    /// JSON array of segments: {"name", "time" (RFC 3339), "start"?, "tier"?, "bytes"?, "rows"?, "labels"?}.
    #[arg(long)]
    pub segments: PathBuf,
    /// A plugin parameter, `key=value`; repeatable.
    #[arg(long = "param", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// The pass's "now" (RFC 3339), instead of the clock.
    #[arg(long, value_parser = parse_now)]
    pub now: Option<DateTime<Utc>>,
    /// Dataset name given to the plugin.
    #[arg(long, default_value = "test")]
    pub dataset: String,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to create the sample tree, config and archive (created; must be empty if it exists).
    #[arg(long, default_value = "retention-demo")]
    pub dir: PathBuf,
    /// Directory of the built example plugins.
    #[arg(long, default_value = "guest-plugins/target/wasm32-wasip2/release")]
    pub plugin_dir: PathBuf,
}

fn parse_now(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("expected an RFC 3339 time such as 2026-01-31T00:00:00Z: {e}"))
}

/// Runs a parsed command line; returns the process exit code.
pub async fn main(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run(args) => run(args).await,
        Command::Plugin(PluginCommand::Check { file, json }) => plugin_check(&file, json),
        Command::Plugin(PluginCommand::Test(args)) => plugin_test(args),
        Command::Serve(args) => crate::service::serve(&args.config).await,
        Command::Status(args) => status(args).await,
        Command::Demo(args) => crate::demo::run(&args.dir, &args.plugin_dir).await,
        Command::Trash(cmd) => trash(cmd).await,
    }
}

async fn status(args: StatusArgs) -> anyhow::Result<i32> {
    let url = match (args.url, args.config) {
        (Some(u), _) => u,
        (None, Some(c)) => {
            let config = Config::load_service(&c).map_err(|e| UsageError(e.to_string()))?;
            format!("http://{}", config.service.listen)
        }
        (None, None) => "http://127.0.0.1:9477".to_string(),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    crate::api::client::status(&url, args.json, &mut out).await?;
    out.flush()?;
    Ok(0)
}

/// An error in the configuration or command line: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

async fn run(args: RunArgs) -> anyhow::Result<i32> {
    let config = Config::load(&args.config).map_err(|e| UsageError(e.to_string()))?;
    let datasets: Vec<_> = match &args.dataset {
        Some(name) => vec![
            config
                .dataset(name)
                .ok_or_else(|| {
                    let known: Vec<&str> = config.datasets.iter().map(|d| d.name.as_str()).collect();
                    UsageError(format!(
                        "no dataset {name:?} in the config (datasets: {})",
                        known.join(", ")
                    ))
                })?
                .clone(),
        ],
        None => config.datasets.clone(),
    };
    let how = RunHow {
        dry_run: args.dry_run,
        json: args.json,
        now: args.now,
        force: args.force,
        purge_by_now: args.purge_by_now,
    };
    let code = run_datasets(&config, &datasets, &how).await?;
    Ok(code)
}

/// How `retention run` runs its passes.
#[derive(Debug, Clone, Default)]
pub struct RunHow {
    pub dry_run: bool,
    pub json: bool,
    /// The passes' now; the clock by default.
    pub now: Option<DateTime<Utc>>,
    pub force: bool,
    pub purge_by_now: bool,
}

/// Runs one pass per dataset and prints the reports; exit code 1 when any pass failed or was refused.
pub async fn run_datasets(
    config: &Config,
    datasets: &[crate::config::DatasetConfig],
    how: &RunHow,
) -> anyhow::Result<i32> {
    let (dry_run, json, now, force) = (how.dry_run, how.json, how.now, how.force);
    // Holds live in the state database, and so does the record of what this run does: without it, no pass.
    let state = Arc::new(
        crate::state::StateDb::open(&config.service.state_dir)
            .with_context(|| "cannot open the state database (legal holds and the audit trail live there)")?,
    );
    let runtime = Runtime::new(config.runtime.clone())?;
    let mut stores = Vec::new();
    for ds in datasets {
        let store = crate::store::open(&ds.store)
            .await
            .map_err(|e| UsageError(format!("dataset {}: {e}", ds.name)))?;
        stores.push(store);
    }
    let opts = PassOptions {
        dry_run,
        now: now.unwrap_or_else(Utc::now),
        cancel: None,
        force,
        holds: Vec::new(),
        before_purge: Some(state.purge_hook()),
        before_apply: Some(state.apply_hook()),
        // Shadow mode is the service's: `retention run` has no state of shadows.
        shadow: None,
        state_id: Some(state.id().to_string()),
        purge_by_now: how.purge_by_now,
    };
    let show_progress = !json && std::io::stderr().is_terminal();
    let mut reports = Vec::new();
    let mut failed = false;
    for (ds, store) in datasets.iter().zip(stores) {
        let opts = PassOptions {
            holds: {
                // A database removed since it was opened would run this pass without the holds on disk.
                state.check_present()?;
                state.holds(Some(&ds.name), false)?
            },
            ..opts.clone()
        };
        let _lock = match dry_run {
            true => None,
            false => match crate::lock::lock_for_pass(&config.service.state_dir, &state, &ds.name) {
                Ok(held) => Some(held),
                Err(e) => {
                    eprintln!("dataset {}: {e}", ds.name);
                    failed = true;
                    continue;
                }
            },
        };
        let report = match runtime.load_file(&ds.plugin_path) {
            Ok(plugin) => {
                let bar = ProgressBar::new(show_progress);
                let on_event = |e: PassEvent| bar.event(e);
                pass::run(ds, store, plugin, &opts, &on_event).await
            }
            Err(e) => {
                eprintln!("dataset {}: {e}", ds.name);
                failed = true;
                continue;
            }
        };
        // A dry run changes nothing and has nothing to audit; keeping it out of the history keeps `--dry-run` as
        // cheap as a listing (its report is printed).
        if !dry_run && let Err(e) = state.record_pass(&report, "cli", config.service.history_passes) {
            eprintln!("dataset {}: the pass ran but could not be recorded: {e}", ds.name);
            failed = true;
        }
        failed |= report.status != PassStatus::Ok || report.stats.failed > 0;
        if json {
            reports.push(report);
        } else {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            report.write_text(&mut out)?;
            out.flush()?;
            // The command ends right after: freeing a report's rows one by one (hundreds of thousands of strings)
            // costs more than letting the process exit return the memory.
            std::mem::forget(report);
        }
    }
    if json {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        serde_json::to_writer_pretty(&mut out, &reports)?;
        writeln!(out)?;
        std::mem::forget(reports);
    }
    Ok(if failed { 1 } else { 0 })
}

/// A progress bar on a terminal, nothing otherwise.
struct ProgressBar(Option<indicatif::ProgressBar>);

impl ProgressBar {
    fn new(show: bool) -> Self {
        ProgressBar(show.then(indicatif::ProgressBar::hidden))
    }

    fn event(&self, e: PassEvent) {
        let Some(bar) = &self.0 else { return };
        match e {
            PassEvent::ApplyStarted(n) if n >= 100 => {
                bar.set_length(n);
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                bar.set_style(
                    indicatif::ProgressStyle::with_template("  applying {bar:40} {pos}/{len} {per_sec} eta {eta}")
                        .expect("valid template"),
                );
            }
            PassEvent::ApplyStarted(_) => {}
            PassEvent::Applied(n) => bar.inc(n),
            PassEvent::ApplyFinished => bar.finish_and_clear(),
        }
    }
}

#[derive(Serialize)]
struct CheckOutput<'a> {
    file: String,
    world: &'static str,
    #[serde(flatten)]
    meta: &'a PluginMeta,
}

fn plugin_check(file: &Path, json: bool) -> anyhow::Result<i32> {
    let runtime = Runtime::new(RuntimeConfig::default())?;
    let plugin = match runtime.load_file(file) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(1);
        }
    };
    let m = &plugin.meta;
    if json {
        let out = CheckOutput {
            file: file.display().to_string(),
            world: crate::plugin::WORLD,
            meta: m,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("{}: a plugin of world {}", file.display(), crate::plugin::WORLD);
        println!("  name:        {}", m.name);
        println!("  version:     {}", m.version);
        println!("  description: {}", crate::report::escaped(&m.description));
        println!("  digest:      sha256:{}", m.digest);
        println!("  size:        {} bytes", m.size_bytes);
        let how = if m.cached {
            " (compiled code from the cache)"
        } else {
            ""
        };
        println!("  compile:     {:.1} ms{how}", m.compile_ms);
        println!("  imports:");
        for i in &m.imports {
            println!("    {i}");
        }
    }
    Ok(0)
}

/// One segment of a `plugin test` fixture.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureSegment {
    name: String,
    /// End of the time range (RFC 3339).
    time: DateTime<chrono::FixedOffset>,
    /// Start of the time range (RFC 3339); defaults to `time`.
    start: Option<DateTime<chrono::FixedOffset>>,
    #[serde(default = "hot")]
    tier: FixtureTier,
    #[serde(default)]
    bytes: u64,
    rows: Option<u64>,
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum FixtureTier {
    Hot,
    Compressed,
    Archived,
}

fn hot() -> FixtureTier {
    FixtureTier::Hot
}

#[derive(Serialize)]
struct TestDecision {
    name: String,
    tier: Tier,
    action: crate::segment::Action,
    reason: Option<String>,
}

#[derive(Serialize)]
struct TestOutput<'a> {
    plugin: TestPlugin<'a>,
    decisions: Vec<TestDecision>,
    log: Vec<crate::plugin::LogLine>,
}

#[derive(Serialize)]
struct TestPlugin<'a> {
    name: &'a str,
    version: &'a str,
    description: &'a str,
    digest: &'a str,
}

fn plugin_test(args: TestArgs) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(&args.segments)
        .with_context(|| format!("cannot read segments file {}", args.segments.display()))?;
    let fixture: Vec<FixtureSegment> = serde_json::from_str(&text)
        .map_err(|e| UsageError(format!("invalid segments file {}: {e}", args.segments.display())))?;
    let mut symbols = Symbols::new();
    let mut segments: Vec<(usize, Segment)> = Vec::with_capacity(fixture.len());
    for (i, f) in fixture.into_iter().enumerate() {
        let end_ms = f.time.timestamp_millis();
        let mut labels: crate::segment::Labels = f
            .labels
            .iter()
            .map(|(k, v)| (symbols.intern(k), symbols.intern(v)))
            .collect();
        labels.sort_unstable();
        segments.push((
            i,
            Segment {
                locator: f.name.clone(),
                name: f.name,
                tier: match f.tier {
                    FixtureTier::Hot => Tier::Hot,
                    FixtureTier::Compressed => Tier::Compressed,
                    FixtureTier::Archived => Tier::Archived,
                },
                start_ms: f.start.map_or(end_ms, |s| s.timestamp_millis()),
                end_ms,
                rows: f.rows,
                bytes: f.bytes,
                labels,
                modified_ns: end_ms * 1_000_000,
                file_id: 0,
            },
        ));
    }
    if let Some(dup) = duplicate_name(segments.iter().map(|(_, s)| s.name.as_str())) {
        bail!(UsageError(format!(
            "segment name {dup:?} appears twice in {}",
            args.segments.display()
        )));
    }
    // The contract promises oldest first; remember each segment's place in the fixture to answer in its order.
    segments.sort_by(|(_, a), (_, b)| a.end_ms.cmp(&b.end_ms).then_with(|| a.name.cmp(&b.name)));
    let order: Vec<usize> = segments.iter().map(|(i, _)| *i).collect();
    let segments: Arc<Vec<Segment>> = Arc::new(segments.into_iter().map(|(_, s)| s).collect());

    let runtime = Runtime::new(RuntimeConfig::default())?;
    let plugin = match runtime.load_file(&args.file) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(1);
        }
    };
    let now = args.now.unwrap_or_else(Utc::now);
    let mut params = args.params.clone();
    params.sort();
    let input = PassInput {
        pass_id: "test",
        dataset: &args.dataset,
        now_ms: now.timestamp_millis(),
        dry_run: true,
        params: &params,
    };
    let plan = match plugin.plan(input, segments.clone(), &symbols) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(1);
        }
    };
    let mut decisions: Vec<Option<TestDecision>> = (0..segments.len()).map(|_| None).collect();
    for ((seg, d), &i) in segments.iter().zip(&plan.decisions).zip(&order) {
        decisions[i] = Some(TestDecision {
            name: seg.name.clone(),
            tier: seg.tier,
            action: d.action,
            reason: plan.reasons.of(d).map(str::to_string),
        });
    }
    let decisions: Vec<TestDecision> = decisions
        .into_iter()
        .map(|d| d.expect("every segment decided"))
        .collect();
    let m = &plugin.meta;
    if args.json {
        let out = TestOutput {
            plugin: TestPlugin {
                name: &m.name,
                version: &m.version,
                description: &m.description,
                digest: &m.digest,
            },
            decisions,
            log: plan.log,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        writeln!(
            out,
            "plugin {} {} (sha256 {}), now {}",
            m.name,
            m.version,
            &m.digest[..12],
            now.to_rfc3339_opts(SecondsFormat::Secs, true)
        )?;
        let width = decisions.iter().map(|d| d.name.len()).max().unwrap_or(0).clamp(7, 60);
        writeln!(out, "  {:<8} {:<10} {:<width$}  REASON", "ACTION", "TIER", "SEGMENT")?;
        for d in &decisions {
            writeln!(
                out,
                "  {:<8} {:<10} {:<width$}  {}",
                d.action.as_str(),
                d.tier.as_str(),
                crate::report::escaped(&d.name),
                crate::report::escaped(d.reason.as_deref().unwrap_or("-"))
            )?;
        }
        for l in &plan.log {
            writeln!(out, "  plugin {}: {}", l.level, crate::report::escaped(&l.message))?;
        }
    }
    Ok(0)
}

fn duplicate_name<'a>(names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let mut seen = std::collections::HashSet::new();
    names.into_iter().find(|n| !seen.insert(*n))
}

// --- retention trash ----------------------------------------------------------------------------------------------------

#[derive(Debug, Subcommand)]
pub enum TrashCommand {
    /// Lists the dataset's trash: dropped segments still restorable, oldest first, with their expiry.
    List {
        #[command(flatten)]
        dataset: TrashDataset,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Puts trashed segments back where and as they were (name, tier, bytes, mtime); the most recently trashed one
    /// when a name was dropped several times. Refused for a segment that exists again in any tier.
    Restore {
        #[command(flatten)]
        dataset: TrashDataset,
        /// Segment names, as reports and `trash list` show them.
        #[arg(required = true)]
        names: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct TrashDataset {
    /// The configuration file (TOML).
    #[arg(long, short)]
    pub config: PathBuf,
    /// The dataset.
    #[arg(long)]
    pub dataset: String,
}

/// `retention trash list|restore`: exit code 1 when a restore failed, 2 for a bad config or dataset.
async fn trash(cmd: TrashCommand) -> anyhow::Result<i32> {
    let which = match &cmd {
        TrashCommand::List { dataset, .. } | TrashCommand::Restore { dataset, .. } => dataset,
    };
    // Plugin files are not needed to undo a drop: the service's loading, which tolerates a missing one.
    let config = Config::load_service(&which.config).map_err(|e| UsageError(e.to_string()))?;
    let ds = config.dataset(&which.dataset).ok_or_else(|| {
        let known: Vec<&str> = config.datasets.iter().map(|d| d.name.as_str()).collect();
        UsageError(format!(
            "no dataset {:?} in the config (datasets: {})",
            which.dataset,
            known.join(", ")
        ))
    })?;
    let store = crate::store::open(&ds.store)
        .await
        .map_err(|e| UsageError(format!("dataset {}: {e}", ds.name)))?;
    let time = |ms: i64| {
        DateTime::from_timestamp_millis(ms)
            .map_or_else(|| ms.to_string(), |t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
    };
    match cmd {
        TrashCommand::List { json, .. } => {
            let entries = store.trash().await?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            if json {
                serde_json::to_writer_pretty(&mut out, &entries)?;
                writeln!(out)?;
            } else if entries.is_empty() {
                writeln!(out, "dataset {}: the trash is empty", ds.name)?;
            } else {
                let width = entries.iter().map(|e| e.name.len()).max().unwrap_or(0).clamp(7, 60);
                writeln!(
                    out,
                    "  {:<width$}  {:<10} {:>9}  {:<20}  EXPIRES",
                    "SEGMENT", "TIER", "BYTES", "TRASHED"
                )?;
                for e in &entries {
                    writeln!(
                        out,
                        "  {:<width$}  {:<10} {:>9}  {:<20}  {}",
                        crate::report::escaped(&e.name),
                        e.tier.as_str(),
                        crate::report::human_bytes(e.bytes),
                        time(e.trashed_at_ms),
                        time(e.expires_at_ms)
                    )?;
                }
            }
            out.flush()?;
            Ok(0)
        }
        TrashCommand::Restore { names, .. } => {
            let mut failed = false;
            for name in &names {
                match store.restore(name).await {
                    Ok(e) => {
                        // The restore is done; a failure to record it is reported, not undone.
                        if let Err(err) = crate::state::StateDb::open(&config.service.state_dir)
                            .and_then(|db| db.record_restore(&ds.name, &e, "command line"))
                        {
                            eprintln!(
                                "warning: {} was restored but not recorded in the audit trail: {err}",
                                e.name
                            );
                        }
                        println!(
                            "restored {} ({}, {}, trashed {})",
                            crate::report::escaped(&e.name),
                            e.tier,
                            crate::report::human_bytes(e.bytes),
                            time(e.trashed_at_ms)
                        )
                    }
                    Err(e) => {
                        eprintln!("error: {}", crate::report::escaped(&e.to_string()));
                        failed = true;
                    }
                }
            }
            Ok(if failed { 1 } else { 0 })
        }
    }
}
