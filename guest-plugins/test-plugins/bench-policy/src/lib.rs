//! `bench-policy`: the policy behind the host's throughput benchmark, not an example for users.
//!
//! It decides on time, size, tier and three labels per segment, like a typical tiering rule, so the benchmark measures
//! the plugin boundary and the SDK rather than the policy. The host benchmark has a native copy of exactly this logic;
//! change both together. With `read_names = "true"` it also reads every segment's name.
//!
//! For each segment, in order (ages are `now - end`, in milliseconds; all three labels are read for every segment,
//! `level` and `service` through `label_is`, the SDK's test of a label against a literal, `region` through `label`):
//! 1. `read_names` and the name ends with `.tmp`: drop, "temporary file".
//! 2. age > 30 days and `level` == `debug`: drop, "debug older than 30 days".
//! 3. age > 7 days and tier != archived and bytes > 1 000 000: archive, "large and older than 7 days".
//! 4. tier == hot and age > 1 day and `service` != `audit` (a missing label counts as not audit): compress,
//!    "hot and older than 1 day".
//! 5. Otherwise keep, without a reason.

use retention_sdk::prelude::*;
use retention_sdk::time::DAY_MS;

/// The benchmark policy; `read_names` is its only parameter.
struct BenchPolicy {
    read_names: bool,
}

impl Plugin for BenchPolicy {
    const INFO: Info = Info {
        name: "bench-policy",
        version: env!("CARGO_PKG_VERSION"),
        description: "Throughput benchmark policy: tiers by age, size, tier and the service/level/region labels.",
    };

    fn begin(ctx: &Context) -> Result<Self, String> {
        ctx.check_params(&["read_names"])?;
        Ok(BenchPolicy {
            read_names: ctx.param_or("read_names", false)?,
        })
    }

    #[inline]
    fn decide(&mut self, seg: &Segment) -> Decision {
        if self.read_names && seg.name().ends_with(".tmp") {
            return Decision::drop("temporary file");
        }
        let age = seg.age_ms();
        let audit = seg.label_is("service", "audit");
        let debug = seg.label_is("level", "debug");
        // Read so that every segment costs three label lookups, as in the benchmark's specification; no rule uses it.
        std::hint::black_box(seg.label("region"));
        if age > 30 * DAY_MS && debug {
            Decision::drop("debug older than 30 days")
        } else if age > 7 * DAY_MS && seg.tier() != Tier::Archived && seg.bytes() > 1_000_000 {
            Decision::archive("large and older than 7 days")
        } else if seg.tier() == Tier::Hot && age > DAY_MS && !audit {
            Decision::compress("hot and older than 1 day")
        } else {
            Decision::keep()
        }
    }
}

retention_sdk::export_plugin!(BenchPolicy);
