//! `gfs`: grandfather-father-son retention — keep the newest segment of each of the last N days, ISO weeks, months
//! and years (and the last N segments), drop everything else. The semantics are those of `restic forget` and
//! `borg prune`.
//!
//! Parameters (each optional, default 0 = rule off; at least one must be positive):
//! - `keep_last`: keep the newest N segments.
//! - `keep_daily`: for each of the last N days that have a segment, keep the newest segment of that day.
//! - `keep_weekly`: the same per ISO week (Monday to Sunday; week 1 holds the year's first Thursday).
//! - `keep_monthly`: the same per calendar month.
//! - `keep_yearly`: the same per calendar year.
//! - `group_by`: a label name, e.g. `service`: the rules apply to each value of that label separately (segments
//!   without the label form one group of their own).
//!
//! Days, weeks, months and years are UTC calendar periods of each segment's end time. "The last N days" counts only
//! days that have a segment, so a gap in the data does not use up the budget. A segment kept by any rule is kept.
//!
//! Segments arrive oldest first, but which segment is the newest of its day is only known after the whole day was
//! seen, so the plugin asks for observe-first: during `observe` it keeps, per group and rule, a window of the newest
//! N periods seen so far with the newest segment of each (memory O(groups x N), not O(segments)); `decide` then
//! keeps exactly those segments.

use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use retention_sdk::prelude::*;

/// The period rules, in the order their names appear in reasons.
const PERIODS: [Period; 4] = [Period::Day, Period::Week, Period::Month, Period::Year];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Period {
    Day,
    Week,
    Month,
    Year,
}

impl Period {
    fn param(self) -> &'static str {
        match self {
            Period::Day => "keep_daily",
            Period::Week => "keep_weekly",
            Period::Month => "keep_monthly",
            Period::Year => "keep_yearly",
        }
    }

    /// A number identifying the period that contains `end_ms`; later periods have larger numbers.
    fn key(self, end_ms: i64) -> i64 {
        let date = Date::from_unix_ms(end_ms);
        match self {
            Period::Day => date.days_since_epoch(),
            Period::Week => {
                let w = date.iso_week();
                i64::from(w.year) * 100 + i64::from(w.week)
            }
            Period::Month => i64::from(date.year()) * 12 + i64::from(date.month()) - 1,
            Period::Year => i64::from(date.year()),
        }
    }

    /// The period containing `end_ms`, as people write it: `2026-01-09`, `2026-W02`, `2026-01`, `2026`.
    fn label(self, end_ms: i64) -> String {
        let date = Date::from_unix_ms(end_ms);
        match self {
            Period::Day => date.to_string(),
            Period::Week => date.iso_week().to_string(),
            Period::Month => format!("{:04}-{:02}", date.year(), date.month()),
            Period::Year => format!("{:04}", date.year()),
        }
    }

    /// The bit marking "kept by this rule"; bit 0 is `keep_last`.
    fn bit(self) -> u8 {
        match self {
            Period::Day => 1 << 1,
            Period::Week => 1 << 2,
            Period::Month => 1 << 3,
            Period::Year => 1 << 4,
        }
    }
}

const LAST_BIT: u8 = 1;

/// The newest `limit` periods seen so far, each with the index of its newest segment.
struct Window {
    limit: usize,
    periods: VecDeque<(i64, u64)>,
}

impl Window {
    fn new(limit: usize) -> Window {
        Window {
            limit,
            periods: VecDeque::new(),
        }
    }

    /// Records a segment; segments come oldest first, so its period is the newest seen or a newer one.
    fn push(&mut self, period: i64, index: u64) {
        match self.periods.back_mut() {
            Some((p, newest)) if *p == period => *newest = index,
            _ => {
                self.periods.push_back((period, index));
                if self.periods.len() > self.limit {
                    self.periods.pop_front();
                }
            }
        }
    }
}

/// The rules' windows for one group of segments.
struct Group {
    last: VecDeque<u64>,
    periods: Vec<(Period, Window)>,
}

/// GFS retention.
struct Gfs {
    keep_last: usize,
    /// The period rules that are on, with their N.
    rules: Vec<(Period, usize)>,
    group_by: Option<String>,
    /// Per group (the `group_by` label's symbol id, 0 without the label), the windows filled during observe. A
    /// BTreeMap rather than a HashMap: no random seed, so the component needs no `wasi:random` import.
    groups: BTreeMap<u32, Group>,
    /// After observe: indices of the segments to keep with the rules that keep them, ascending by index.
    kept: Option<Vec<(u64, u8)>>,
    /// Position in `kept` of the next segment to keep.
    cursor: usize,
    /// The reason for every drop: the same text for the whole pass.
    drop_reason: Rc<str>,
}

impl Gfs {
    fn new_group(&self) -> Group {
        Group {
            last: VecDeque::with_capacity(self.keep_last.min(1024)),
            periods: self.rules.iter().map(|&(p, n)| (p, Window::new(n))).collect(),
        }
    }

    /// Gathers the segments every window kept into one sorted list (a segment may be kept by several rules).
    fn collect_kept(&mut self) -> Vec<(u64, u8)> {
        let mut all: Vec<(u64, u8)> = Vec::new();
        for g in self.groups.values() {
            all.extend(g.last.iter().map(|&i| (i, LAST_BIT)));
            for (period, w) in &g.periods {
                all.extend(w.periods.iter().map(|&(_, i)| (i, period.bit())));
            }
        }
        all.sort_unstable_by_key(|&(i, _)| i);
        let mut merged: Vec<(u64, u8)> = Vec::with_capacity(all.len());
        for (i, bits) in all {
            match merged.last_mut() {
                Some((j, b)) if *j == i => *b |= bits,
                _ => merged.push((i, bits)),
            }
        }
        merged
    }
}

impl Plugin for Gfs {
    const INFO: Info = Info {
        name: "gfs",
        version: env!("CARGO_PKG_VERSION"),
        description: "Keeps the newest segment of each of the last N days, weeks, months and years; drops the rest.",
    };
    const OBSERVE_FIRST: bool = true;

    fn begin(ctx: &Context) -> Result<Self, String> {
        ctx.check_params(&[
            "keep_last",
            "keep_daily",
            "keep_weekly",
            "keep_monthly",
            "keep_yearly",
            "group_by",
        ])?;
        let keep_last: u32 = ctx.param_or("keep_last", 0)?;
        let mut rules = Vec::new();
        for p in PERIODS {
            let n: u32 = ctx.param_or(p.param(), 0)?;
            if n > 0 {
                rules.push((p, n as usize));
            }
        }
        if keep_last == 0 && rules.is_empty() {
            return Err(
                "no keep rule set: set at least one of keep_last, keep_daily, keep_weekly, keep_monthly, keep_yearly \
                 (refusing to drop every segment)"
                    .into(),
            );
        }
        let group_by = ctx.param_str("group_by").map(str::trim).filter(|g| !g.is_empty());
        let mut listed: Vec<String> = Vec::new();
        if keep_last > 0 {
            listed.push(format!("keep_last {keep_last}"));
        }
        listed.extend(rules.iter().map(|(p, n)| format!("{} {n}", p.param())));
        let mut drop_reason = format!("not kept by {}", listed.join(", "));
        if let Some(g) = group_by {
            drop_reason.push_str(&format!(" (per {g})"));
        }
        Ok(Gfs {
            keep_last: keep_last as usize,
            rules,
            group_by: group_by.map(str::to_string),
            groups: BTreeMap::new(),
            kept: None,
            cursor: 0,
            drop_reason: drop_reason.into(),
        })
    }

    fn observe(&mut self, seg: &Segment) {
        let group_id = match &self.group_by {
            Some(key) => seg.label_symbol(key).map_or(0, |s| s.id()),
            None => 0,
        };
        if !self.groups.contains_key(&group_id) {
            let g = self.new_group();
            self.groups.insert(group_id, g);
        }
        let group = self.groups.get_mut(&group_id).expect("just inserted");
        let index = seg.index();
        if self.keep_last > 0 {
            group.last.push_back(index);
            if group.last.len() > self.keep_last {
                group.last.pop_front();
            }
        }
        let end = seg.end_ms();
        for (period, window) in &mut group.periods {
            window.push(period.key(end), index);
        }
    }

    fn decide(&mut self, seg: &Segment) -> Decision {
        if self.kept.is_none() {
            // The first decide: observe has seen every segment.
            self.kept = Some(self.collect_kept());
            self.groups.clear();
        }
        let kept = self.kept.as_deref().expect("set above");
        let index = seg.index();
        while self.cursor < kept.len() && kept[self.cursor].0 < index {
            self.cursor += 1;
        }
        match kept.get(self.cursor) {
            Some(&(i, bits)) if i == index => {
                let end = seg.end_ms();
                let mut why: Vec<String> = Vec::new();
                if bits & LAST_BIT != 0 {
                    why.push(format!("keep_last {}", self.keep_last));
                }
                for (period, _) in &self.rules {
                    if bits & period.bit() != 0 {
                        why.push(format!("{} {}", period.param(), period.label(end)));
                    }
                }
                Decision::keep().because(why.join(", "))
            }
            _ => Decision::drop(&self.drop_reason),
        }
    }
}

retention_sdk::export_plugin!(Gfs);

#[cfg(test)]
mod tests {
    //! The documented behaviour, run through `retention_sdk::testing` as the host runs it (observe first).

    use super::*;
    use retention_sdk::testing::{Outcome, Pass, seg};

    const NOW: &str = "2026-03-01T00:00:00Z";

    /// Each segment's action and reason, oldest first.
    fn plan(out: &Outcome) -> Vec<(&str, Action, &str)> {
        let mut d: Vec<_> = out.decisions().iter().collect();
        d.sort_by_key(|d| d.index);
        d.into_iter()
            .map(|d| (d.name.as_str(), d.action, d.reason.as_deref().unwrap_or("-")))
            .collect()
    }

    /// A segment ending at `time`, named after it.
    fn at(time: &str) -> retention_sdk::testing::TestSegment {
        seg(time).time(time)
    }

    #[test]
    fn keep_daily_keeps_the_newest_segment_of_each_of_the_last_n_days_that_have_one() {
        let mut pass = Pass::new(NOW).param("keep_daily", 3);
        // 2026-01-07 has no segment: it does not use up one of the three days.
        for day in ["05", "06", "08", "09"] {
            for hour in ["01", "12", "23"] {
                pass = pass.segment(at(&format!("2026-01-{day}T{hour}:00:00Z")));
            }
        }
        // Dropping is allowed from every tier, and the rules do not look at tiers.
        let pass = pass.segment(at("2026-01-04T00:00:00Z").tier(Tier::Archived));
        let out = pass.run::<Gfs>().unwrap();
        assert!(out.observed_first());
        assert_eq!(
            out.names_with(Action::Keep),
            ["2026-01-06T23:00:00Z", "2026-01-08T23:00:00Z", "2026-01-09T23:00:00Z"]
        );
        assert_eq!(out.reason("2026-01-08T23:00:00Z"), Some("keep_daily 2026-01-08"));
        assert_eq!(out.names_with(Action::Drop).len(), 10);
        assert_eq!(out.action("2026-01-04T00:00:00Z"), Action::Drop);
        assert_eq!(out.reason("2026-01-09T12:00:00Z"), Some("not kept by keep_daily 3"));
    }

    #[test]
    fn keep_weekly_counts_iso_weeks_which_cross_the_new_year() {
        let out = Pass::new(NOW)
            .param("keep_weekly", 2)
            .segment(at("2025-12-28T10:00:00Z")) // a Sunday: 2025-W52
            .segment(at("2025-12-29T10:00:00Z")) // Monday of 2026-W01
            .segment(at("2026-01-04T10:00:00Z")) // Sunday of 2026-W01
            .segment(at("2026-01-05T10:00:00Z")) // Monday of 2026-W02
            .run::<Gfs>()
            .unwrap();
        assert_eq!(
            plan(&out),
            [
                ("2025-12-28T10:00:00Z", Action::Drop, "not kept by keep_weekly 2"),
                ("2025-12-29T10:00:00Z", Action::Drop, "not kept by keep_weekly 2"),
                ("2026-01-04T10:00:00Z", Action::Keep, "keep_weekly 2026-W01"),
                ("2026-01-05T10:00:00Z", Action::Keep, "keep_weekly 2026-W02"),
            ]
        );
    }

    #[test]
    fn keep_monthly_and_keep_yearly_keep_the_newest_of_each_calendar_period_in_utc() {
        let out = Pass::new(NOW)
            .param("keep_monthly", 2)
            .param("keep_yearly", 2)
            .segment(at("2024-06-01T00:00:00Z"))
            .segment(at("2025-11-15T00:00:00Z"))
            .segment(at("2025-11-30T00:00:00Z"))
            // 00:30 on New Year's Day in Paris is still 2025 in UTC.
            .segment(seg("new-year-paris").time("2026-01-01T00:30:00+01:00"))
            .segment(at("2026-01-01T00:00:00Z"))
            .segment(at("2026-02-10T00:00:00Z"))
            .run::<Gfs>()
            .unwrap();
        let dropped = "not kept by keep_monthly 2, keep_yearly 2";
        assert_eq!(
            plan(&out),
            [
                ("2024-06-01T00:00:00Z", Action::Drop, dropped),
                ("2025-11-15T00:00:00Z", Action::Drop, dropped),
                ("2025-11-30T00:00:00Z", Action::Drop, dropped),
                ("new-year-paris", Action::Keep, "keep_yearly 2025"),
                ("2026-01-01T00:00:00Z", Action::Keep, "keep_monthly 2026-01"),
                (
                    "2026-02-10T00:00:00Z",
                    Action::Keep,
                    "keep_monthly 2026-02, keep_yearly 2026"
                ),
            ]
        );
    }

    #[test]
    fn keep_last_keeps_the_newest_n_and_a_segment_kept_by_any_rule_is_kept() {
        let out = Pass::new(NOW)
            .param("keep_last", 3)
            .param("keep_daily", 2)
            .segment(at("2026-01-08T10:00:00Z"))
            .segment(at("2026-01-09T10:00:00Z"))
            .segment(at("2026-01-09T20:00:00Z"))
            .segment(at("2026-01-10T05:00:00Z"))
            .run::<Gfs>()
            .unwrap();
        assert_eq!(
            plan(&out),
            [
                (
                    "2026-01-08T10:00:00Z",
                    Action::Drop,
                    "not kept by keep_last 3, keep_daily 2"
                ),
                ("2026-01-09T10:00:00Z", Action::Keep, "keep_last 3"),
                (
                    "2026-01-09T20:00:00Z",
                    Action::Keep,
                    "keep_last 3, keep_daily 2026-01-09"
                ),
                (
                    "2026-01-10T05:00:00Z",
                    Action::Keep,
                    "keep_last 3, keep_daily 2026-01-10"
                ),
            ]
        );
    }

    #[test]
    fn group_by_applies_the_rules_to_each_label_value_and_to_the_unlabelled_segments_as_one_group() {
        let out = Pass::new(NOW)
            .param("keep_last", 1)
            .param("group_by", "service")
            .segment(seg("api-old").age_days(6).label("service", "api"))
            .segment(seg("db-old").age_days(5).label("service", "db"))
            .segment(seg("bare-old").age_days(4))
            .segment(seg("api-new").age_days(3).label("service", "api"))
            .segment(seg("bare-new").age_days(2).label("level", "info"))
            .segment(seg("db-new").age_days(1).label("service", "db"))
            .run::<Gfs>()
            .unwrap();
        assert_eq!(out.names_with(Action::Keep), ["api-new", "bare-new", "db-new"]);
        assert_eq!(out.reason("db-new"), Some("keep_last 1"));
        assert_eq!(out.names_with(Action::Drop), ["api-old", "db-old", "bare-old"]);
        assert_eq!(out.reason("bare-old"), Some("not kept by keep_last 1 (per service)"));
    }

    #[test]
    fn no_rule_or_an_unknown_or_malformed_parameter_fails_the_pass() {
        let no_rule = "no keep rule set: set at least one of keep_last, keep_daily, keep_weekly, keep_monthly, \
                       keep_yearly (refusing to drop every segment)";
        let pass = Pass::new(NOW).segment(seg("a"));
        assert_eq!(pass.run::<Gfs>().unwrap_err().message(), no_rule);
        let err = pass
            .clone()
            .param("keep_daily", 0)
            .param("group_by", "service")
            .run::<Gfs>()
            .unwrap_err();
        assert_eq!((err.call(), err.message()), ("begin", no_rule));
        assert_eq!(
            pass.clone()
                .param("keep_hourly", 24)
                .run::<Gfs>()
                .unwrap_err()
                .message(),
            "unknown parameter `keep_hourly` (expected: keep_last, keep_daily, keep_weekly, keep_monthly, \
             keep_yearly, group_by)"
        );
        let err = pass.param("keep_daily", "-1").run::<Gfs>().unwrap_err();
        assert!(
            err.message()
                .starts_with("parameter `keep_daily` = \"-1\": expected u32"),
            "{err}"
        );
    }

    #[test]
    fn decisions_do_not_depend_on_the_batch_size() {
        let pass = Pass::new(NOW)
            .param("keep_last", 3)
            .param("keep_daily", 7)
            .param("keep_weekly", 4)
            .param("keep_monthly", 2)
            .param("group_by", "service")
            .segments((0..150).map(|i| {
                let service = ["api", "db", "web"][i % 3];
                seg(format!("s{i}"))
                    .age_ms(i as i64 * 10 * HOUR_MS)
                    .label("service", service)
            }));
        let whole = pass.run::<Gfs>().unwrap();
        let kept = whole.names_with(Action::Keep).len();
        assert!(kept > 3 * 7 && kept < 150, "{kept} kept");
        for size in [1, 8, 149] {
            let cut = pass.clone().batch_size(size).run::<Gfs>().unwrap();
            assert_eq!(cut.decisions(), whole.decisions(), "batch size {size}");
        }
    }
}
