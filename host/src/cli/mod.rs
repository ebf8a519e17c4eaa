//! The command line: `retention run`, `retention serve`, `retention status`, `retention plugin check|test`,
//! `retention trash list|restore`, `retention demo`. The only module (with `main.rs`) that knows the terminal.
//!
//! Parsing is clap's; each command is a small function over the library, one file per command. Exit codes: 0
//! success, 1 a pass or check failed (the report or message says why), 2 bad usage or configuration.

mod archive;
mod demo;
mod new;
mod plugin;
mod run;
mod serve;
mod trash;

use std::io::Write;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};

use crate::config::{Config, parse_param};
pub use archive::ArchiveCommand;
pub use run::{RunHow, run_datasets};
pub use trash::{TrashCommand, TrashDataset};

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
    /// Restores archived segments into their dataset (a table dataset's archived partitions).
    #[command(subcommand)]
    Archive(ArchiveCommand),
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
        /// The plugin's memory cap, as `runtime.memory_limit_mib` in a config.
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
        memory_limit_mib: u64,
    },
    /// Runs a plugin on segments described in JSON and prints each decision with its reason.
    Test(TestArgs),
    /// Creates a plugin project that builds as it is: a small rule, its tests, a fixture, pinned toolchain.
    New {
        /// The plugin's name (lower-case letters, digits, dashes), e.g. `keep-audit-logs`.
        name: String,
        /// The language of the project.
        #[arg(long, value_enum)]
        lang: new::Lang,
        /// Where to create it (must not exist, or be empty). Default: `./NAME`.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Writes the WIT this host accepts (`retention.wit`) into a directory, or prints it with `-`.
    Wit {
        /// The directory [default: wit].
        dir: Option<PathBuf>,
    },
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
    /// The plugin's memory cap, as `runtime.memory_limit_mib` in a config.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub memory_limit_mib: u64,
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

pub(crate) fn parse_now(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("expected an RFC 3339 time such as 2026-01-31T00:00:00Z: {e}"))
}

/// Runs a parsed command line; returns the process exit code.
pub async fn main(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run(args) => run::run(args).await,
        // A plugin's calls into WASI block (wasmtime-wasi's sync bindings), which must not happen on a thread of the
        // async runtime: plugin commands run on a blocking thread, as passes and the service's loads do.
        Command::Plugin(PluginCommand::Check {
            file,
            json,
            memory_limit_mib,
        }) => blocking(move || plugin::check(&file, json, memory_limit_mib)).await,
        Command::Plugin(PluginCommand::Test(args)) => blocking(move || plugin::test(args)).await,
        Command::Plugin(PluginCommand::New { name, lang, dir }) => {
            new::new(&name, lang, dir.as_deref(), &mut std::io::stdout().lock())
        }
        Command::Plugin(PluginCommand::Wit { dir }) => new::wit(dir.as_deref(), &mut std::io::stdout().lock()),
        Command::Serve(args) => serve::serve(&args.config).await,
        Command::Status(args) => status(args).await,
        Command::Demo(args) => demo::run(&args.dir, &args.plugin_dir).await,
        Command::Trash(cmd) => trash::trash(cmd).await,
        Command::Archive(cmd) => archive::archive(cmd).await,
    }
}

/// Runs `f` on the runtime's blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> anyhow::Result<T> + Send + 'static) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| anyhow::anyhow!("the command's worker thread failed: {e}"))?
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
