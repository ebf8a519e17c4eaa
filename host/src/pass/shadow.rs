//! Shadow mode: a new plugin version decides beside the active one, on the same segments, and acts on nothing.
//!
//! In a real pass of a dataset that has a shadow with passes remaining, the service pins the shadow version
//! ([`ShadowRun`]) beside the active one. After the active plan, [`run`] plans the shadow over the very same segments
//! and symbols (as a dry run, under the same sandbox limits) and [`compare`]s the two plans: per action, how many
//! segments and bytes each would keep, compress, archive and drop, how many segments differ, and the first differing
//! ones with both reasons. **A shadow plan is never applied**: its failure is recorded in the comparison and costs the
//! active pass nothing but the shadow's own bounded run.
//!
//! This module knows plans, not the service: where a shadow comes from (config or API), its remaining passes and the
//! history of comparisons live in `service/` and `state/`.

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::plugin::{LoadedPlugin, PassInput, PlanOutput, PluginVersion};
use crate::segment::{Action, Decision, Reasons, Segment, Symbols, Tier};

/// Differing segments listed in a comparison (all are counted).
pub const MAX_DIFFERENCES: usize = 20;

/// The shadow version a pass runs beside its active plugin, pinned by the service when the pass starts.
#[derive(Debug, Clone)]
pub struct ShadowRun {
    /// The shadow's plugin name (its file `<plugin_dir>/<plugin>.wasm`).
    pub plugin: String,
    /// The pinned version, or why no version of it serves (missing, removed, rejected).
    pub loaded: Result<Arc<LoadedPlugin>, String>,
}

/// A plugin version (the type reports share).
pub type Version = PluginVersion;

/// Segments and bytes (before the action).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    pub segments: u64,
    pub bytes: u64,
}

impl Count {
    fn add(&mut self, other: Count) {
        self.segments += other.segments;
        self.bytes += other.bytes;
    }
}

/// One action's figures in both plans.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Both {
    pub active: Count,
    pub shadow: Count,
}

impl Both {
    fn add(&mut self, other: &Both) {
        self.active.add(other.active);
        self.shadow.add(other.shadow);
    }
}

/// Per action, what each plan would do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerAction {
    pub keep: Both,
    pub compress: Both,
    pub archive: Both,
    pub drop: Both,
}

impl PerAction {
    fn of_mut(&mut self, action: Action) -> &mut Both {
        match action {
            Action::Keep => &mut self.keep,
            Action::Compress => &mut self.compress,
            Action::Archive => &mut self.archive,
            Action::Drop => &mut self.drop,
        }
    }

    fn add(&mut self, other: &PerAction) {
        self.keep.add(&other.keep);
        self.compress.add(&other.compress);
        self.archive.add(&other.archive);
        self.drop.add(&other.drop);
    }
}

/// One plan's decision on a segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub action: Action,
    pub reason: Option<String>,
}

/// A segment the two plans decide differently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    pub name: String,
    pub tier: Tier,
    pub bytes: u64,
    pub active: Verdict,
    pub shadow: Verdict,
}

/// The active plan against the shadow's, for one pass. The plugins' own decisions are compared, before legal holds
/// and guards (which would treat both alike).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShadowComparison {
    /// The shadow's plugin name (its file in the plugin directory).
    pub plugin: String,
    pub active: Version,
    /// The shadow version that ran; absent when none could (missing, removed, rejected).
    pub shadow: Option<Version>,
    /// Why the shadow did not plan: it was unavailable, or it failed (trap, timeout, memory, invalid output, ...).
    /// The shadow's figures are then zero, and the active pass was not affected.
    pub error: Option<String>,
    /// How the shadow's plugin call failed, when it did (`trap`, `timeout`, ...).
    pub failure_kind: Option<String>,
    /// Wall-clock time of the shadow's plan.
    pub plan_ms: f64,
    /// Segments both plans were given.
    pub segments: u64,
    pub actions: PerAction,
    /// Segments whose action differs (0 when the shadow failed).
    pub differing: u64,
    /// The first [`MAX_DIFFERENCES`] differing segments, oldest first, with both decisions and reasons.
    pub differences: Vec<Difference>,
}

impl ShadowComparison {
    /// Whether the shadow planned (its figures mean something).
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// Compares two plans over `segments`; `shadow` is `None` when the shadow did not plan (only the active side is
/// counted then). Differences are segments whose action differs; a different reason alone is not one.
pub fn compare(
    segments: &[Segment],
    active: (&[Decision], &Reasons),
    shadow: Option<(&[Decision], &Reasons)>,
) -> (PerAction, u64, Vec<Difference>) {
    let mut actions = PerAction::default();
    let mut differing = 0u64;
    let mut differences = Vec::new();
    let (a_decisions, a_reasons) = active;
    for (i, (seg, a)) in segments.iter().zip(a_decisions).enumerate() {
        let count = Count {
            segments: 1,
            bytes: seg.bytes,
        };
        actions.of_mut(a.action).active.add(count);
        let Some((s_decisions, s_reasons)) = shadow else {
            continue;
        };
        let s = &s_decisions[i];
        actions.of_mut(s.action).shadow.add(count);
        if s.action != a.action {
            differing += 1;
            if differences.len() < MAX_DIFFERENCES {
                differences.push(Difference {
                    name: seg.name.clone(),
                    tier: seg.tier,
                    bytes: seg.bytes,
                    active: Verdict {
                        action: a.action,
                        reason: a_reasons.of(a).map(str::to_string),
                    },
                    shadow: Verdict {
                        action: s.action,
                        reason: s_reasons.of(s).map(str::to_string),
                    },
                });
            }
        }
    }
    (actions, differing, differences)
}

/// What the shadow is told in `begin`: the active pass's context, as a dry run.
pub struct Context<'a> {
    pub pass_id: &'a str,
    pub dataset: &'a str,
    pub now_ms: i64,
    pub params: &'a [(String, String)],
}

/// Plans the shadow over the active pass's segments and symbols and compares it with the active plan. Never fails:
/// whatever goes wrong with the shadow ends up in the comparison's `error`.
pub async fn run(
    shadow: &ShadowRun,
    active: &PluginVersion,
    cx: Context<'_>,
    segments: Arc<Vec<Segment>>,
    symbols: Arc<Symbols>,
    active_plan: &PlanOutput,
) -> ShadowComparison {
    let started = Instant::now();
    let (version, planned) = match &shadow.loaded {
        Err(why) => (None, Err((why.clone(), None))),
        Ok(plugin) => {
            let version = Version {
                name: plugin.meta.name.clone(),
                version: plugin.meta.version.clone(),
                digest: plugin.meta.digest.clone(),
            };
            let plugin = plugin.clone();
            let segs = segments.clone();
            let (pass_id, dataset, params) = (cx.pass_id.to_string(), cx.dataset.to_string(), cx.params.to_vec());
            let now_ms = cx.now_ms;
            // Like the active plan: synchronous under its own deadlines, off the async workers.
            let joined = tokio::task::spawn_blocking(move || {
                let input = PassInput {
                    pass_id: &pass_id,
                    dataset: &dataset,
                    now_ms,
                    // The shadow acts on nothing, and a plugin that looks at the flag should know it.
                    dry_run: true,
                    params: &params,
                };
                plugin.plan(input, segs, &symbols)
            })
            .await;
            let planned = match joined {
                Ok(Ok(plan)) => Ok(plan),
                Ok(Err(e)) => Err((e.to_string(), e.kind().map(|k| k.as_str().to_string()))),
                Err(e) => Err((format!("shadow planning task failed: {e}"), None)),
            };
            (Some(version), planned)
        }
    };
    let active_side = (&active_plan.decisions[..], &active_plan.reasons);
    let (actions, differing, differences, error, failure_kind) = match &planned {
        Ok(plan) => {
            let (a, n, d) = compare(&segments, active_side, Some((&plan.decisions, &plan.reasons)));
            (a, n, d, None, None)
        }
        Err((e, kind)) => {
            let (a, n, d) = compare(&segments, active_side, None);
            (a, n, d, Some(e.clone()), kind.clone())
        }
    };
    ShadowComparison {
        plugin: shadow.plugin.clone(),
        active: active.clone(),
        shadow: version,
        error,
        failure_kind,
        plan_ms: started.elapsed().as_secs_f64() * 1e3,
        segments: segments.len() as u64,
        actions,
        differing,
        differences,
    }
}

/// Sums over several comparisons (the API's view of a shadow's recent passes).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Totals {
    /// Comparisons summed.
    pub passes: u64,
    /// Of those, passes where the shadow failed or was unavailable (not in the figures).
    pub failed: u64,
    pub actions: PerAction,
    pub differing: u64,
}

impl Totals {
    pub fn of<'a>(comparisons: impl IntoIterator<Item = &'a ShadowComparison>) -> Totals {
        let mut t = Totals::default();
        for c in comparisons {
            t.passes += 1;
            if !c.ok() {
                t.failed += 1;
                continue;
            }
            t.actions.add(&c.actions);
            t.differing += c.differing;
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(name: &str, tier: Tier, bytes: u64) -> Segment {
        Segment {
            name: name.into(),
            tier,
            start_ms: 0,
            end_ms: 0,
            rows: None,
            bytes,
            labels: Default::default(),
            locator: String::new(),
            token: Default::default(),
        }
    }

    fn plan(actions: &[(Action, Option<&str>)]) -> (Vec<Decision>, Reasons) {
        let mut reasons = Reasons::default();
        let decisions = actions
            .iter()
            .map(|(action, r)| Decision {
                action: *action,
                reason: r.map_or(0, |r| reasons.intern(r)),
            })
            .collect();
        (decisions, reasons)
    }

    #[test]
    fn the_comparison_counts_both_plans_per_action_and_lists_segments_whose_action_differs_with_both_reasons() {
        let segments = vec![
            seg("a.log", Tier::Hot, 100),
            seg("b.log", Tier::Hot, 200),
            seg("c.log", Tier::Compressed, 50),
        ];
        let active = plan(&[
            (Action::Keep, Some("kept by v1")),
            (Action::Keep, Some("kept by v1")),
            (Action::Keep, Some("kept by v1")),
        ]);
        // c.log: same action, other reason: not a difference.
        let shadow = plan(&[
            (Action::Compress, Some("compressed by v2")),
            (Action::Drop, None),
            (Action::Keep, None),
        ]);
        let (actions, differing, differences) =
            compare(&segments, (&active.0, &active.1), Some((&shadow.0, &shadow.1)));
        assert_eq!(
            actions.keep.active,
            Count {
                segments: 3,
                bytes: 350
            }
        );
        assert_eq!(actions.keep.shadow, Count { segments: 1, bytes: 50 });
        assert_eq!(
            actions.compress.shadow,
            Count {
                segments: 1,
                bytes: 100
            }
        );
        assert_eq!(
            actions.drop.shadow,
            Count {
                segments: 1,
                bytes: 200
            }
        );
        assert_eq!(actions.archive, Both::default());
        assert_eq!(differing, 2);
        assert_eq!(
            differences[0],
            Difference {
                name: "a.log".into(),
                tier: Tier::Hot,
                bytes: 100,
                active: Verdict {
                    action: Action::Keep,
                    reason: Some("kept by v1".into())
                },
                shadow: Verdict {
                    action: Action::Compress,
                    reason: Some("compressed by v2".into())
                },
            }
        );
        assert_eq!(differences[1].name, "b.log");
        assert_eq!(differences[1].shadow.reason, None);
    }

    #[test]
    fn only_the_first_twenty_differences_are_listed_but_all_are_counted() {
        let segments: Vec<Segment> = (0..50).map(|i| seg(&format!("{i:02}.log"), Tier::Hot, 1)).collect();
        let active = plan(&[(Action::Keep, None); 50]);
        let shadow = plan(&[(Action::Drop, Some("old")); 50]);
        let (_, differing, differences) = compare(&segments, (&active.0, &active.1), Some((&shadow.0, &shadow.1)));
        assert_eq!(differing, 50);
        assert_eq!(differences.len(), MAX_DIFFERENCES);
        assert_eq!(differences[19].name, "19.log");
    }

    #[test]
    fn without_a_shadow_plan_only_the_active_side_is_counted_and_totals_skip_failed_passes() {
        let segments = vec![seg("a.log", Tier::Hot, 10)];
        let active = plan(&[(Action::Compress, None)]);
        let (actions, differing, differences) = compare(&segments, (&active.0, &active.1), None);
        assert_eq!(actions.compress.active, Count { segments: 1, bytes: 10 });
        assert_eq!(actions.compress.shadow, Count::default());
        assert_eq!((differing, differences.len()), (0, 0));

        let version = Version {
            name: "p".into(),
            version: "1".into(),
            digest: "d".into(),
        };
        let ok = ShadowComparison {
            plugin: "next".into(),
            active: version.clone(),
            shadow: Some(version.clone()),
            error: None,
            failure_kind: None,
            plan_ms: 1.0,
            segments: 1,
            actions,
            differing: 1,
            differences: vec![],
        };
        let failed = ShadowComparison {
            error: Some("trap".into()),
            ..ok.clone()
        };
        let t = Totals::of([&ok, &ok, &failed]);
        assert_eq!((t.passes, t.failed, t.differing), (3, 1, 2));
        assert_eq!(t.actions.compress.active.segments, 2);
        // What is stored in the state database reads back the same.
        let back: ShadowComparison = serde_json::from_str(&serde_json::to_string(&ok).unwrap()).unwrap();
        assert_eq!(back, ok);
    }
}
