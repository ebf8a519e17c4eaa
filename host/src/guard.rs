//! Guards: limits a plan must respect before anything is applied. A tripped guard refuses the whole plan, so a
//! plugin bug (or a rule that is right in general but wrong today) cannot empty a dataset in one pass.

use crate::config::GuardConfig;
use crate::report::human_bytes;
use crate::segment::{Action, Decision, Segment};

/// A guard refused the plan. Says which guard and with what figures.
#[derive(Debug, Clone, thiserror::Error)]
#[error("guard {guard} tripped: {detail}; nothing was applied")]
pub struct GuardTripped {
    pub guard: &'static str,
    pub detail: String,
}

/// Checks a plan (one decision per segment) against the dataset's guards.
pub fn check(cfg: &GuardConfig, segments: &[Segment], decisions: &[Decision]) -> Result<(), GuardTripped> {
    let total: u64 = segments.iter().map(|s| s.bytes).sum();
    let dropped: u64 = segments
        .iter()
        .zip(decisions)
        .filter(|(_, d)| d.action == Action::Drop)
        .map(|(s, _)| s.bytes)
        .sum();
    if dropped > 0 {
        let fraction = dropped as f64 / total as f64;
        if fraction > cfg.max_drop_bytes_fraction {
            return Err(GuardTripped {
                guard: "max_drop_bytes_fraction",
                detail: format!(
                    "the plan drops {} of the dataset's {} ({:.1}%), more than the limit of {:.1}%",
                    human_bytes(dropped),
                    human_bytes(total),
                    fraction * 100.0,
                    cfg.max_drop_bytes_fraction * 100.0
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::Tier;

    fn segs(sizes: &[u64]) -> Vec<Segment> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &bytes)| Segment {
                name: format!("s{i}"),
                tier: Tier::Hot,
                start_ms: 0,
                end_ms: 0,
                rows: None,
                bytes,
                labels: Default::default(),
                locator: String::new(),
                modified_ns: 0,
            })
            .collect()
    }

    fn d(a: Action) -> Decision {
        Decision { action: a, reason: 0 }
    }

    #[test]
    fn a_plan_dropping_more_than_the_fraction_is_refused_with_figures() {
        let cfg = GuardConfig {
            max_drop_bytes_fraction: 0.5,
        };
        let s = segs(&[600, 400]);
        let e = check(&cfg, &s, &[d(Action::Drop), d(Action::Keep)]).unwrap_err();
        assert_eq!(e.guard, "max_drop_bytes_fraction");
        assert!(e.to_string().contains("600 B of the dataset's 1000 B (60.0%)"), "{e}");
        check(&cfg, &s, &[d(Action::Keep), d(Action::Drop)]).unwrap();
    }

    #[test]
    fn archiving_and_compressing_do_not_count_as_dropping() {
        let cfg = GuardConfig {
            max_drop_bytes_fraction: 0.0,
        };
        let s = segs(&[1, 1]);
        check(&cfg, &s, &[d(Action::Archive), d(Action::Compress)]).unwrap();
    }
}
