//! The plan: the plugin decides for every segment, on a blocking thread under its own deadlines; in shadow mode a
//! second version plans the very same segments and symbols afterwards, and only its comparison is kept.

use std::sync::Arc;

use super::{PassError, PassOptions};
use crate::config::DatasetConfig;
use crate::pass::report::PassReport;
use crate::plugin::{LoadedPlugin, PassInput, PlanOutput};
use crate::segment::{Segment, Symbols};

/// Plans `segments` with `plugin` (and the shadow, if any); returns the plan and the symbols, now shared.
pub(super) async fn plan(
    dataset: &DatasetConfig,
    plugin: Arc<LoadedPlugin>,
    segments: Arc<Vec<Segment>>,
    symbols: Symbols,
    opts: &PassOptions,
    report: &mut PassReport,
) -> Result<(PlanOutput, Arc<Symbols>), PassError> {
    // Plugins run synchronously under their own deadlines; keep them off the async workers.
    let (plan, symbols) = {
        let segments = segments.clone();
        let dataset_name = dataset.name.clone();
        let params = dataset.params.clone();
        let pass_id = report.pass_id.clone();
        let now_ms = opts.now.timestamp_millis();
        let dry_run = opts.dry_run;
        tokio::task::spawn_blocking(move || {
            let input = PassInput {
                pass_id: &pass_id,
                dataset: &dataset_name,
                now_ms,
                dry_run,
                params: &params,
            };
            plugin.plan(input, segments, &symbols).map(|plan| (plan, symbols))
        })
        .await
        .map_err(|e| PassError::Other(format!("planning task failed: {e}")))??
    };
    // Shared with the shadow's plan, if any.
    let symbols = Arc::new(symbols);
    if let (Some(shadow), Some(active)) = (&opts.shadow, &report.plugin) {
        // The shadow plans the same segments after the active plan; its plan is only compared, never applied, and
        // its failure is recorded in the comparison, not in the pass.
        let cx = super::shadow::Context {
            pass_id: &report.pass_id,
            dataset: &dataset.name,
            now_ms: opts.now.timestamp_millis(),
            params: &dataset.params,
        };
        let compared = super::shadow::run(shadow, active, cx, segments, symbols.clone(), &plan).await;
        report.shadow = Some(compared);
    }
    Ok((plan, symbols))
}
