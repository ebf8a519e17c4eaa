//! Apply: hands the store a plan's actions in groups, with bounded parallelism, and collects one outcome per action.
//!
//! Groups let a store amortise durability (one filesystem sync per group instead of one per file) while keeping each
//! action crash-safe; the group size also bounds how much work a shutdown has to wait for.

use crate::segment::{Action, Decision, Segment};
use crate::store::{Applied, Store, StoreError, Work};

/// Actions handed to the store at once. Large enough for the store's own durability groups to fill (one filesystem
/// sync per phase per group: the directory store syncs every 4,096 compressions), small enough that a shutdown waits
/// for one group at most.
pub const GROUP: usize = 4_096;

/// Applies every non-keep decision. Returns, per segment, `None` for keep (or for an action not started because
/// `cancel` fired: it is checked between groups), else the action's outcome.
pub async fn apply(
    store: &dyn Store,
    segments: &[Segment],
    decisions: &[Decision],
    parallelism: usize,
    now_ms: i64,
    progress: &(dyn Fn(u64) + Send + Sync),
    cancel: Option<&tokio_util::sync::CancellationToken>,
) -> Vec<Option<Result<Applied, StoreError>>> {
    let mut outcomes: Vec<Option<Result<Applied, StoreError>>> = (0..segments.len()).map(|_| None).collect();
    let todo: Vec<usize> = (0..segments.len())
        .filter(|&i| decisions[i].action != Action::Keep)
        .collect();
    for chunk in todo.chunks(GROUP) {
        if cancel.is_some_and(|c| c.is_cancelled()) {
            break;
        }
        let work: Vec<Work<'_>> = chunk
            .iter()
            .map(|&i| Work {
                segment: &segments[i],
                action: decisions[i].action,
            })
            .collect();
        let results = store.apply(&work, parallelism, now_ms, progress).await;
        debug_assert_eq!(results.len(), chunk.len());
        for (&i, r) in chunk.iter().zip(results) {
            outcomes[i] = Some(r);
        }
    }
    outcomes
}
