// `swap-v1`, `swap-v2` and `trap-on-load`: plugins for the service's hot-swap tests and benchmark. One source, three
// crates: the crate name picks the behaviour, the crate version is the plugin version. Not examples; never point a
// real dataset at them.
//
// - `swap-v1` (1.0.0) keeps everything ("kept by v1"); with the parameter `slow_ms` it is busy that long in `begin`,
//   so that a test can hold a pass in flight while a new version is swapped in.
// - `swap-v2` (2.0.0) compresses every hot segment ("compressed by v2") and keeps the rest.
// - `trap-on-load` answers `info` but traps when a pass begins, so the host's load trial must reject it.
// - `churn` (0.1.0) acts on a pseudo-random part of the segments in every pass (seeded by the pass id and the
//   segment's name): hot segments are compressed, archived or dropped, compressed ones archived or dropped, archived
//   ones dropped or kept. It keeps the crash tests' passes busy with every kind of action.

use retention_sdk::prelude::*;

const CRATE: &str = env!("CARGO_PKG_NAME");

struct Swap {
    /// `churn`: the pass id, mixed into every segment's draw.
    seed: u64,
}

/// FNV-1a: a stable, dependency-free hash for the churn draws.
fn fnv(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = seed ^ 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Plugin for Swap {
    const INFO: Info = Info {
        name: CRATE,
        version: env!("CARGO_PKG_VERSION"),
        description: "A test plugin for the service's hot swap.",
    };

    fn begin(ctx: &Context) -> Result<Self, String> {
        if CRATE == "trap-on-load" {
            panic!("trap-on-load traps whenever a pass begins");
        }
        if CRATE == "swap-v1" {
            let slow_ms: u64 = ctx.param_str("slow_ms").map_or(Ok(0), |v| v.trim().parse()).map_err(|e| format!("slow_ms: {e}"))?;
            let start = std::time::Instant::now();
            while start.elapsed().as_millis() < slow_ms as u128 {
                std::hint::spin_loop();
            }
        }
        Ok(Swap {
            seed: fnv(0, ctx.pass_id().as_bytes()),
        })
    }

    fn decide(&mut self, seg: &Segment) -> Decision {
        if CRATE == "churn" {
            let draw = fnv(self.seed, seg.name().as_bytes()) % 100;
            return match (seg.tier(), draw) {
                (Tier::Hot, 0..20) => Decision::compress("churn: compress"),
                (Tier::Hot, 20..30) | (Tier::Compressed, 0..10) => Decision::archive("churn: archive"),
                (Tier::Hot, 30..38) | (Tier::Compressed, 10..18) | (Tier::Archived, 0..8) => {
                    Decision::drop("churn: drop")
                }
                _ => Decision::keep(),
            };
        }
        if CRATE == "swap-v2" && seg.tier() == Tier::Hot {
            Decision::compress("compressed by v2")
        } else if CRATE == "swap-v2" {
            Decision::keep()
        } else {
            Decision::keep().because("kept by v1")
        }
    }
}

retention_sdk::export_plugin!(Swap);
