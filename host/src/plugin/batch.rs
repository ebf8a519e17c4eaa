//! The boundary layout: turns a slice of segments into the WIT's column-oriented `segment-batch`, and checks a
//! plugin's `verdicts` against the contract before turning them into decisions.
//!
//! Columns of numbers lower into the guest as one copy each; strings would cost an allocation in the guest apiece.
//! So label keys and values travel as symbol ids, each symbol's text sent once per pass, and names are only sent when
//! the plugin asks (`host::batch_names`).

use super::MAX_REASON_BYTES;
use super::bindings::{LabelColumn, SegmentBatch, Verdicts, WitAction, WitTier};
use crate::segment::{Action, Decision, Reasons, Segment, Sym, Symbols, Tier, TierTotals};

/// A pass's segments as `segment-batch` columns, built once and sent to the plugin as often as the pass needs
/// (twice with observe-first). Symbols are attached when a batch is sent (see [`SymbolFeed`]), since the contract
/// sends each symbol once per pass, whichever call comes first.
pub struct Batches {
    /// Each batch and the range of the pass's segments it holds; `symbols` is empty until sent.
    pub list: Vec<(std::ops::Range<usize>, SegmentBatch)>,
    /// Per batch, the largest symbol id its labels use.
    max_symbol: Vec<Sym>,
    /// Totals of all the segments per tier, for the pass context.
    pub totals: TierTotals,
}

impl Batches {
    /// Splits `segments` into batches of at most `batch_size`, column by column.
    pub fn build(segments: &[Segment], batch_size: usize) -> Batches {
        let mut column_of: Vec<u32> = Vec::new();
        let mut list = Vec::with_capacity(segments.len().div_ceil(batch_size.max(1)));
        let mut max_symbol = Vec::with_capacity(list.capacity());
        let mut totals = TierTotals::default();
        for start in (0..segments.len()).step_by(batch_size.max(1)) {
            let range = start..(start + batch_size).min(segments.len());
            let (batch, max) = build_one(&segments[range.clone()], start as u64, &mut column_of);
            for (&t, &b) in batch.tiers.iter().zip(&batch.bytes) {
                totals.get_mut(tier_of(t)).add(b);
            }
            list.push((range, batch));
            max_symbol.push(max);
        }
        Batches {
            list,
            max_symbol,
            totals,
        }
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// Tracks which symbols the plugin already has and attaches the missing ones to a batch before it is sent.
pub struct SymbolFeed<'a> {
    symbols: &'a Symbols,
    /// Symbols with ids up to this one were sent.
    sent: Sym,
}

impl<'a> SymbolFeed<'a> {
    pub fn new(symbols: &'a Symbols) -> Self {
        SymbolFeed { symbols, sent: 0 }
    }

    /// Puts into batch `i` the symbols it needs that were not sent yet (and no others).
    pub fn attach(&mut self, batches: &mut Batches, i: usize) {
        let max = batches.max_symbol[i];
        let b = &mut batches.list[i].1;
        b.symbols.clear();
        if max > self.sent {
            b.symbols
                .extend(self.symbols.range(self.sent + 1, max).map(str::to_string));
            self.sent = max;
        }
    }
}

/// One batch's columns; returns it with the largest symbol id its labels use. `column_of` maps a label key id to its
/// column index + 1 (0 = none) and is left all zeros.
fn build_one(segments: &[Segment], first_index: u64, column_of: &mut Vec<u32>) -> (SegmentBatch, Sym) {
    let n = segments.len();
    // One pass per column: each loop is simple, and a batch of segments stays in cache between them.
    let mut b = SegmentBatch {
        first_index,
        symbols: Vec::new(),
        start_ms: segments.iter().map(|s| s.start_ms).collect(),
        end_ms: segments.iter().map(|s| s.end_ms).collect(),
        rows: segments
            .iter()
            .map(|s| s.rows.map_or(-1, |r| r.min(i64::MAX as u64) as i64))
            .collect(),
        bytes: segments.iter().map(|s| s.bytes).collect(),
        tiers: segments.iter().map(|s| tier_code(s.tier)).collect(),
        labels: Vec::new(),
    };
    let mut max_sym: Sym = 0;
    let column = |k: Sym, labels: &mut Vec<LabelColumn>, column_of: &mut Vec<u32>| -> usize {
        if column_of.len() <= k as usize {
            column_of.resize(k as usize + 1, 0);
        }
        match column_of[k as usize] {
            0 => {
                labels.push(LabelColumn {
                    key: k,
                    values: vec![0; n],
                });
                column_of[k as usize] = labels.len() as u32;
                labels.len() - 1
            }
            c => c as usize - 1,
        }
    };
    // Fast path: most datasets give every segment the same label keys (the named captures of one regex), so the
    // keys of the first segment usually are the columns, in order.
    if let Some(first) = segments.first() {
        for &(k, _) in &first.labels {
            column(k, &mut b.labels, column_of);
            max_sym = max_sym.max(k);
        }
    }
    for (i, s) in segments.iter().enumerate() {
        let same_keys =
            s.labels.len() == b.labels.len() && s.labels.iter().zip(&b.labels).all(|(&(k, _), c)| c.key == k);
        if same_keys {
            for (&(_, v), c) in s.labels.iter().zip(b.labels.iter_mut()) {
                c.values[i] = v;
                max_sym = max_sym.max(v);
            }
            continue;
        }
        for &(k, v) in &s.labels {
            max_sym = max_sym.max(k).max(v);
            let c = column(k, &mut b.labels, column_of);
            b.labels[c].values[i] = v;
        }
    }
    for c in &b.labels {
        column_of[c.key as usize] = 0;
    }
    (b, max_sym)
}

/// The WIT code of a host tier: the index of its case in `enum tier`.
pub const fn tier_code(t: Tier) -> u8 {
    match t {
        Tier::Hot => WitTier::Hot as u8,
        Tier::Compressed => WitTier::Compressed as u8,
        Tier::Archived => WitTier::Archived as u8,
    }
}

/// The host action of a WIT action code (the index of its case in `enum action`).
fn action_of(code: u8) -> Option<Action> {
    const KEEP: u8 = WitAction::Keep as u8;
    const COMPRESS: u8 = WitAction::Compress as u8;
    const ARCHIVE: u8 = WitAction::Archive as u8;
    const DROP: u8 = WitAction::Drop as u8;
    match code {
        KEEP => Some(Action::Keep),
        COMPRESS => Some(Action::Compress),
        ARCHIVE => Some(Action::Archive),
        DROP => Some(Action::Drop),
        _ => None,
    }
}

/// The tier of a WIT tier code; the host only sends codes made by [`tier_code`].
fn tier_of(code: u8) -> Tier {
    const HOT: u8 = WitTier::Hot as u8;
    const COMPRESSED: u8 = WitTier::Compressed as u8;
    match code {
        HOT => Tier::Hot,
        COMPRESSED => Tier::Compressed,
        _ => Tier::Archived,
    }
}

/// Checks one batch's verdicts against the contract and appends one decision per segment to `out`. The error says
/// exactly what was wrong, for the plugin's author.
pub fn check_and_append(
    v: &Verdicts,
    batch: &SegmentBatch,
    segments: &[Segment],
    out: &mut Vec<Decision>,
    reasons: &mut Reasons,
) -> Result<(), String> {
    let n = segments.len();
    if v.actions.len() != n {
        return Err(format!(
            "returned {} actions for a batch of {n} segments (one per segment expected)",
            v.actions.len()
        ));
    }
    if !v.reasons.is_empty() && v.reasons.len() != n {
        return Err(format!(
            "returned {} reasons for a batch of {n} segments (none, or one per segment expected)",
            v.reasons.len()
        ));
    }
    if v.reason_texts.len() > n {
        return Err(format!(
            "returned {} reason texts for a batch of {n} segments (at most one per segment)",
            v.reason_texts.len()
        ));
    }
    // Batch-local reason numbers to the plan's reason ids; index 0 stays "no reason".
    let mut ids: Vec<u32> = Vec::with_capacity(v.reason_texts.len() + 1);
    ids.push(0);
    for t in &v.reason_texts {
        let mut end = t.len().min(MAX_REASON_BYTES);
        while !t.is_char_boundary(end) {
            end -= 1;
        }
        ids.push(reasons.intern(&t[..end]));
    }
    // Tiers come from the batch's compact column, not the segment structs. The common case, a valid batch, is
    // checked and converted in two tight, branch-free loops (a `match` per element compiled to an indirect jump,
    // which mispredicts as the actions vary: this function went from ~10% to ~4% of the boundary benchmark's
    // profile); only an invalid one walks the slow path that names the segment.
    let valid_actions = v
        .actions
        .iter()
        .zip(&batch.tiers)
        .fold(true, |ok, (&a, &t)| ok & allowed(a, t));
    let valid_reasons = v.reasons.iter().fold(true, |ok, &r| ok & ((r as usize) < ids.len()));
    if !(valid_actions && valid_reasons) {
        return Err(first_invalid(v, batch, segments, ids.len()));
    }
    // Every code is below 4 now; the mask only spares the compiler a bounds check.
    if v.reasons.is_empty() {
        out.extend(v.actions.iter().map(|&a| Decision {
            action: ACTIONS[a as usize & 3],
            reason: 0,
        }));
    } else {
        out.extend(v.actions.iter().zip(&v.reasons).map(|(&a, &r)| Decision {
            action: ACTIONS[a as usize & 3],
            reason: ids[r as usize],
        }));
    }
    Ok(())
}

/// Host actions by WIT action code.
const ACTIONS: [Action; 4] = {
    let mut a = [Action::Keep; 4];
    a[WitAction::Compress as usize] = Action::Compress;
    a[WitAction::Archive as usize] = Action::Archive;
    a[WitAction::Drop as usize] = Action::Drop;
    a
};

/// Bit `tier code * 4 + action code` is set when the contract allows that action from that tier: the tier table of
/// [`Action::allowed_from`], as a constant, so that checking a verdict is a shift and a mask.
const ALLOWED: u16 = {
    let tiers = [Tier::Hot, Tier::Compressed, Tier::Archived];
    let mut bits = 0u16;
    let mut t = 0;
    while t < tiers.len() {
        let mut a = 0;
        while a < ACTIONS.len() {
            if ACTIONS[a].allowed_from(tiers[t]) {
                bits |= 1 << (tier_code(tiers[t]) as usize * 4 + a);
            }
            a += 1;
        }
        t += 1;
    }
    bits
};

/// Whether action code `a` is an action the contract allows from tier code `t` (a code the host made).
#[inline(always)]
fn allowed(a: u8, t: u8) -> bool {
    // Codes above 3 are no action; the shift stays in range because `t` is at most 2.
    (a < 4) & ((ALLOWED >> ((t as u32 & 3) * 4 + (a as u32 & 3))) & 1 != 0)
}

/// The error for the first segment whose verdict breaks the contract.
fn first_invalid(v: &Verdicts, batch: &SegmentBatch, segments: &[Segment], reason_ids: usize) -> String {
    for (i, (&code, &tier)) in v.actions.iter().zip(&batch.tiers).enumerate() {
        let name = &segments[i].name;
        let Some(action) = action_of(code) else {
            return format!(
                "returned action code {code} for segment {name:?}, which is not an action (0 keep, 1 compress, \
                 2 archive, 3 drop)"
            );
        };
        let tier = tier_of(tier);
        if !action.allowed_from(tier) {
            return format!(
                "decided {action} for {tier} segment {name:?}, which the contract does not allow \
                 (compress only from hot, archive only from hot or compressed)"
            );
        }
        if let Some(&r) = v.reasons.get(i)
            && r as usize >= reason_ids
        {
            return format!(
                "reason {r} of segment {name:?} points past the {} reason texts",
                reason_ids - 1
            );
        }
    }
    "verdicts break the contract".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_batch(segs: &[Segment]) -> SegmentBatch {
        Batches::build(segs, segs.len()).list.remove(0).1
    }

    #[test]
    fn an_unknown_action_code_is_invalid_output() {
        let segs = vec![seg("a", Tier::Hot, vec![])];
        let v = Verdicts {
            actions: vec![9],
            reasons: vec![],
            reason_texts: vec![],
        };
        let e = check_and_append(&v, &one_batch(&segs), &segs, &mut Vec::new(), &mut Reasons::default()).unwrap_err();
        assert!(e.contains("action code 9"), "{e}");
    }

    fn seg(name: &str, tier: Tier, labels: Vec<(Sym, Sym)>) -> Segment {
        Segment {
            name: name.into(),
            tier,
            start_ms: 1,
            end_ms: 2,
            rows: None,
            bytes: 10,
            labels: labels.into(),
            locator: name.into(),
            token: Default::default(),
        }
    }

    #[test]
    fn symbols_are_sent_once_and_labels_become_columns() {
        let mut sy = Symbols::new();
        let (level, debug, service, api) = (
            sy.intern("level"),
            sy.intern("debug"),
            sy.intern("service"),
            sy.intern("api"),
        );
        let segs = vec![
            seg("a", Tier::Hot, vec![(level, debug)]),
            seg("b", Tier::Hot, vec![(level, debug), (service, api)]),
        ];
        let mut all = segs.clone();
        all.push(segs[0].clone());
        let mut batches = Batches::build(&all, 2);
        assert_eq!(batches.len(), 2);
        let mut feed = SymbolFeed::new(&sy);
        feed.attach(&mut batches, 0);
        let batch = &batches.list[0].1;
        assert_eq!(batch.symbols, ["level", "debug", "service", "api"]);
        assert_eq!(batch.labels.len(), 2);
        assert_eq!(batch.labels[0].key, level);
        assert_eq!(batch.labels[0].values, [debug, debug]);
        assert_eq!(batch.labels[1].values, [0, api]);
        assert_eq!(batch.rows, [-1, -1]);
        feed.attach(&mut batches, 1);
        let batch = &batches.list[1].1;
        assert!(batch.symbols.is_empty());
        assert_eq!(batch.first_index, 2);
        assert_eq!(batch.labels.len(), 1);
        assert_eq!(batch.labels[0].values, [debug]);
    }

    #[test]
    fn the_branch_free_check_agrees_with_the_tier_table() {
        for t in [Tier::Hot, Tier::Compressed, Tier::Archived] {
            for a in 0..=u8::MAX {
                let expected = action_of(a).is_some_and(|a| a.allowed_from(t));
                assert_eq!(allowed(a, tier_code(t)), expected, "action code {a} from {t:?}");
            }
        }
    }

    #[test]
    fn verdicts_of_the_wrong_length_are_invalid_output() {
        let segs = vec![seg("a", Tier::Hot, vec![])];
        let v = Verdicts {
            actions: vec![],
            reasons: vec![],
            reason_texts: vec![],
        };
        let e = check_and_append(&v, &one_batch(&segs), &segs, &mut Vec::new(), &mut Reasons::default()).unwrap_err();
        assert!(e.contains("returned 0 actions for a batch of 1"), "{e}");
    }

    #[test]
    fn compressing_an_archived_segment_is_invalid_output() {
        let segs = vec![seg("old.log", Tier::Archived, vec![])];
        let v = Verdicts {
            actions: vec![WitAction::Compress as u8],
            reasons: vec![],
            reason_texts: vec![],
        };
        let e = check_and_append(&v, &one_batch(&segs), &segs, &mut Vec::new(), &mut Reasons::default()).unwrap_err();
        assert!(e.contains("compress for archived segment \"old.log\""), "{e}");
    }

    #[test]
    fn reasons_are_resolved_and_truncated() {
        let segs = vec![seg("a", Tier::Hot, vec![]), seg("b", Tier::Hot, vec![])];
        let v = Verdicts {
            actions: vec![WitAction::Drop as u8, WitAction::Keep as u8],
            reasons: vec![1, 0],
            reason_texts: vec!["x".repeat(10_000)],
        };
        let mut out = Vec::new();
        let mut reasons = Reasons::default();
        check_and_append(&v, &one_batch(&segs), &segs, &mut out, &mut reasons).unwrap();
        assert_eq!(out[0].action, Action::Drop);
        assert_eq!(reasons.of(&out[0]).map(str::len), Some(MAX_REASON_BYTES));
        assert_eq!(reasons.of(&out[1]), None);
        let bad = Verdicts {
            reasons: vec![2, 0],
            ..v
        };
        assert!(
            check_and_append(&bad, &one_batch(&segs), &segs, &mut Vec::new(), &mut Reasons::default())
                .unwrap_err()
                .contains("points past")
        );
    }
}
