//! Guards: limits a plan must respect before anything is applied. A tripped guard refuses the whole plan, so a
//! plugin bug (or a rule that is right in general but wrong today) cannot empty a dataset in one pass.

use crate::config::GuardConfig;
use crate::pass::report::human_bytes;
use crate::segment::{Action, Decision, Segment};

/// A guard refused the plan. Says which guard and with what figures.
#[derive(Debug, Clone, thiserror::Error)]
#[error("guard {guard} tripped: {detail}; nothing was applied")]
pub struct GuardTripped {
    pub guard: &'static str,
    pub detail: String,
}

/// Checks a plan (one decision per segment, segments oldest first) against the dataset's guards. `now_ms` is the
/// pass's now (for the minimum age); `force` lets the plan past the fraction guards, never past the others.
pub fn check(
    cfg: &GuardConfig,
    segments: &[Segment],
    decisions: &[Decision],
    now_ms: i64,
    force: bool,
) -> Result<(), GuardTripped> {
    let drops = || segments.iter().zip(decisions).filter(|(_, d)| d.action == Action::Drop);
    let dropped_segments = drops().count();
    if dropped_segments == 0 {
        return Ok(());
    }
    // The newest N segments: the last N of the oldest-first order.
    let newest_from = segments
        .len()
        .saturating_sub(cfg.keep_newest.min(usize::MAX as u64) as usize);
    if let Some(i) = (newest_from..segments.len()).find(|&i| decisions[i].action == Action::Drop) {
        return Err(GuardTripped {
            guard: "keep_newest",
            detail: format!(
                "the plan drops {}, one of the dataset's {} newest segments, which are never dropped",
                segments[i].name, cfg.keep_newest
            ),
        });
    }
    let min_age_ms = cfg.min_drop_age.as_millis().min(i64::MAX as u128) as i64;
    if let Some((s, _)) = drops().find(|(s, _)| now_ms.saturating_sub(s.end_ms) < min_age_ms) {
        let age_s = now_ms.saturating_sub(s.end_ms) / 1_000;
        return Err(GuardTripped {
            guard: "min_drop_age_secs",
            detail: format!(
                "the plan drops {}, which is {age_s} s old, younger than the minimum age of {} s",
                s.name,
                cfg.min_drop_age.as_secs()
            ),
        });
    }
    if force {
        return Ok(());
    }
    let total: u64 = segments.iter().map(|s| s.bytes).sum();
    let dropped: u64 = drops().map(|(s, _)| s.bytes).sum();
    let fraction = if total == 0 { 0.0 } else { dropped as f64 / total as f64 };
    if fraction > cfg.max_drop_bytes_fraction {
        return Err(GuardTripped {
            guard: "max_drop_bytes_fraction",
            detail: format!(
                "the plan drops {} of the dataset's {} ({:.1}%), more than the limit of {:.1}% \
                 (--force lets one pass past it)",
                human_bytes(dropped),
                human_bytes(total),
                fraction * 100.0,
                cfg.max_drop_bytes_fraction * 100.0
            ),
        });
    }
    let fraction = dropped_segments as f64 / segments.len() as f64;
    if fraction > cfg.max_drop_segments_fraction {
        return Err(GuardTripped {
            guard: "max_drop_segments_fraction",
            detail: format!(
                "the plan drops {dropped_segments} of the dataset's {} segments ({:.1}%), more than the limit of \
                 {:.1}% (--force lets one pass past it)",
                segments.len(),
                fraction * 100.0,
                cfg.max_drop_segments_fraction * 100.0
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::Tier;

    const NOW: i64 = 1_000_000_000_000;
    const DAY: i64 = 86_400_000;

    /// Segments a day apart, the last one a day old.
    fn segs(sizes: &[u64]) -> Vec<Segment> {
        let n = sizes.len() as i64;
        sizes
            .iter()
            .enumerate()
            .map(|(i, &bytes)| Segment {
                name: format!("s{i}"),
                tier: Tier::Hot,
                start_ms: NOW - (n - i as i64) * DAY,
                end_ms: NOW - (n - i as i64) * DAY,
                rows: None,
                bytes,
                labels: Default::default(),
                locator: String::new(),
                token: Default::default(),
            })
            .collect()
    }

    fn d(a: Action) -> Decision {
        Decision { action: a, reason: 0 }
    }

    fn open() -> GuardConfig {
        GuardConfig {
            max_drop_bytes_fraction: 1.0,
            max_drop_segments_fraction: 1.0,
            keep_newest: 0,
            min_drop_age: std::time::Duration::ZERO,
        }
    }

    #[test]
    fn a_plan_dropping_more_than_the_bytes_fraction_is_refused_with_figures_unless_forced() {
        let cfg = GuardConfig {
            max_drop_bytes_fraction: 0.5,
            ..open()
        };
        let s = segs(&[600, 400]);
        let plan = [d(Action::Drop), d(Action::Keep)];
        let e = check(&cfg, &s, &plan, NOW, false).unwrap_err();
        assert_eq!(e.guard, "max_drop_bytes_fraction");
        assert!(e.to_string().contains("600 B of the dataset's 1000 B (60.0%)"), "{e}");
        check(&cfg, &s, &plan, NOW, true).unwrap();
        check(&cfg, &s, &[d(Action::Keep), d(Action::Drop)], NOW, false).unwrap();
    }

    #[test]
    fn a_plan_dropping_more_than_the_segments_fraction_is_refused_unless_forced() {
        let cfg = GuardConfig {
            max_drop_segments_fraction: 0.5,
            ..open()
        };
        let s = segs(&[1, 1, 1, 100]);
        let plan = [d(Action::Drop), d(Action::Drop), d(Action::Drop), d(Action::Keep)];
        let e = check(&cfg, &s, &plan, NOW, false).unwrap_err();
        assert_eq!(e.guard, "max_drop_segments_fraction");
        assert!(
            e.to_string().contains("drops 3 of the dataset's 4 segments (75.0%)"),
            "{e}"
        );
        check(&cfg, &s, &plan, NOW, true).unwrap();
    }

    #[test]
    fn the_newest_segments_are_never_dropped_even_when_forced() {
        let cfg = GuardConfig {
            keep_newest: 2,
            ..open()
        };
        let s = segs(&[1, 1, 1]);
        let e = check(
            &cfg,
            &s,
            &[d(Action::Keep), d(Action::Drop), d(Action::Keep)],
            NOW,
            true,
        )
        .unwrap_err();
        assert_eq!(e.guard, "keep_newest");
        assert!(e.to_string().contains("drops s1, one of the dataset's 2 newest"), "{e}");
        check(
            &cfg,
            &s,
            &[d(Action::Drop), d(Action::Keep), d(Action::Keep)],
            NOW,
            false,
        )
        .unwrap();
    }

    #[test]
    fn segments_younger_than_the_minimum_age_are_never_dropped_even_when_forced() {
        let cfg = GuardConfig {
            min_drop_age: std::time::Duration::from_secs(2 * 86_400),
            ..open()
        };
        let s = segs(&[1, 1, 1]);
        let e = check(
            &cfg,
            &s,
            &[d(Action::Keep), d(Action::Keep), d(Action::Drop)],
            NOW,
            true,
        )
        .unwrap_err();
        assert_eq!(e.guard, "min_drop_age_secs");
        assert!(e.to_string().contains("drops s2, which is 86400 s old"), "{e}");
        // s0 is three days old, s1 exactly two.
        check(
            &cfg,
            &s,
            &[d(Action::Drop), d(Action::Drop), d(Action::Keep)],
            NOW,
            false,
        )
        .unwrap();
    }

    #[test]
    fn archiving_and_compressing_do_not_count_as_dropping() {
        let cfg = GuardConfig {
            max_drop_bytes_fraction: 0.0,
            max_drop_segments_fraction: 0.0,
            keep_newest: 10,
            min_drop_age: std::time::Duration::from_secs(1 << 40),
        };
        let s = segs(&[1, 1]);
        check(&cfg, &s, &[d(Action::Archive), d(Action::Compress)], NOW, false).unwrap();
    }
}
