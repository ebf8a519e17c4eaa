//! Legal holds: selectors over a dataset's segments (a label match or a name prefix) whose segments are never archived
//! or dropped, whatever the plugin says.
//!
//! Holds are applied to the plan after the plugin and before the guards: a held segment's archive or drop becomes a
//! keep, and the report and audit trail show it as overridden with the hold that caused it. Compression is allowed on
//! held segments (it keeps every byte in place). No option of a pass (`--force` included) skips holds.

use serde::{Deserialize, Serialize};

use crate::segment::{Action, Decision, Segment, Symbols};

/// What a hold selects within its dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Selector {
    /// Segments whose label `key` has this `value`.
    Label { key: String, value: String },
    /// Segments whose name starts with this prefix.
    NamePrefix(String),
}

/// A hold as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Hold {
    pub id: i64,
    pub dataset: String,
    pub selector: Selector,
    pub reason: String,
    pub author: String,
    pub created_at: String,
    /// When and by whom it was lifted; a lifted hold selects nothing.
    pub lifted_at: Option<String>,
    pub lifted_by: Option<String>,
}

impl Hold {
    /// Whether the hold selects this segment.
    pub fn selects(&self, segment: &Segment, symbols: &Symbols) -> bool {
        if self.lifted_at.is_some() {
            return false;
        }
        match &self.selector {
            Selector::Label { key, value } => segment.label(symbols, key) == Some(value.as_str()),
            Selector::NamePrefix(prefix) => segment.name.starts_with(prefix.as_str()),
        }
    }

    /// Whether the hold selects a segment known by name only (a trash entry); `label` gives its labels.
    pub fn selects_name(&self, name: &str, label: impl Fn(&str) -> Option<String>) -> bool {
        if self.lifted_at.is_some() {
            return false;
        }
        match &self.selector {
            Selector::Label { key, value } => label(key).as_deref() == Some(value.as_str()),
            Selector::NamePrefix(prefix) => name.starts_with(prefix.as_str()),
        }
    }

    /// `hold 3 (litigation 2026-114, by legal@example.com)`, as shown in reports.
    pub fn describe(&self) -> String {
        format!("hold {} ({}, by {})", self.id, self.reason, self.author)
    }
}

/// A decision a hold changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Overridden {
    /// What the plugin decided.
    pub action: Action,
    pub hold_id: i64,
    /// The hold, described.
    pub hold: String,
}

/// Turns every archive or drop of a held segment into a keep. Returns, per segment, the override if there was one.
pub fn apply(
    holds: &[Hold],
    segments: &[Segment],
    symbols: &Symbols,
    decisions: &mut [Decision],
) -> Vec<Option<Overridden>> {
    let mut out = vec![None; segments.len()];
    if holds.is_empty() {
        return out;
    }
    for (i, (s, d)) in segments.iter().zip(decisions.iter_mut()).enumerate() {
        if !matches!(d.action, Action::Archive | Action::Drop) {
            continue;
        }
        if let Some(h) = holds.iter().find(|h| h.selects(s, symbols)) {
            out[i] = Some(Overridden {
                action: d.action,
                hold_id: h.id,
                hold: h.describe(),
            });
            d.action = Action::Keep;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::Tier;

    fn seg(name: &str, labels: &[(&str, &str)], symbols: &mut Symbols) -> Segment {
        let mut l: crate::segment::Labels = labels
            .iter()
            .map(|(k, v)| (symbols.intern(k), symbols.intern(v)))
            .collect();
        l.sort_by_key(|(k, _)| *k);
        Segment {
            name: name.into(),
            tier: Tier::Hot,
            start_ms: 0,
            end_ms: 0,
            rows: None,
            bytes: 1,
            labels: l,
            locator: String::new(),
            token: Default::default(),
        }
    }

    fn hold(id: i64, selector: Selector) -> Hold {
        Hold {
            id,
            dataset: "logs".into(),
            selector,
            reason: "case 7".into(),
            author: "legal".into(),
            created_at: String::new(),
            lifted_at: None,
            lifted_by: None,
        }
    }

    #[test]
    fn held_segments_are_kept_whatever_the_plugin_said_and_compression_still_happens() {
        let mut sy = Symbols::new();
        let segs = vec![
            seg("api/a.log", &[("service", "api")], &mut sy),
            seg("web/b.log", &[("service", "web")], &mut sy),
            seg("audit/c.log", &[("service", "audit")], &mut sy),
            seg("api/d.log", &[("service", "api")], &mut sy),
        ];
        let holds = [
            hold(
                1,
                Selector::Label {
                    key: "service".into(),
                    value: "api".into(),
                },
            ),
            hold(2, Selector::NamePrefix("audit/".into())),
        ];
        let mut plan = [Action::Drop, Action::Drop, Action::Archive, Action::Compress]
            .map(|action| Decision { action, reason: 0 });
        let o = apply(&holds, &segs, &sy, &mut plan);
        let actions: Vec<Action> = plan.iter().map(|d| d.action).collect();
        assert_eq!(actions, [Action::Keep, Action::Drop, Action::Keep, Action::Compress]);
        assert_eq!(o[0].as_ref().unwrap().hold_id, 1);
        assert_eq!(o[0].as_ref().unwrap().action, Action::Drop);
        assert_eq!(o[2].as_ref().unwrap().hold_id, 2);
        assert!(o[1].is_none() && o[3].is_none());
        assert_eq!(o[2].as_ref().unwrap().hold, "hold 2 (case 7, by legal)");
    }

    #[test]
    fn a_lifted_hold_selects_nothing() {
        let mut sy = Symbols::new();
        let segs = vec![seg("audit/c.log", &[], &mut sy)];
        let mut h = hold(1, Selector::NamePrefix("audit/".into()));
        h.lifted_at = Some("2026-01-01T00:00:00Z".into());
        let mut plan = [Decision {
            action: Action::Drop,
            reason: 0,
        }];
        apply(&[h], &segs, &sy, &mut plan);
        assert_eq!(plan[0].action, Action::Drop);
    }
}
