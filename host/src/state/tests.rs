//! The state database's tests, on real SQLite files in temp dirs.

use super::*;
use crate::segment::Action;

fn report(dataset: &str) -> PassReport {
    PassReport::not_started(dataset, false, "2026-01-01T00:00:00Z", "dir".into(), "no plugin".into())
}

#[test]
fn a_pass_that_dies_while_applying_has_its_actions_recorded_as_interrupted_by_the_next() {
    use crate::pass::PlannedAction;
    use crate::segment::Tier;
    let dir = tempfile::tempdir().unwrap();
    let mut dead = report("logs");
    dead.plugin = Some(crate::plugin::PluginVersion {
        name: "age-tiering".into(),
        version: "0.1.0".into(),
        digest: "ab".repeat(32),
    });
    let actions = [
        PlannedAction {
            segment: "a.log",
            tier: Tier::Hot,
            action: Action::Compress,
            bytes: 10,
            reason: Some("old"),
        },
        PlannedAction {
            segment: "b.log",
            tier: Tier::Archived,
            action: Action::Drop,
            bytes: 20,
            reason: None,
        },
    ];
    {
        let db = StateDb::open(dir.path()).unwrap();
        db.record_pending(&dead, &actions).unwrap();
        // A pass that ends normally leaves nothing pending.
        let done = report("logs");
        db.record_pending(&done, &actions[..1]).unwrap();
        db.record_pass(&done, "cli", 100).unwrap();
        // The process dies here: `dead` is never recorded.
    }
    let db = StateDb::open(dir.path()).unwrap();
    assert_eq!(db.settle_interrupted("other").unwrap(), 0, "per dataset");
    assert_eq!(db.settle_interrupted("logs").unwrap(), 2);
    assert_eq!(db.settle_interrupted("logs").unwrap(), 0, "settled once");
    let audit = db
        .audit_after(
            &AuditFilter {
                outcome: Some("interrupted".into()),
                ..Default::default()
            },
            0,
            10,
        )
        .unwrap();
    let got: Vec<_> = audit
        .iter()
        .map(|r| {
            (
                r.pass_id.as_str(),
                r.segment.as_str(),
                r.action.as_str(),
                r.tier_before.as_deref(),
                r.bytes,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (dead.pass_id.as_str(), "a.log", "compress", Some("hot"), 10),
            (dead.pass_id.as_str(), "b.log", "drop", Some("archived"), 20)
        ]
    );
    assert_eq!(audit[0].reason.as_deref(), Some("old"));
    assert_eq!(audit[0].plugin_digest.as_deref(), Some("ab".repeat(32).as_str()));
    assert!(
        audit[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("may or may not have been applied")
    );
}

#[test]
fn passes_survive_reopening_and_page_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    {
        let db = StateDb::open(dir.path()).unwrap();
        for i in 0..5 {
            let r = report(if i % 2 == 0 { "a" } else { "b" });
            ids.push(r.pass_id.clone());
            db.record_pass(&r, "api", 100).unwrap();
        }
    }
    let db = StateDb::open(dir.path()).unwrap();
    let page1 = db.passes(None, None, 2).unwrap();
    assert_eq!(page1.iter().map(|p| &p.pass_id).collect::<Vec<_>>(), [&ids[4], &ids[3]]);
    let page2 = db.passes(None, Some(&page1[1].pass_id), 2).unwrap();
    assert_eq!(page2.iter().map(|p| &p.pass_id).collect::<Vec<_>>(), [&ids[2], &ids[1]]);
    let only_a = db.passes(Some("a"), None, 10).unwrap();
    assert_eq!(only_a.len(), 3);
    assert_eq!(db.last_pass("b").unwrap().unwrap().pass_id, ids[3]);
    let json = db.pass_report(&ids[0]).unwrap().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["error"], "no plugin");
    assert!(db.pass_report("nope").unwrap().is_none());
}

#[test]
fn history_is_pruned_to_the_configured_number_of_passes() {
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path()).unwrap();
    let mut last = String::new();
    for _ in 0..7 {
        let r = report("a");
        last = r.pass_id.clone();
        db.record_pass(&r, "schedule", 3).unwrap();
    }
    let all = db.passes(None, None, 100).unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].pass_id, last);
}

#[test]
fn a_shadow_counts_down_its_passes_and_keeps_its_comparisons_with_their_passes() {
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path()).unwrap();
    let sh = db.start_shadow("a", "api", "next", 2, None).unwrap();
    assert_eq!((sh.passes, sh.passes_left, sh.ended_at.as_deref()), (2, 2, None));
    let mut ids = Vec::new();
    for _ in 0..3 {
        let r = report("a");
        db.record_pass(&r, "api", 2).unwrap();
        db.record_shadow_result(&r.pass_id, sh.id, "a", "{}").unwrap();
        ids.push(r.pass_id);
    }
    assert_eq!(db.latest_shadow("a").unwrap().unwrap().passes_left, 0);
    // The history keeps 2 passes: the oldest comparison went with its pass at the next record.
    db.record_pass(&report("b"), "api", 2).unwrap();
    let kept: Vec<String> = db
        .shadow_results(sh.id, 10)
        .unwrap()
        .into_iter()
        .map(|r| r.pass_id)
        .collect();
    assert_eq!(kept, [ids[2].clone()]);
    db.end_shadow(sh.id, "discarded").unwrap();
    assert_eq!(
        db.latest_shadow("a").unwrap().unwrap().ended_how.as_deref(),
        Some("discarded")
    );
    assert!(db.latest_shadow("b").unwrap().is_none());
}

#[test]
fn a_database_from_a_newer_host_is_refused_with_its_version() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = Connection::open(dir.path().join("state.sqlite3")).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
    }
    let e = StateDb::open(dir.path()).err().unwrap().to_string();
    assert!(e.contains("schema version 99"), "{e}");
}

#[test]
fn a_state_file_that_is_not_a_database_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("state.sqlite3"), vec![7u8; 4096]).unwrap();
    let e = StateDb::open(dir.path()).err().unwrap().to_string();
    assert!(e.contains("state.sqlite3"), "{e}");
}
