//! The contract's value types (tiers, actions, totals), re-exported from the generated bindings so that values cross
//! the boundary without conversion, with the helpers plugins need.

use std::fmt;

pub use crate::bindings::retention::policy::types::{Action, DatasetTotals, Tier, TierTotals};

impl Tier {
    /// Every tier, in order: hot, compressed, archived.
    pub const ALL: [Tier; 3] = [Tier::Hot, Tier::Compressed, Tier::Archived];

    /// The tier of a code in `segment-batch.tiers` (the index of its case), `None` for an unknown code.
    #[inline]
    pub const fn from_code(code: u8) -> Option<Tier> {
        match code {
            0 => Some(Tier::Hot),
            1 => Some(Tier::Compressed),
            2 => Some(Tier::Archived),
            _ => None,
        }
    }

    /// The tier's name as the host writes it: `hot`, `compressed` or `archived`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Tier::Hot => "hot",
            Tier::Compressed => "compressed",
            Tier::Archived => "archived",
        }
    }

    /// Whether the segment's bytes are on the dataset's own storage (hot or compressed), as opposed to the archive.
    pub const fn is_local(self) -> bool {
        !matches!(self, Tier::Archived)
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Action {
    /// The code of the action in `verdicts.actions`: the index of its case.
    #[inline]
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// Every action: keep, compress, archive, drop.
    pub const ALL: [Action; 4] = [Action::Keep, Action::Compress, Action::Archive, Action::Drop];

    /// The action's name as the host writes it: `keep`, `compress`, `archive` or `drop`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Action::Keep => "keep",
            Action::Compress => "compress",
            Action::Archive => "archive",
            Action::Drop => "drop",
        }
    }

    /// The contract's tier table: `keep` and `drop` are allowed from any tier, `compress` only from hot, `archive`
    /// from hot or compressed. A decision outside the table fails the pass.
    pub const fn allowed_from(self, tier: Tier) -> bool {
        match self {
            Action::Keep | Action::Drop => true,
            Action::Compress => matches!(tier, Tier::Hot),
            Action::Archive => !matches!(tier, Tier::Archived),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TierTotals {
    /// No segments, no bytes.
    pub const ZERO: TierTotals = TierTotals { segments: 0, bytes: 0 };
}

impl DatasetTotals {
    /// The totals of one tier.
    pub const fn tier(&self, tier: Tier) -> TierTotals {
        match tier {
            Tier::Hot => self.hot,
            Tier::Compressed => self.compressed,
            Tier::Archived => self.archived,
        }
    }

    /// Number of segments in the pass (all tiers); the last segment's index is this minus one.
    pub const fn segments(&self) -> u64 {
        self.hot
            .segments
            .saturating_add(self.compressed.segments)
            .saturating_add(self.archived.segments)
    }

    /// Bytes in all tiers, as stored. (Sums saturate: the host's numbers are trusted, but a plugin must not trap.)
    pub const fn bytes(&self) -> u64 {
        self.hot
            .bytes
            .saturating_add(self.compressed.bytes)
            .saturating_add(self.archived.bytes)
    }

    /// Bytes on the dataset's own storage: hot plus compressed (what a disk budget usually means).
    pub const fn local_bytes(&self) -> u64 {
        self.hot.bytes.saturating_add(self.compressed.bytes)
    }

    /// Segments on the dataset's own storage: hot plus compressed.
    pub const fn local_segments(&self) -> u64 {
        self.hot.segments.saturating_add(self.compressed.segments)
    }
}
