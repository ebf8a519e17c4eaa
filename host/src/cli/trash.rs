//! `retention trash list` and `retention trash restore`: what a drop kept in a dataset's trash, and undoing a drop
//! (recorded in the audit trail through [`crate::execute::restore`]).

use std::io::Write;
use std::path::PathBuf;

use chrono::{DateTime, SecondsFormat};
use clap::{Args, Subcommand};

use super::UsageError;
use crate::config::Config;

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

impl TrashDataset {
    /// The config (loaded as the service does: plugin files are not needed to undo a drop or an archive, and a
    /// missing one is tolerated) and the dataset's store, opened; a bad config or an unknown dataset is a usage error.
    pub(super) async fn open(&self) -> Result<(Config, std::sync::Arc<dyn crate::store::Store>), UsageError> {
        let config = Config::load_service(&self.config).map_err(|e| UsageError(e.to_string()))?;
        let ds = config.dataset(&self.dataset).ok_or_else(|| {
            let known: Vec<&str> = config.datasets.iter().map(|d| d.name.as_str()).collect();
            UsageError(format!(
                "no dataset {:?} in the config (datasets: {})",
                self.dataset,
                known.join(", ")
            ))
        })?;
        let store = crate::store::open(&ds.store)
            .await
            .map_err(|e| UsageError(format!("dataset {}: {e}", ds.name)))?;
        Ok((config, store))
    }
}

/// `retention trash list|restore`: exit code 1 when a restore failed, 2 for a bad config or dataset.
pub(super) async fn trash(cmd: TrashCommand) -> anyhow::Result<i32> {
    let which = match &cmd {
        TrashCommand::List { dataset, .. } | TrashCommand::Restore { dataset, .. } => dataset,
    };
    let (config, store) = which.open().await?;
    let ds = config.dataset(&which.dataset).expect("open() found it");
    let time = |ms: i64| {
        DateTime::from_timestamp_millis(ms)
            .map_or_else(|| ms.to_string(), |t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
    };
    match cmd {
        TrashCommand::List { json, .. } => {
            let entries = match store.trash() {
                Some(t) => t.list().await?,
                None => Vec::new(),
            };
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            if json {
                // The API's shape (`GET /v1/datasets/{name}/trash`), so that one parser reads both.
                serde_json::to_writer_pretty(&mut out, &serde_json::json!({ "trash": entries }))?;
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
                        crate::pass::report::escaped(&e.name),
                        e.tier.as_str(),
                        crate::pass::report::human_bytes(e.bytes),
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
            let state = crate::state::StateDb::open(&config.service.state_dir);
            if let Err(e) = &state {
                eprintln!("warning: cannot open the state database, restores will not be recorded: {e}");
            }
            for name in &names {
                match crate::execute::restore(state.as_ref().ok(), &ds.name, &*store, name, "command line").await {
                    Ok((e, unrecorded)) => {
                        // The restore is done; a failure to record it is reported, not undone.
                        if let Some(err) = unrecorded {
                            eprintln!(
                                "warning: {} was restored but not recorded in the audit trail: {err}",
                                crate::pass::report::escaped(&e.name)
                            );
                        }
                        println!(
                            "restored {} ({}, {}, trashed {})",
                            crate::pass::report::escaped(&e.name),
                            e.tier,
                            crate::pass::report::human_bytes(e.bytes),
                            time(e.trashed_at_ms)
                        )
                    }
                    Err(e) => {
                        eprintln!("error: {}", crate::pass::report::escaped(&e.to_string()));
                        failed = true;
                    }
                }
            }
            Ok(if failed { 1 } else { 0 })
        }
    }
}
