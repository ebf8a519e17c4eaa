//! The boundary layout: turns a slice of segments into the WIT's column-oriented `segment-batch`, and checks a
//! plugin's `verdicts` against the contract before turning them into decisions.
//!
//! Columns of numbers lower into the guest as one copy each; strings would cost an allocation in the guest apiece.
//! So label keys and values travel as symbol ids, each symbol's text sent once per pass, and names are only sent when
//! the plugin asks (`host::batch_names`). The builder reuses its vectors from batch to batch.

use super::MAX_REASON_BYTES;
use super::bindings::{LabelColumn, SegmentBatch, Verdicts, WitAction, WitTier};
use crate::segment::{Action, Decision, Reasons, Segment, Sym, Symbols, Tier};

/// Builds `segment-batch` values for one pass, remembering which symbols the plugin already has.
pub struct BatchBuilder {
    batch: SegmentBatch,
    /// Symbols with ids up to this one were sent.
    sent: Sym,
    /// Column index + 1 of each label key in the current batch, indexed by key id (0 = no column yet).
    column_of: Vec<u32>,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchBuilder {
    pub fn new() -> Self {
        BatchBuilder {
            batch: SegmentBatch {
                first_index: 0,
                symbols: Vec::new(),
                start_ms: Vec::new(),
                end_ms: Vec::new(),
                rows: Vec::new(),
                bytes: Vec::new(),
                tiers: Vec::new(),
                labels: Vec::new(),
            },
            sent: 0,
            column_of: Vec::new(),
        }
    }

    /// Fills the batch for `segments`, the pass's segments from index `first_index` on.
    pub fn fill(&mut self, segments: &[Segment], first_index: u64, symbols: &Symbols) -> &SegmentBatch {
        let n = segments.len();
        let b = &mut self.batch;
        b.first_index = first_index;
        b.symbols.clear();
        b.start_ms.clear();
        b.end_ms.clear();
        b.rows.clear();
        b.bytes.clear();
        b.tiers.clear();
        // Label columns are rebuilt per batch: the set of keys can differ from batch to batch.
        for col in &b.labels {
            self.column_of[col.key as usize] = 0;
        }
        b.labels.clear();

        let mut max_sym: Sym = 0;
        for (i, s) in segments.iter().enumerate() {
            b.start_ms.push(s.start_ms);
            b.end_ms.push(s.end_ms);
            b.rows.push(s.rows.map_or(-1, |r| r.min(i64::MAX as u64) as i64));
            b.bytes.push(s.bytes);
            b.tiers.push(match s.tier {
                Tier::Hot => WitTier::Hot,
                Tier::Compressed => WitTier::Compressed,
                Tier::Archived => WitTier::Archived,
            });
            for &(k, v) in &s.labels {
                max_sym = max_sym.max(k).max(v);
                if self.column_of.len() <= k as usize {
                    self.column_of.resize(k as usize + 1, 0);
                }
                let col = match self.column_of[k as usize] {
                    0 => {
                        b.labels.push(LabelColumn {
                            key: k,
                            values: vec![0; n],
                        });
                        self.column_of[k as usize] = b.labels.len() as u32;
                        b.labels.len() - 1
                    }
                    c => c as usize - 1,
                };
                b.labels[col].values[i] = v;
            }
        }
        if max_sym > self.sent {
            b.symbols
                .extend(symbols.range(self.sent + 1, max_sym).map(str::to_string));
            self.sent = max_sym;
        }
        &self.batch
    }
}

/// Checks one batch's verdicts against the contract and appends one decision per segment to `out`. The error says
/// exactly what was wrong, for the plugin's author.
pub fn check_and_append(
    v: &Verdicts,
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
    out.reserve(n);
    for (i, (seg, action)) in segments.iter().zip(&v.actions).enumerate() {
        let action = match action {
            WitAction::Keep => Action::Keep,
            WitAction::Compress => Action::Compress,
            WitAction::Archive => Action::Archive,
            WitAction::Drop => Action::Drop,
        };
        if !action.allowed_from(seg.tier) {
            return Err(format!(
                "decided {action} for {} segment {:?}, which the contract does not allow \
                 (compress only from hot, archive only from hot or compressed)",
                seg.tier, seg.name
            ));
        }
        let r = v.reasons.get(i).copied().unwrap_or(0);
        let Some(&reason) = ids.get(r as usize) else {
            return Err(format!(
                "reason {r} of segment {:?} points past the {} reason texts",
                seg.name,
                v.reason_texts.len()
            ));
        };
        out.push(Decision { action, reason });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
            modified_ns: 0,
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
        let mut b = BatchBuilder::new();
        let batch = b.fill(&segs, 0, &sy);
        assert_eq!(batch.symbols, ["level", "debug", "service", "api"]);
        assert_eq!(batch.labels.len(), 2);
        assert_eq!(batch.labels[0].key, level);
        assert_eq!(batch.labels[0].values, [debug, debug]);
        assert_eq!(batch.labels[1].values, [0, api]);
        assert_eq!(batch.rows, [-1, -1]);
        let batch = b.fill(&segs[..1], 2, &sy);
        assert!(batch.symbols.is_empty());
        assert_eq!(batch.first_index, 2);
        assert_eq!(batch.labels.len(), 1);
        assert_eq!(batch.labels[0].values, [debug]);
    }

    #[test]
    fn verdicts_of_the_wrong_length_are_invalid_output() {
        let segs = vec![seg("a", Tier::Hot, vec![])];
        let v = Verdicts {
            actions: vec![],
            reasons: vec![],
            reason_texts: vec![],
        };
        let e = check_and_append(&v, &segs, &mut Vec::new(), &mut Reasons::default()).unwrap_err();
        assert!(e.contains("returned 0 actions for a batch of 1"), "{e}");
    }

    #[test]
    fn compressing_an_archived_segment_is_invalid_output() {
        let segs = vec![seg("old.log", Tier::Archived, vec![])];
        let v = Verdicts {
            actions: vec![WitAction::Compress],
            reasons: vec![],
            reason_texts: vec![],
        };
        let e = check_and_append(&v, &segs, &mut Vec::new(), &mut Reasons::default()).unwrap_err();
        assert!(e.contains("compress for archived segment \"old.log\""), "{e}");
    }

    #[test]
    fn reasons_are_resolved_and_truncated() {
        let segs = vec![seg("a", Tier::Hot, vec![]), seg("b", Tier::Hot, vec![])];
        let v = Verdicts {
            actions: vec![WitAction::Drop, WitAction::Keep],
            reasons: vec![1, 0],
            reason_texts: vec!["x".repeat(10_000)],
        };
        let mut out = Vec::new();
        let mut reasons = Reasons::default();
        check_and_append(&v, &segs, &mut out, &mut reasons).unwrap();
        assert_eq!(out[0].action, Action::Drop);
        assert_eq!(reasons.of(&out[0]).map(str::len), Some(MAX_REASON_BYTES));
        assert_eq!(reasons.of(&out[1]), None);
        let bad = Verdicts {
            reasons: vec![2, 0],
            ..v
        };
        assert!(
            check_and_append(&bad, &segs, &mut Vec::new(), &mut Reasons::default())
                .unwrap_err()
                .contains("points past")
        );
    }
}
