// `swap-v1`, `swap-v2` and `trap-on-load`: plugins for the service's hot-swap tests and benchmark. One source, three
// crates: the crate name picks the behaviour, the crate version is the plugin version. Not examples; never point a
// real dataset at them.
//
// - `swap-v1` (1.0.0) keeps everything ("kept by v1"); with the parameter `slow_ms` it is busy that long in `begin`,
//   so that a test can hold a pass in flight while a new version is swapped in.
// - `swap-v2` (2.0.0) compresses every hot segment ("compressed by v2") and keeps the rest.
// - `trap-on-load` answers `info` but traps when a pass begins, so the host's load trial must reject it.

use retention_sdk::prelude::*;

const CRATE: &str = env!("CARGO_PKG_NAME");

struct Swap;

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
        Ok(Swap)
    }

    fn decide(&mut self, seg: &Segment) -> Decision {
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
