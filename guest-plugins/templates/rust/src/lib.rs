//! `{{name}}`: compresses segments older than `compress_after_days` and drops those older than `drop_after_days`,
//! except segments labelled `kind=audit`, which are only compressed.
//!
//! Parameters: `drop_after_days` (required, whole days), `compress_after_days` (optional, default 1).

use retention_sdk::prelude::*;

struct Rule {
    compress_after_days: i64,
    drop_after_days: i64,
}

impl Plugin for Rule {
    const INFO: Info = Info {
        name: "{{name}}",
        version: env!("CARGO_PKG_VERSION"),
        description: "Compresses segments after some days and drops them later, except audit segments.",
    };

    fn begin(ctx: &Context) -> Result<Self, String> {
        ctx.check_params(&["compress_after_days", "drop_after_days"])?;
        let rule = Rule {
            compress_after_days: ctx.param_or("compress_after_days", 1)?,
            drop_after_days: ctx.param("drop_after_days")?,
        };
        if rule.compress_after_days > rule.drop_after_days {
            return Err(format!(
                "compress_after_days ({}) is more than drop_after_days ({}): nothing would ever be compressed",
                rule.compress_after_days, rule.drop_after_days
            ));
        }
        Ok(rule)
    }

    fn decide(&mut self, seg: &Segment) -> Decision {
        let age = seg.age_days();
        if age >= self.drop_after_days && !seg.label_is("kind", "audit") {
            Decision::drop("older than drop_after_days")
        } else if age >= self.compress_after_days && seg.tier() == Tier::Hot {
            Decision::compress("older than compress_after_days")
        } else {
            Decision::keep()
        }
    }
}

retention_sdk::export_plugin!(Rule);

#[cfg(test)]
mod tests {
    //! Run with `cargo test --target host-tuple`: the plugin runs natively, through the SDK's own glue.

    use super::*;
    use retention_sdk::testing::{Pass, seg};

    const NOW: &str = "2026-02-01T00:00:00Z";

    #[test]
    fn old_segments_are_dropped_younger_ones_compressed_and_audit_segments_kept() {
        let out = Pass::new(NOW)
            .param("drop_after_days", 30)
            .segment(seg("old.log").age_days(31))
            .segment(seg("week.log").age_days(7))
            .segment(seg("today.log").age_days(0))
            .segment(seg("audit.log").age_days(400).label("kind", "audit"))
            .run::<Rule>()
            .unwrap();
        assert_eq!(out.action("old.log"), Action::Drop);
        assert_eq!(out.action("week.log"), Action::Compress);
        assert_eq!(out.action("today.log"), Action::Keep);
        assert_eq!(out.action("audit.log"), Action::Compress);
    }

    #[test]
    fn a_missing_or_unknown_parameter_fails_the_pass() {
        let e = Pass::new(NOW).run::<Rule>().unwrap_err();
        assert_eq!(e.call(), "begin");
        assert!(e.message().contains("drop_after_days"), "{}", e.message());
        let e = Pass::new(NOW)
            .param("drop_after_days", 30)
            .param("drop_after_day", 3)
            .run::<Rule>()
            .unwrap_err();
        assert!(e.message().contains("unknown parameter `drop_after_day`"), "{}", e.message());
    }
}
