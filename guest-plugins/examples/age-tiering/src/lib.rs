//! `age-tiering`: moves segments down the tiers as they age — compress, then archive, then drop — with thresholds in
//! days, optionally overridden per label value.
//!
//! Parameters (all optional; an absent threshold, or the value `never`, means the step never happens):
//! - `compress_after_days`: compress hot segments at least this many days old.
//! - `archive_after_days`: archive hot or compressed segments at least this many days old.
//! - `drop_after_days`: drop segments at least this many days old, in any tier.
//! - `override.<label>.<value>.<threshold>`: the threshold (one of the three names above) for segments whose label
//!   `<label>` has the value `<value>`, e.g. `override.level.debug.drop_after_days = "7"` or
//!   `override.level.audit.drop_after_days = "never"`. The label is the part up to the first `.` after `override.`
//!   (label names are regex capture names: no `.`, no `=`), the threshold is the part after the last `.`, and the
//!   value is everything between, so values may contain dots (`override.host.db.internal.drop_after_days`).
//!   `override.<label>=<value>.<threshold>` (e.g. `override.level=debug.drop_after_days`) means the same and reads
//!   well in a TOML config, but `retention plugin test --param` splits at the first `=`, so only the dotted form
//!   can be given there. In TOML, quote either form (`"override.level.audit.drop_after_days" = 2555`): a bare
//!   dotted key would make nested tables.
//!
//! A segment's age is `now - end` in whole days, rounded down. When several overrides match a segment and set the
//! same threshold, the longest retention wins (`never` beats any number, 30 beats 7): a retention tool should never
//! delete earlier than one of the rules that apply says. An override replaces the default even when it is shorter.
//!
//! Decision per segment: drop if the drop threshold is reached; else archive if the archive threshold is reached and
//! the segment is hot or compressed; else compress if the compress threshold is reached and it is hot; else keep.
//! The reason names the age, the threshold and, when it came from an override, the label: "age 9d >=
//! drop_after_days 7 (level=debug)".

use std::collections::HashMap;
use std::rc::Rc;

use retention_sdk::prelude::*;

/// The three thresholds, in the order they are checked for the decision.
const THRESHOLDS: [&str; 3] = ["drop_after_days", "archive_after_days", "compress_after_days"];
const DROP: usize = 0;
const ARCHIVE: usize = 1;
const COMPRESS: usize = 2;

/// A threshold as configured: `None` means never.
type Days = Option<u32>;

/// Overrides for one label key: per value, the thresholds it sets (`None` = not set by this override).
struct KeyOverrides {
    key: String,
    values: Vec<(String, [Option<Days>; 3])>,
}

/// A threshold in force for one segment: its days, the override `(label, value)` that set it (`None`: the default),
/// and that override's identity for the reason cache (0 for the default, else 1 + its group and value position).
type Effective<'a> = (Days, Option<(&'a str, &'a str)>, usize);

/// Age-based tiering with per-label overrides.
struct AgeTiering {
    defaults: [Days; 3],
    overrides: Vec<KeyOverrides>,
    /// Reasons already written, by (age, threshold, days, override): a dataset has few distinct ones, and formatting
    /// a string per segment would cost more than the rest of the decision.
    reasons: HashMap<(i64, usize, u32, usize), Rc<str>>,
}

/// Parses a threshold value: a number of days or `never`.
fn parse_days(key: &str, value: &str) -> Result<Days, String> {
    let v = value.trim();
    if v.eq_ignore_ascii_case("never") {
        return Ok(None);
    }
    v.parse::<u32>()
        .map(Some)
        .map_err(|e| format!("parameter `{key}` = {value:?}: expected a whole number of days or `never` ({e})"))
}

/// Splits `override.<label>.<value>.<threshold>` (or `override.<label>=<value>.<threshold>`) into its parts.
fn parse_override_key(key: &str) -> Result<(&str, &str, usize), String> {
    let bad = || {
        format!(
            "parameter `{key}`: expected override.<label>.<value>.<threshold> with <threshold> one of \
             compress_after_days, archive_after_days, drop_after_days"
        )
    };
    let rest = key.strip_prefix("override.").ok_or_else(bad)?;
    let (selector, threshold) = rest.rsplit_once('.').ok_or_else(bad)?;
    // A label name has neither `=` nor `.`, so whichever comes first ends it.
    let (label, value) = match selector.find(['=', '.']) {
        Some(i) => (&selector[..i], &selector[i + 1..]),
        None => return Err(bad()),
    };
    let which = THRESHOLDS.iter().position(|t| *t == threshold).ok_or_else(bad)?;
    if label.is_empty() {
        return Err(bad());
    }
    Ok((label, value, which))
}

impl Plugin for AgeTiering {
    const INFO: Info = Info {
        name: "age-tiering",
        version: env!("CARGO_PKG_VERSION"),
        description: "Compresses, archives and drops segments by age in days, with per-label overrides.",
    };

    fn begin(ctx: &Context) -> Result<Self, String> {
        ctx.check_params_with(&THRESHOLDS, |k| k.starts_with("override."))?;
        let mut defaults = [None; 3];
        let mut overrides: Vec<KeyOverrides> = Vec::new();
        for (key, value) in ctx.params() {
            if let Some(which) = THRESHOLDS.iter().position(|t| *t == key) {
                defaults[which] = parse_days(key, value)?;
                continue;
            }
            let (label, label_value, which) = parse_override_key(key)?;
            let days = parse_days(key, value)?;
            let group = match overrides.iter().position(|o| o.key == label) {
                Some(i) => &mut overrides[i],
                None => {
                    overrides.push(KeyOverrides {
                        key: label.to_string(),
                        values: Vec::new(),
                    });
                    overrides.last_mut().expect("just pushed")
                }
            };
            match group.values.iter_mut().find(|(v, _)| v == label_value) {
                Some((_, set)) => set[which] = Some(days),
                None => {
                    let mut set = [None; 3];
                    set[which] = Some(days);
                    group.values.push((label_value.to_string(), set));
                }
            }
        }
        Ok(AgeTiering {
            defaults,
            overrides,
            reasons: HashMap::new(),
        })
    }

    fn decide(&mut self, seg: &Segment) -> Decision {
        let age = seg.age_days();
        if age < 0 {
            // From the future (clock skew, or a pass with an earlier --now): too young for any rule.
            return Decision::keep();
        }
        // The effective thresholds, each with the override that set it.
        let mut effective: [Effective<'_>; 3] = self.defaults.map(|d| (d, None, 0));
        let mut overridden = [false; 3];
        for (gi, group) in self.overrides.iter().enumerate() {
            let Some(value) = seg.label(&group.key) else { continue };
            for (vi, (v, set)) in group.values.iter().enumerate() {
                if v != value {
                    continue;
                }
                for which in 0..3 {
                    let Some(days) = set[which] else { continue };
                    // The first matching override replaces the default; among several, the longest retention wins.
                    if !overridden[which] || longer(days, effective[which].0) {
                        let source = 1 + gi * 1024 + vi;
                        effective[which] = (days, Some((group.key.as_str(), v.as_str())), source);
                        overridden[which] = true;
                    }
                }
            }
        }
        let reached = |which: usize| matches!(effective[which].0, Some(d) if age >= i64::from(d));
        let tier = seg.tier();
        let which = if reached(DROP) {
            DROP
        } else if reached(ARCHIVE) && Action::Archive.allowed_from(tier) {
            ARCHIVE
        } else if reached(COMPRESS) && Action::Compress.allowed_from(tier) {
            COMPRESS
        } else {
            return Decision::keep();
        };
        let (days, source, source_id) = effective[which];
        let days = days.expect("a reached threshold has a number of days");
        let reason = self.reasons.entry((age, which, days, source_id)).or_insert_with(|| {
            let text = match source {
                Some((k, v)) => format!("age {age}d >= {} {days} ({k}={v})", THRESHOLDS[which]),
                None => format!("age {age}d >= {} {days}", THRESHOLDS[which]),
            };
            Rc::from(text)
        });
        let action = [Action::Drop, Action::Archive, Action::Compress][which];
        Decision::new(action, &*reason)
    }
}

/// Whether threshold `a` keeps data longer than `b` (`None`, never, is the longest).
fn longer(a: Days, b: Days) -> bool {
    match (a, b) {
        (None, _) => b.is_some(),
        (Some(_), None) => false,
        (Some(x), Some(y)) => x > y,
    }
}

retention_sdk::export_plugin!(AgeTiering);

#[cfg(test)]
mod tests {
    //! The parsing helpers, and the documented behaviour run through `retention_sdk::testing` as the host runs it.

    use super::*;
    use retention_sdk::testing::{Outcome, Pass, seg};

    const NOW: &str = "2026-03-01T00:00:00Z";

    /// Each segment's action and reason, oldest first.
    fn plan(out: &Outcome) -> Vec<(&str, Action, Option<&str>)> {
        let mut d: Vec<_> = out.decisions().iter().collect();
        d.sort_by_key(|d| d.index);
        d.into_iter()
            .map(|d| (d.name.as_str(), d.action, d.reason.as_deref()))
            .collect()
    }

    #[test]
    fn each_segment_takes_the_furthest_step_its_age_reached_that_its_tier_allows() {
        let out = Pass::new(NOW)
            .param("compress_after_days", 1)
            .param("archive_after_days", 7)
            .param("drop_after_days", 30)
            .segment(seg("hot-31d").age_days(31))
            .segment(seg("archived-30d").age_days(30).tier(Tier::Archived))
            .segment(seg("archived-10d").age_days(10).tier(Tier::Archived))
            .segment(seg("compressed-8d").age_days(8).tier(Tier::Compressed))
            .segment(seg("hot-7d").age_days(7))
            // 6 days and 23 hours: whole days round down, so still short of archive_after_days.
            .segment(seg("hot-6d23h").age_ms(7 * DAY_MS - HOUR_MS))
            .segment(seg("compressed-3d").age_days(3).tier(Tier::Compressed))
            .segment(seg("hot-1d").age_days(1))
            .segment(seg("hot-23h").age_ms(23 * HOUR_MS))
            .segment(seg("hot-future").age_ms(-HOUR_MS))
            .run::<AgeTiering>()
            .unwrap();
        assert_eq!(
            plan(&out),
            [
                ("hot-31d", Action::Drop, Some("age 31d >= drop_after_days 30")),
                ("archived-30d", Action::Drop, Some("age 30d >= drop_after_days 30")),
                ("archived-10d", Action::Keep, None),
                ("compressed-8d", Action::Archive, Some("age 8d >= archive_after_days 7")),
                ("hot-7d", Action::Archive, Some("age 7d >= archive_after_days 7")),
                ("hot-6d23h", Action::Compress, Some("age 6d >= compress_after_days 1")),
                ("compressed-3d", Action::Keep, None),
                ("hot-1d", Action::Compress, Some("age 1d >= compress_after_days 1")),
                ("hot-23h", Action::Keep, None),
                ("hot-future", Action::Keep, None),
            ]
        );
    }

    #[test]
    fn an_absent_or_never_threshold_is_a_step_that_never_happens() {
        let out = Pass::new(NOW)
            .param("compress_after_days", 2)
            .param("drop_after_days", "Never")
            .segment(seg("hot").age_days(5000))
            .segment(seg("compressed").age_days(5000).tier(Tier::Compressed))
            .run::<AgeTiering>()
            .unwrap();
        assert_eq!(out.action("hot"), Action::Compress);
        assert_eq!(out.action("compressed"), Action::Keep);
        let out = Pass::new(NOW)
            .segment(seg("ancient").age_days(100_000))
            .run::<AgeTiering>()
            .unwrap();
        assert_eq!(out.action("ancient"), Action::Keep);
    }

    #[test]
    fn a_label_override_replaces_the_default_for_matching_segments_shorter_or_longer() {
        let out = Pass::new(NOW)
            .param("compress_after_days", 1)
            .param("drop_after_days", 30)
            .param("override.level.debug.drop_after_days", 7)
            .param("override.service.audit.drop_after_days", "never")
            .segment(seg("debug-9d").age_days(9).label("level", "debug"))
            .segment(seg("info-9d").age_days(9).label("level", "info"))
            .segment(seg("unlabelled-31d").age_days(31))
            .segment(seg("audit-400d").age_days(400).label("service", "audit"))
            .run::<AgeTiering>()
            .unwrap();
        assert_eq!(out.action("debug-9d"), Action::Drop);
        assert_eq!(
            out.reason("debug-9d"),
            Some("age 9d >= drop_after_days 7 (level=debug)")
        );
        assert_eq!(out.action("info-9d"), Action::Compress);
        assert_eq!(out.reason("unlabelled-31d"), Some("age 31d >= drop_after_days 30"));
        // The override only sets the drop threshold: the default compression still applies.
        assert_eq!(out.action("audit-400d"), Action::Compress);
        assert_eq!(out.reason("audit-400d"), Some("age 400d >= compress_after_days 1"));
    }

    #[test]
    fn when_several_overrides_match_the_longest_retention_wins() {
        let pass = Pass::new(NOW)
            .param("drop_after_days", 3)
            .param("override.level.debug.drop_after_days", 7)
            .param("override.service.api.drop_after_days", 14)
            .param("override.zone.eu.drop_after_days", "never");
        let out = pass
            .clone()
            .segment(
                seg("debug-api-10d")
                    .age_days(10)
                    .label("level", "debug")
                    .label("service", "api"),
            )
            .segment(
                seg("debug-api-15d")
                    .age_days(15)
                    .label("level", "debug")
                    .label("service", "api"),
            )
            .segment(
                seg("debug-api-eu-900d")
                    .age_days(900)
                    .label("level", "debug")
                    .label("service", "api")
                    .label("zone", "eu"),
            )
            .run::<AgeTiering>()
            .unwrap();
        assert_eq!(out.action("debug-api-10d"), Action::Keep);
        assert_eq!(
            out.reason("debug-api-15d"),
            Some("age 15d >= drop_after_days 14 (service=api)")
        );
        assert_eq!(out.action("debug-api-eu-900d"), Action::Keep);
    }

    #[test]
    fn both_override_forms_work_and_values_may_contain_dots() {
        let out = Pass::new(NOW)
            .param("override.host=db.internal.archive_after_days", 2)
            .param("override.host.db.internal.drop_after_days", 20)
            .segment(seg("db-3d").age_days(3).label("host", "db.internal"))
            .segment(seg("db-21d").age_days(21).label("host", "db.internal"))
            .segment(seg("db-other-21d").age_days(21).label("host", "db"))
            .run::<AgeTiering>()
            .unwrap();
        assert_eq!(
            out.reason("db-3d"),
            Some("age 3d >= archive_after_days 2 (host=db.internal)")
        );
        assert_eq!(
            out.reason("db-21d"),
            Some("age 21d >= drop_after_days 20 (host=db.internal)")
        );
        assert_eq!(out.action("db-other-21d"), Action::Keep);
    }

    #[test]
    fn unknown_or_malformed_parameters_fail_the_pass() {
        let err = |key: &str, value: &str| Pass::new(NOW).param(key, value).run::<AgeTiering>().unwrap_err();
        let e = err("drop_after_day", "7");
        assert_eq!(e.call(), "begin");
        assert_eq!(
            e.message(),
            "unknown parameter `drop_after_day` (expected: drop_after_days, archive_after_days, compress_after_days)"
        );
        assert!(
            err("drop_after_days", "soon")
                .message()
                .starts_with("parameter `drop_after_days` = \"soon\": expected a whole number of days or `never`"),
        );
        assert!(
            err("override.level.debug.keep_after_days", "7")
                .message()
                .contains("expected override.<label>")
        );
        assert!(
            err("override.level.debug.drop_after_days", "-1")
                .message()
                .contains("whole number of days")
        );
    }

    #[test]
    fn decisions_and_reasons_do_not_depend_on_the_batch_size() {
        let pass = Pass::new(NOW)
            .param("compress_after_days", 1)
            .param("archive_after_days", 5)
            .param("drop_after_days", 9)
            .param("override.level.debug.drop_after_days", 3)
            .segments((0..40).map(|i| {
                let level = if i % 3 == 0 { "debug" } else { "info" };
                let tier = Tier::ALL[i % 3];
                seg(format!("s{i}"))
                    .age_days(i as i64 % 12)
                    .tier(tier)
                    .label("level", level)
            }));
        let whole = pass.run::<AgeTiering>().unwrap();
        assert_eq!(whole.names_with(Action::Drop).len(), 16);
        for size in [1, 7] {
            let cut = pass.clone().batch_size(size).run::<AgeTiering>().unwrap();
            assert_eq!(cut.decisions(), whole.decisions(), "batch size {size}");
        }
    }

    #[test]
    fn override_keys_parse_in_both_forms_and_values_may_contain_dots_and_equals() {
        assert_eq!(
            parse_override_key("override.level.debug.drop_after_days"),
            Ok(("level", "debug", DROP))
        );
        assert_eq!(
            parse_override_key("override.level=debug.drop_after_days"),
            Ok(("level", "debug", DROP))
        );
        assert_eq!(
            parse_override_key("override.host.db.internal.archive_after_days"),
            Ok(("host", "db.internal", ARCHIVE))
        );
        assert_eq!(
            parse_override_key("override.host=db.internal.compress_after_days"),
            Ok(("host", "db.internal", COMPRESS))
        );
        assert_eq!(
            parse_override_key("override.tag.a=b.drop_after_days"),
            Ok(("tag", "a=b", DROP))
        );
        assert_eq!(
            parse_override_key("override.tag..drop_after_days"),
            Ok(("tag", "", DROP))
        );
        for bad in [
            "override.level.drop_after_days",
            "override.level.debug.keep_after_days",
            "override..debug.drop_after_days",
            "override.=debug.drop_after_days",
            "level.debug.drop_after_days",
        ] {
            assert!(parse_override_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_longest_retention_is_never_then_the_most_days() {
        assert!(longer(None, Some(5)));
        assert!(!longer(None, None));
        assert!(!longer(Some(5), None));
        assert!(longer(Some(6), Some(5)));
        assert!(!longer(Some(5), Some(5)));
    }
}
