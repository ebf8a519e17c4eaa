//! `size-budget`: keeps a dataset under a size budget by dropping (or archiving) its oldest segments.
//!
//! Parameters:
//! - `max_bytes` (required): the budget, e.g. `10GiB`, `500 MB` or `1073741824` (units: B, kB/MB/GB/TB/PB = powers
//!   of 1000, KiB/MiB/GiB/TiB/PiB = powers of 1024; single letters like `G` are rejected as ambiguous).
//! - `mode`: `drop` (default) removes segments; `archive` moves them to the archive instead.
//! - `count`: which tiers count toward the budget. `local` (default) counts hot + compressed segments — the
//!   dataset's own disk — and leaves archived segments alone. `all` counts every tier, archived included, and drops
//!   archived segments too when they are the oldest; it works only with `mode = "drop"`, since archiving does not
//!   reduce the total of all tiers.
//!
//! How: the pass's totals say how far over budget the counted tiers are at the start; segments stream past oldest
//! first, and every counted segment is dropped (or archived) while the excess is still positive, so the newest
//! segments that fit in the budget are kept. Sizes are as stored (compressed size for compressed segments). The plugin
//! needs no observe pass.

use std::rc::Rc;

use retention_sdk::prelude::*;

/// What happens to a segment over the budget.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Drop,
    Archive,
}

/// Keeps the counted tiers under `max_bytes`, oldest first.
struct SizeBudget {
    mode: Mode,
    /// Whether archived segments count toward the budget (`count = "all"`).
    count_archived: bool,
    /// Bytes still to free before the dataset fits.
    excess: u64,
    reason: Rc<str>,
}

impl Plugin for SizeBudget {
    const INFO: Info = Info {
        name: "size-budget",
        version: env!("CARGO_PKG_VERSION"),
        description: "Keeps a dataset under max_bytes by dropping or archiving its oldest segments.",
    };

    fn begin(ctx: &Context) -> Result<Self, String> {
        ctx.check_params(&["max_bytes", "mode", "count"])?;
        let max: ByteSize = ctx.param("max_bytes")?;
        let mode = match ctx.param_str("mode").map(str::trim) {
            None | Some("drop") => Mode::Drop,
            Some("archive") => Mode::Archive,
            Some(other) => {
                return Err(format!(
                    "parameter `mode` = {other:?}: expected \"drop\" or \"archive\""
                ));
            }
        };
        let count_archived = match ctx.param_str("count").map(str::trim) {
            None | Some("local") => false,
            Some("all") => true,
            Some(other) => return Err(format!("parameter `count` = {other:?}: expected \"local\" or \"all\"")),
        };
        if count_archived && mode == Mode::Archive {
            return Err(
                "`mode = archive` cannot work with `count = all`: archiving a segment does not make the \
                        dataset's total across all tiers smaller (use count = local)"
                    .into(),
            );
        }
        let totals = ctx.totals();
        let (counted, what) = if count_archived {
            (totals.bytes(), "all tiers")
        } else {
            (totals.local_bytes(), "hot+compressed")
        };
        let excess = counted.saturating_sub(max.bytes());
        let verb = match mode {
            Mode::Drop => "dropping",
            Mode::Archive => "archiving",
        };
        let reason = format!("{what} {} > max_bytes {max}: {verb} oldest first", ByteSize(counted));
        Ok(SizeBudget {
            mode,
            count_archived,
            excess,
            reason: reason.into(),
        })
    }

    fn decide(&mut self, seg: &Segment) -> Decision {
        let counted = self.count_archived || seg.tier().is_local();
        if self.excess == 0 || !counted {
            return Decision::keep();
        }
        self.excess = self.excess.saturating_sub(seg.bytes());
        match self.mode {
            Mode::Drop => Decision::drop(&self.reason),
            Mode::Archive => Decision::archive(&self.reason),
        }
    }
}

retention_sdk::export_plugin!(SizeBudget);

#[cfg(test)]
mod tests {
    //! The documented behaviour, run through `retention_sdk::testing` as the host runs it.

    use super::*;
    use retention_sdk::testing::{Pass, seg};

    const NOW: &str = "2026-03-01T00:00:00Z";

    /// Four hot segments of 400 bytes, 4 to 1 days old: 1,600 bytes.
    fn four_hot() -> Pass {
        Pass::new(NOW).segments((1..=4).map(|age| seg(format!("hot-{age}d")).age_days(age).bytes(400)))
    }

    /// An archived segment of 5,000 bytes and a compressed one of 300, older than two hot ones of 400.
    fn mixed() -> Pass {
        Pass::new(NOW)
            .segment(seg("archived-10d").age_days(10).bytes(5000).tier(Tier::Archived))
            .segment(seg("compressed-5d").age_days(5).bytes(300).tier(Tier::Compressed))
            .segment(seg("hot-3d").age_days(3).bytes(400))
            .segment(seg("hot-1d").age_days(1).bytes(400))
    }

    #[test]
    fn the_oldest_segments_are_dropped_until_the_rest_fits_the_budget() {
        let out = four_hot().param("max_bytes", 1000).run::<SizeBudget>().unwrap();
        assert_eq!(out.names_with(Action::Drop), ["hot-4d", "hot-3d"]);
        assert_eq!(out.names_with(Action::Keep), ["hot-2d", "hot-1d"]);
        assert_eq!(
            out.reason("hot-4d"),
            Some("hot+compressed 1.56 KiB > max_bytes 1000 B: dropping oldest first")
        );
        assert_eq!(out.reason("hot-2d"), None);
    }

    #[test]
    fn a_dataset_within_its_budget_is_kept_whole() {
        let out = four_hot().param("max_bytes", 1600).run::<SizeBudget>().unwrap();
        assert_eq!(out.names_with(Action::Keep).len(), 4);
        assert!(out.decisions().iter().all(|d| d.reason.is_none()));
    }

    #[test]
    fn mode_archive_archives_instead_and_count_local_leaves_archived_segments_out() {
        let out = mixed()
            .param("max_bytes", "1KB")
            .param("mode", "archive")
            .run::<SizeBudget>()
            .unwrap();
        // Local bytes are 1,100, 100 over: the oldest local segment (compressed) goes; the archived one neither
        // counts nor moves.
        assert_eq!(out.names_with(Action::Archive), ["compressed-5d"]);
        assert_eq!(
            out.reason("compressed-5d"),
            Some("hot+compressed 1.07 KiB > max_bytes 1000 B: archiving oldest first")
        );
        assert_eq!(out.names_with(Action::Keep), ["archived-10d", "hot-3d", "hot-1d"]);
    }

    #[test]
    fn count_all_counts_archived_bytes_and_drops_archived_segments_too() {
        let out = mixed()
            .param("max_bytes", "1KB")
            .param("count", "all")
            .run::<SizeBudget>()
            .unwrap();
        assert_eq!(out.names_with(Action::Drop), ["archived-10d", "compressed-5d"]);
        assert_eq!(
            out.reason("archived-10d"),
            Some("all tiers 5.96 KiB > max_bytes 1000 B: dropping oldest first")
        );
        assert_eq!(out.names_with(Action::Keep), ["hot-3d", "hot-1d"]);
    }

    #[test]
    fn max_bytes_takes_binary_and_decimal_units() {
        let out = four_hot().param("max_bytes", "1KiB").run::<SizeBudget>().unwrap();
        assert_eq!(out.names_with(Action::Drop), ["hot-4d", "hot-3d"]);
        let out = four_hot().param("max_bytes", "1.2 kB").run::<SizeBudget>().unwrap();
        assert_eq!(out.names_with(Action::Drop), ["hot-4d"]);
    }

    #[test]
    fn a_missing_malformed_or_contradictory_parameter_fails_the_pass() {
        let err = |pass: Pass| pass.run::<SizeBudget>().unwrap_err();
        let e = err(four_hot());
        assert_eq!(
            (e.call(), e.message()),
            ("begin", "missing required parameter `max_bytes`")
        );
        assert_eq!(
            err(four_hot().param("max_bytes", "10G")).message(),
            "parameter `max_bytes` = \"10G\": expected ByteSize: ambiguous unit \"G\": write GB (powers of 1000) or \
             GiB (powers of 1024)"
        );
        assert_eq!(
            err(four_hot().param("max_bytes", 1).param("mode", "delete")).message(),
            "parameter `mode` = \"delete\": expected \"drop\" or \"archive\""
        );
        assert_eq!(
            err(four_hot().param("max_bytes", 1).param("count", "some")).message(),
            "parameter `count` = \"some\": expected \"local\" or \"all\""
        );
        assert!(
            err(four_hot()
                .param("max_bytes", 1)
                .param("mode", "archive")
                .param("count", "all"))
            .message()
            .starts_with("`mode = archive` cannot work with `count = all`")
        );
        assert_eq!(
            err(four_hot().param("max_byte", 1)).message(),
            "unknown parameter `max_byte` (expected: max_bytes, mode, count)"
        );
    }

    #[test]
    fn decisions_do_not_depend_on_the_batch_size() {
        let pass = Pass::new(NOW).param("max_bytes", "10kB").segments((0..60).map(|i| {
            let tier = Tier::ALL[i % 3];
            seg(format!("s{i}"))
                .age_days(i as i64)
                .bytes(100 + i as u64 * 7)
                .tier(tier)
        }));
        let whole = pass.run::<SizeBudget>().unwrap();
        assert!(!whole.names_with(Action::Drop).is_empty() && !whole.names_with(Action::Keep).is_empty());
        for size in [1, 7] {
            let cut = pass.clone().batch_size(size).run::<SizeBudget>().unwrap();
            assert_eq!(cut.decisions(), whole.decisions(), "batch size {size}");
        }
    }
}
