//! `retention archive restore`: putting archived segments back into their dataset (recorded in the audit trail
//! through [`crate::execute::unarchive`]).

use clap::Subcommand;

use super::trash::TrashDataset;

#[derive(Debug, Subcommand)]
pub enum ArchiveCommand {
    /// Puts archived segments back into the dataset, rows and types exact (a table dataset's partition: re-created,
    /// filled from its Parquet and attached with its bound), then deletes their archive objects. Refused for a
    /// segment that exists in the dataset now.
    Restore {
        #[command(flatten)]
        dataset: TrashDataset,
        /// Segment names, as reports show them.
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// `retention archive restore`: exit code 1 when a restore failed, 2 for a bad config or dataset.
pub(super) async fn archive(cmd: ArchiveCommand) -> anyhow::Result<i32> {
    let ArchiveCommand::Restore { dataset: which, names } = cmd;
    let (config, store) = which.open().await?;
    let ds = config.dataset(&which.dataset).expect("open() found it");
    let state = crate::state::StateDb::open(&config.service.state_dir);
    if let Err(e) = &state {
        eprintln!("warning: cannot open the state database, restores will not be recorded: {e}");
    }
    let mut failed = false;
    for name in &names {
        match crate::execute::unarchive(state.as_ref().ok(), &ds.name, &*store, name, "command line").await {
            Ok((r, unrecorded)) => {
                if let Some(err) = unrecorded {
                    eprintln!(
                        "warning: {} was restored but not recorded in the audit trail: {err}",
                        crate::pass::report::escaped(&r.name)
                    );
                }
                let rows = r.rows.map_or(String::new(), |n| format!("{n} rows, "));
                println!(
                    "restored {} from the archive ({rows}{} archived)",
                    crate::pass::report::escaped(&r.name),
                    crate::pass::report::human_bytes(r.bytes)
                );
            }
            Err(e) => {
                eprintln!("error: {}", crate::pass::report::escaped(&e.to_string()));
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}
