//! The host's model of a dataset's units: segments, their tiers, and what a plugin may decide for them.
//!
//! Segments are kept as plain structs (one per file or object); the plugin boundary turns batches of them into
//! columns (see `plugin::batch`). Label keys and values are interned in a [`Symbols`] table per scan, because the
//! same few strings repeat across hundreds of thousands of segments and the plugin receives each string once.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Where a segment's bytes live. Ordered: a segment only ever moves to a later tier, or is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Hot,
    Compressed,
    Archived,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Hot => "hot",
            Tier::Compressed => "compressed",
            Tier::Archived => "archived",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to do with one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Keep,
    Compress,
    Archive,
    Drop,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Keep => "keep",
            Action::Compress => "compress",
            Action::Archive => "archive",
            Action::Drop => "drop",
        }
    }

    /// Whether the action makes sense for a segment in `tier` (the WIT contract's table).
    pub const fn allowed_from(self, tier: Tier) -> bool {
        match self {
            Action::Keep | Action::Drop => true,
            Action::Compress => matches!(tier, Tier::Hot),
            Action::Archive => !matches!(tier, Tier::Archived),
        }
    }

    /// The tier a segment is in after the action, `None` when it is gone.
    pub fn tier_after(self, tier: Tier) -> Option<Tier> {
        match self {
            Action::Keep => Some(tier),
            Action::Compress => Some(Tier::Compressed),
            Action::Archive => Some(Tier::Archived),
            Action::Drop => None,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A segment's labels, `(key, value)` symbol pairs, sorted by key. Stored inline up to four labels: the plan loop
/// touches every segment's labels, and a pointer to a separate allocation per segment costs a cache miss each.
pub type Labels = smallvec::SmallVec<[(Sym, Sym); 4]>;

/// Id of an interned string; 0 is never used so that the WIT layout can use it for "absent".
pub type Sym = u32;

/// An interning table for label keys and values. Ids start at 1 and are dense, in order of first appearance.
#[derive(Debug, Default, Clone)]
pub struct Symbols {
    ids: HashMap<Arc<str>, Sym>,
    strings: Vec<Arc<str>>,
}

impl Symbols {
    pub fn new() -> Self {
        Self::default()
    }

    /// The id of `s`, adding it if new.
    pub fn intern(&mut self, s: &str) -> Sym {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let s: Arc<str> = Arc::from(s);
        self.strings.push(s.clone());
        let id = self.strings.len() as Sym;
        self.ids.insert(s, id);
        id
    }

    /// The id of `s` if it was interned.
    pub fn get(&self, s: &str) -> Option<Sym> {
        self.ids.get(s).copied()
    }

    /// The string of `id`; panics on an id this table did not hand out.
    pub fn resolve(&self, id: Sym) -> &str {
        &self.strings[id as usize - 1]
    }

    /// Number of symbols; the largest id.
    pub fn len(&self) -> usize {
        self.strings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }

    /// Symbols with ids `from..=to` (1-based), for sending to a plugin incrementally.
    pub fn range(&self, from: Sym, to: Sym) -> impl Iterator<Item = &str> {
        self.strings[from as usize - 1..to as usize].iter().map(|s| &**s)
    }
}

/// What the scan saw of a segment, in the store's own terms, that apply compares before acting (the way object
/// stores compare an ETag): for a file its modification time and inode, for an object its last-modified time, for a
/// table a row count and a transaction id. Opaque outside the store that made it; together with the size, a segment
/// whose token differs has changed since the scan (`StoreError::Changed`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ChangeToken(pub [u64; 2]);

/// One unit of a dataset: a file, a time chunk of a table, an archived object.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Logical name, stable across tiers (for a directory store: the path relative to the root, `/`-separated,
    /// without the `.zst` of a compressed copy). Unique within a dataset.
    pub name: String,
    pub tier: Tier,
    /// Time range in milliseconds since the Unix epoch; `start_ms == end_ms` when only one time is known.
    pub start_ms: i64,
    pub end_ms: i64,
    pub rows: Option<u64>,
    /// Size as stored in the current tier.
    pub bytes: u64,
    /// Interned `(key, value)` pairs, sorted by key id, keys unique.
    pub labels: Labels,
    /// Where the store finds the bytes (a path, an object key). Opaque outside the store that made it.
    pub locator: String,
    /// What the scan saw of it, in the store's own terms (for a file its mtime and inode): with `bytes`, lets the
    /// store refuse to act on a segment that changed between scan and apply (a log still being written, another file
    /// swapped in under the name).
    pub token: ChangeToken,
}

impl Segment {
    /// The value of label `key`, if the segment has it.
    pub fn label<'a>(&self, symbols: &'a Symbols, key: &str) -> Option<&'a str> {
        let k = symbols.get(key)?;
        self.labels
            .iter()
            .find(|(kk, _)| *kk == k)
            .map(|(_, v)| symbols.resolve(*v))
    }
}

/// A plugin's decision for one segment: 8 bytes, since a plan holds one per segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    /// Index + 1 of the reason in the plan's [`Reasons`], 0 for none.
    pub reason: u32,
}

/// The distinct reason texts of a plan. Plugins give the same few reasons to many segments, so decisions refer to
/// them by id.
#[derive(Debug, Default, Clone)]
pub struct Reasons {
    ids: HashMap<Arc<str>, u32>,
    texts: Vec<Arc<str>>,
}

impl Reasons {
    /// The id of `text` (1-based), adding it if new.
    pub fn intern(&mut self, text: &str) -> u32 {
        if let Some(&id) = self.ids.get(text) {
            return id;
        }
        let t: Arc<str> = Arc::from(text);
        self.texts.push(t.clone());
        let id = self.texts.len() as u32;
        self.ids.insert(t, id);
        id
    }

    /// The text of a decision's reason, if it has one.
    pub fn of(&self, d: &Decision) -> Option<&str> {
        match d.reason {
            0 => None,
            id => Some(&self.texts[id as usize - 1]),
        }
    }

    pub fn len(&self) -> usize {
        self.texts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }
}

/// Count and bytes of segments, used for totals per tier and per action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub segments: u64,
    pub bytes: u64,
}

impl Tally {
    pub fn add(&mut self, bytes: u64) {
        self.segments += 1;
        self.bytes += bytes;
    }
}

/// Totals of a dataset per tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TierTotals {
    pub hot: Tally,
    pub compressed: Tally,
    pub archived: Tally,
}

impl TierTotals {
    pub fn of(segments: &[Segment]) -> Self {
        let mut t = TierTotals::default();
        for s in segments {
            t.get_mut(s.tier).add(s.bytes);
        }
        t
    }

    pub fn get_mut(&mut self, tier: Tier) -> &mut Tally {
        match tier {
            Tier::Hot => &mut self.hot,
            Tier::Compressed => &mut self.compressed,
            Tier::Archived => &mut self.archived,
        }
    }

    pub fn all(&self) -> Tally {
        Tally {
            segments: self.hot.segments + self.compressed.segments + self.archived.segments,
            bytes: self.hot.bytes + self.compressed.bytes + self.archived.bytes,
        }
    }
}

/// Sorts segments oldest first, the order the WIT contract promises: by end time, then by name.
pub fn sort_oldest_first(segments: &mut [Segment]) {
    segments.sort_unstable_by(|a, b| a.end_ms.cmp(&b.end_ms).then_with(|| a.name.cmp(&b.name)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_start_at_one_and_are_dense() {
        let mut s = Symbols::new();
        assert_eq!(s.intern("level"), 1);
        assert_eq!(s.intern("debug"), 2);
        assert_eq!(s.intern("level"), 1);
        assert_eq!(s.resolve(2), "debug");
        assert_eq!(s.range(1, 2).collect::<Vec<_>>(), ["level", "debug"]);
    }

    #[test]
    fn actions_follow_the_tier_table_of_the_contract() {
        assert!(Action::Compress.allowed_from(Tier::Hot));
        assert!(!Action::Compress.allowed_from(Tier::Compressed));
        assert!(!Action::Compress.allowed_from(Tier::Archived));
        assert!(Action::Archive.allowed_from(Tier::Compressed));
        assert!(!Action::Archive.allowed_from(Tier::Archived));
        assert!(Action::Drop.allowed_from(Tier::Archived));
    }
}
