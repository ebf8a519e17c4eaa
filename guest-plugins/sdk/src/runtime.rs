//! The glue between the generated `policy` exports and a [`Plugin`]: keeps the pass's state between calls, checks
//! that the host calls in the contract's order, maintains the symbol table, and turns decisions into `verdicts`.

use std::cell::UnsafeCell;

use crate::Plugin;
use crate::bindings::retention::policy::types::{PassContext, PassOptions, PluginInfo, SegmentBatch, Verdicts};
use crate::context::Context;
use crate::interner::Interner;
use crate::segment::{Batch, Columns, SymbolTable};
use crate::types::{Action, Tier};

/// Holds the state of the current pass for one plugin type (declared by [`export_plugin!`](crate::export_plugin)).
pub struct Slot<P>(UnsafeCell<Option<Pass<P>>>);

// SAFETY: a component instance runs on a single thread and the component model forbids re-entering an instance, so
// the exported functions (the only users of a slot) never run concurrently or nested.
unsafe impl<P> Sync for Slot<P> {}

impl<P> Slot<P> {
    /// An empty slot: no pass has begun.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Slot<P> {
        Slot(UnsafeCell::new(None))
    }

    #[allow(clippy::mut_from_ref)]
    fn get(&self) -> &mut Option<Pass<P>> {
        // SAFETY: see the `Sync` impl; each export takes this reference once and drops it before returning.
        unsafe { &mut *self.0.get() }
    }
}

/// Where the pass is in the contract's sequence.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Observing,
    Deciding,
}

/// The state of one pass.
pub struct Pass<P> {
    plugin: P,
    now_ms: i64,
    total: u64,
    observe_first: bool,
    phase: Phase,
    /// Index of the first segment the next batch must start with.
    next_index: u64,
    /// The pass's symbol table.
    symbols: SymbolTable,
    interner: Interner,
}

/// `info`: the plugin's description.
pub fn info<P: Plugin>() -> PluginInfo {
    PluginInfo {
        name: P::INFO.name.to_string(),
        version: P::INFO.version.to_string(),
        description: P::INFO.description.to_string(),
    }
}

/// `begin`: makes the plugin's state for the pass.
pub fn begin<P: Plugin>(slot: &Slot<P>, context: PassContext) -> Result<PassOptions, String> {
    let state = slot.get();
    if state.is_some() {
        return Err("begin was called twice on one instance (the host must use a fresh instance per pass)".into());
    }
    let ctx = Context::new(context);
    let plugin = P::begin(&ctx)?;
    let observe_first = plugin.observe_first();
    *state = Some(Pass {
        plugin,
        now_ms: ctx.now_ms(),
        total: ctx.totals().segments(),
        observe_first,
        phase: if observe_first {
            Phase::Observing
        } else {
            Phase::Deciding
        },
        next_index: 0,
        symbols: SymbolTable::new(),
        interner: Interner::new(),
    });
    Ok(PassOptions { observe_first })
}

/// `observe`: shows one batch to the plugin.
pub fn observe<P: Plugin>(slot: &Slot<P>, mut batch: SegmentBatch) -> Result<(), String> {
    let Some(pass) = slot.get() else {
        return Err("observe was called before begin".into());
    };
    if !pass.observe_first {
        return Err("observe was called although begin did not ask for observe-first".into());
    }
    if pass.phase == Phase::Deciding {
        return Err("observe was called after decide (all observe calls must come first)".into());
    }
    let batch = open_batch(
        &mut pass.symbols,
        &mut pass.next_index,
        &mut batch,
        pass.now_ms,
        pass.total,
        "observe",
    )?;
    let plugin = &mut pass.plugin;
    batch.for_each(|_, seg| {
        plugin.observe(seg);
        true
    });
    match batch.take_failure() {
        Some(message) => Err(message),
        None => Ok(()),
    }
}

/// `decide`: asks the plugin about every segment of one batch and builds the verdicts.
pub fn decide<P: Plugin>(slot: &Slot<P>, mut batch: SegmentBatch) -> Result<Verdicts, String> {
    let Some(pass) = slot.get() else {
        return Err("decide was called before begin".into());
    };
    if pass.phase == Phase::Observing {
        // The first decide ends the observe phase; indices start again at 0.
        pass.phase = Phase::Deciding;
        pass.next_index = 0;
    }
    let batch = open_batch(
        &mut pass.symbols,
        &mut pass.next_index,
        &mut batch,
        pass.now_ms,
        pass.total,
        "decide",
    )?;

    let n = batch.len();
    // Written by index rather than pushed: the loop then only stores. Reasons too, unconditionally, whether or not
    // the decision has one: a branch on "has a reason" mispredicts as often as the policy's outcomes vary, which
    // costs more than zeroing a column per batch. A batch without any reason sends an empty list.
    let mut actions = vec![Action::Keep.code(); n];
    let mut reasons: Vec<u32> = vec![0; n];
    let mut any_reason = 0;
    let mut invalid = None;
    let (plugin, interner) = (&mut pass.plugin, &mut pass.interner);
    interner.reset();
    batch.for_each(|i, seg| {
        let (action, reason) = plugin.decide(seg).into_parts();
        // The reason is interned before the action is checked, so that the error path below gets the reason as an
        // id: passing the reason itself (by value or reference) would keep it in linear memory, stored there on
        // every iteration of this loop.
        let id = interner.intern(reason);
        if !allowed_code(action, seg.tier_code()) {
            // Only scalars and text go to the cold path, for the same reason.
            invalid = Some(invalid_action(
                seg.index(),
                seg.tier(),
                seg.fetched_name(),
                action,
                interner.text(id),
            ));
            return false;
        }
        any_reason |= id;
        if let (Some(a), Some(r)) = (actions.get_mut(i), reasons.get_mut(i)) {
            *a = action.code();
            *r = id;
        }
        true
    });
    if any_reason == 0 {
        reasons = Vec::new();
    }
    // A failure the plugin (or the SDK on its behalf) recorded comes first: it explains what went wrong earlier.
    if let Some(message) = batch.take_failure().or(invalid) {
        return Err(message);
    }
    Ok(Verdicts {
        actions,
        reasons,
        reason_texts: pass.interner.take_texts(),
    })
}

/// Bit `tier * 4 + action` is set when the contract allows that action from that tier ([`Action::allowed_from`]).
const ALLOWED: u16 = {
    let mut bits = 0;
    let mut a = 0;
    while a < Action::ALL.len() {
        let action = Action::ALL[a];
        let mut t = 0;
        while t < Tier::ALL.len() {
            let tier = Tier::ALL[t];
            if action.allowed_from(tier) {
                bits |= 1 << (tier as u16 * 4 + action.code() as u16);
            }
            t += 1;
        }
        a += 1;
    }
    bits
};

/// [`Action::allowed_from`] as a table lookup, for a tier code (0, 1 or 2, as checked when the batch was opened):
/// the `match` it compiles to branches on the action and the tier, which vary from segment to segment and
/// mispredict.
#[inline(always)]
fn allowed_code(action: Action, tier: u8) -> bool {
    (ALLOWED >> ((tier as u16 & 3) * 4 + action.code() as u16)) & 1 != 0
}

/// Takes a batch's new symbols into the pass's table, checks that the batch comes next in the pass (batches must
/// cover the pass in order, without gaps; anything else is a host bug) and views its columns.
fn open_batch<'a>(
    symbols: &'a mut SymbolTable,
    next_index: &mut u64,
    batch: &'a mut SegmentBatch,
    now_ms: i64,
    total: u64,
    call: &str,
) -> Result<Batch<'a>, String> {
    // Moves the strings: the host's copies in our memory become the table's.
    symbols.append(&mut batch.symbols);
    let first_index = batch.first_index;
    if first_index != *next_index {
        return Err(format!(
            "{call} received a batch starting at segment {first_index} but expected segment {next_index} (batches \
             must arrive in order)"
        ));
    }
    *next_index += batch.end_ms.len() as u64;
    let columns = Columns {
        first_index,
        start_ms: &batch.start_ms,
        end_ms: &batch.end_ms,
        rows: &batch.rows,
        bytes: &batch.bytes,
        tiers: &batch.tiers,
        labels: &batch.labels,
    };
    Batch::new(columns, symbols, now_ms, total)
}

/// The message for a decision outside the contract's tier table, naming the segment.
#[cold]
#[inline(never)]
fn invalid_action(index: u64, tier: Tier, name: Option<&str>, action: Action, reason: Option<&str>) -> String {
    let name = name.map(|n| format!(" ({n})")).unwrap_or_default();
    let why = reason.map(|r| format!(", reason {r:?}")).unwrap_or_default();
    format!(
        "plugin decided `{action}` for segment {index}{name} in tier `{tier}`{why}, which the contract forbids \
         (compress only from hot, archive only from hot or compressed)"
    )
}

#[cfg(test)]
mod tests {
    //! The contract's call order and the verdict encoding, checked natively with a tiny plugin (no host imports
    //! are called, so the generated import stubs are never reached).

    use super::*;
    use crate::bindings::retention::policy::types::{DatasetTotals, LabelColumn, Param, TierTotals};
    use crate::{Context, Decision, Info, Segment};

    /// Drops debug segments older than a day with a static reason, archives big ones with a per-segment reason,
    /// keeps the rest; optionally observes first and counts.
    struct Probe {
        observed: u64,
        observe_first: bool,
    }

    impl Plugin for Probe {
        const INFO: Info = Info {
            name: "probe",
            version: "1",
            description: "test",
        };

        fn begin(ctx: &Context) -> Result<Self, String> {
            ctx.check_params(&["observe"])?;
            Ok(Probe {
                observed: 0,
                observe_first: ctx.param_or("observe", false)?,
            })
        }

        fn observe_first(&self) -> bool {
            self.observe_first
        }

        fn observe(&mut self, _: &Segment<'_>) {
            self.observed += 1;
        }

        fn decide(&mut self, seg: &Segment<'_>) -> Decision {
            if seg.label("level") == Some("debug") && seg.age_days() >= 1 {
                Decision::drop("old debug")
            } else if seg.bytes() > 1000 {
                Decision::archive(format!("{} bytes", seg.bytes()))
            } else if seg.tier() == Tier::Archived && seg.label("zone") == Some("x") {
                // Not allowed from archived: the SDK must refuse it with a clear message.
                Decision::compress("bad")
            } else {
                Decision::keep()
            }
        }
    }

    const DAY: i64 = 86_400_000;

    fn context(observe: bool, segments: u64) -> PassContext {
        let t = TierTotals { segments, bytes: 0 };
        PassContext {
            pass_id: "p".into(),
            dataset: "d".into(),
            now_ms: 10 * DAY,
            dry_run: true,
            params: vec![Param {
                key: "observe".into(),
                value: observe.to_string(),
            }],
            totals: DatasetTotals {
                hot: t,
                compressed: TierTotals::ZERO,
                archived: TierTotals::ZERO,
            },
        }
    }

    /// A batch of `levels.len()` segments; symbols 1 = "level", 2 = "debug", 3 = "info" sent when `first_index` is 0.
    fn batch(first_index: u64, levels: &[u32], bytes: &[u64], tiers: &[Tier]) -> SegmentBatch {
        let n = levels.len();
        SegmentBatch {
            first_index,
            symbols: if first_index == 0 {
                vec!["level".into(), "debug".into(), "info".into()]
            } else {
                Vec::new()
            },
            start_ms: vec![DAY; n],
            end_ms: vec![DAY; n],
            rows: vec![-1; n],
            bytes: bytes.to_vec(),
            tiers: tiers.iter().map(|&t| t as u8).collect(),
            labels: vec![LabelColumn {
                key: 1,
                values: levels.to_vec(),
            }],
        }
    }

    #[test]
    fn verdicts_intern_reasons_per_batch_and_send_no_reasons_when_none_are_given() {
        let slot = Slot::<Probe>::new();
        assert!(!begin(&slot, context(false, 5)).unwrap().observe_first);
        let hot = [Tier::Hot; 4];
        let v = decide(&slot, batch(0, &[2, 3, 2, 0], &[1, 1, 5000, 5000], &hot)).unwrap();
        let codes = [Action::Drop, Action::Keep, Action::Drop, Action::Archive].map(Action::code);
        assert_eq!(v.actions, codes);
        assert_eq!(v.reasons, [1, 0, 1, 2]);
        assert_eq!(v.reason_texts, ["old debug", "5000 bytes"]);
        let v = decide(&slot, batch(4, &[3], &[1], &[Tier::Hot])).unwrap();
        assert_eq!(v.actions, [Action::Keep.code()]);
        assert!(v.reasons.is_empty() && v.reason_texts.is_empty());
    }

    #[test]
    fn the_allowed_table_is_the_contracts_tier_table() {
        for action in Action::ALL {
            for tier in Tier::ALL {
                assert_eq!(
                    allowed_code(action, tier as u8),
                    action.allowed_from(tier),
                    "{action} from {tier}"
                );
            }
        }
    }

    #[test]
    fn calls_out_of_the_contracts_order_fail_with_a_message() {
        let slot = Slot::<Probe>::new();
        let b = || batch(0, &[3], &[1], &[Tier::Hot]);
        assert_eq!(decide(&slot, b()).unwrap_err(), "decide was called before begin");
        begin(&slot, context(false, 1)).unwrap();
        assert!(
            begin(&slot, context(false, 1))
                .unwrap_err()
                .contains("begin was called twice")
        );
        assert!(
            observe(&slot, b())
                .unwrap_err()
                .contains("did not ask for observe-first")
        );
        let err = decide(&slot, batch(7, &[3], &[1], &[Tier::Hot])).unwrap_err();
        assert!(err.contains("starting at segment 7 but expected segment 0"), "{err}");
    }

    #[test]
    fn observe_first_sees_every_segment_then_decide_starts_again_at_index_zero() {
        let slot = Slot::<Probe>::new();
        assert!(begin(&slot, context(true, 3)).unwrap().observe_first);
        observe(&slot, batch(0, &[3, 3], &[1, 1], &[Tier::Hot; 2])).unwrap();
        observe(&slot, batch(2, &[3], &[1], &[Tier::Hot])).unwrap();
        assert_eq!(slot.get().as_ref().unwrap().plugin.observed, 3);
        decide(&slot, batch(0, &[3, 3], &[1, 1], &[Tier::Hot; 2])).unwrap();
        assert!(
            observe(&slot, batch(2, &[3], &[1], &[Tier::Hot]))
                .unwrap_err()
                .contains("after decide")
        );
    }

    #[test]
    fn a_decision_outside_the_tier_table_names_the_segment() {
        let slot = Slot::<Probe>::new();
        begin(&slot, context(false, 2)).unwrap();
        let mut b = batch(0, &[3, 3], &[1, 1], &[Tier::Hot, Tier::Archived]);
        b.symbols.extend(["zone".to_string(), "x".to_string()]);
        b.labels.push(LabelColumn {
            key: 4,
            values: vec![5, 5],
        });
        let err = decide(&slot, b).unwrap_err();
        assert!(err.contains("`compress` for segment 1 in tier `archived`"), "{err}");
    }

    #[test]
    fn malformed_batches_fail_instead_of_panicking() {
        let slot = Slot::<Probe>::new();
        begin(&slot, context(false, 2)).unwrap();
        let mut b = batch(0, &[3, 3], &[1, 1], &[Tier::Hot; 2]);
        b.bytes.pop();
        assert!(
            decide(&slot, b)
                .unwrap_err()
                .contains("`bytes` has 1 entries but `end-ms` has 2")
        );

        let slot = Slot::<Probe>::new();
        begin(&slot, context(false, 2)).unwrap();
        let err = decide(&slot, batch(0, &[3, 99], &[1, 1], &[Tier::Hot; 2])).unwrap_err();
        assert!(
            err.contains("refers to symbol 99, not in the symbol table (3 symbols)"),
            "{err}"
        );
    }
}
