//! `retention run`: one pass per dataset (or one of them), printed as text or JSON, each run and recorded through
//! [`crate::execute::pass`], as the service's passes are.

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::{RunArgs, UsageError};
use crate::config::Config;
use crate::execute::{self, PassRequest};
use crate::pass::PassEvent;
use crate::pass::report::PassStatus;
use crate::plugin::Runtime;

pub(super) async fn run(args: RunArgs) -> anyhow::Result<i32> {
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
    let now = now.unwrap_or_else(Utc::now);
    let show_progress = !json && std::io::stderr().is_terminal();
    let mut reports = Vec::new();
    let mut failed = false;
    for (ds, store) in datasets.iter().zip(stores) {
        // Loading calls the plugin's `info`, which may write to stdio: off the async runtime's threads.
        let loaded = {
            let (runtime, path) = (runtime.clone(), ds.plugin_path.clone());
            tokio::task::spawn_blocking(move || runtime.load_file(&path))
                .await
                .map_err(|e| anyhow::anyhow!("the plugin loading thread failed: {e}"))?
        };
        let plugin = match loaded {
            Ok(plugin) => plugin,
            Err(e) => {
                failed = true;
                not_started(&mut reports, json, ds, dry_run, now, e.to_string());
                continue;
            }
        };
        let bar = ProgressBar::new(show_progress);
        let on_event = |e: PassEvent| bar.event(e);
        let req = PassRequest {
            dataset: ds,
            store,
            plugin,
            dry_run,
            now,
            force,
            purge_by_now: how.purge_by_now,
            cancel: None,
            // Shadow mode is the service's: `retention run` has no state of shadows.
            shadow: None,
            trigger: "cli",
        };
        let report = match execute::pass(config, &state, req, &on_event).await {
            Ok(ran) => {
                if let Err(e) = ran.recorded {
                    eprintln!("dataset {}: the pass ran but could not be recorded: {e}", ds.name);
                    failed = true;
                }
                ran.report
            }
            Err(e) => {
                failed = true;
                not_started(&mut reports, json, ds, dry_run, now, e.to_string());
                continue;
            }
        };
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

/// A pass that could not start: said on stderr, and with `--json` also a failed report in the output, so that the
/// JSON always says what happened to every dataset asked for.
fn not_started(
    reports: &mut Vec<crate::pass::report::PassReport>,
    json: bool,
    ds: &crate::config::DatasetConfig,
    dry_run: bool,
    now: DateTime<Utc>,
    error: String,
) {
    eprintln!("dataset {}: {error}", ds.name);
    if json {
        let now = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        reports.push(crate::pass::report::PassReport::not_started(
            &ds.name,
            dry_run,
            &now,
            ds.store.describe(),
            error,
        ));
    }
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
