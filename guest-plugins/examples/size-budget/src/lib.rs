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
