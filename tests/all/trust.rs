//! Trust, end to end with the real service and command line: legal holds that no plugin (and no `--force`) gets
//! past, guards that refuse a plan with figures, and the audit trail that records what happened and why.

use crate::common;

use std::path::PathBuf;

use chrono::{Duration, Utc};
use common::retention;
use common::service::{Service, Setup, TOKEN};
use serde_json::{Value, json};

/// A file `logs/<service>/info-<date>.log` per (service, days ago).
fn dated_tree(s: &Setup, root: &str, files: &[(&str, i64)]) -> Vec<String> {
    let mut names = Vec::new();
    for (service, days) in files {
        let date = (Utc::now() - Duration::days(*days)).format("%Y-%m-%d");
        let name = format!("{service}/info-{date}.log");
        let p = s.path().join(root).join(&name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, format!("{name}\n").repeat(50)).unwrap();
        names.push(name);
    }
    names
}

/// A config with one age-tiering dataset per `(name, root, guard lines)`.
fn config(s: &Setup, datasets: &[(&str, &str, &str)]) -> PathBuf {
    let mut text = format!(
        "plugin_dir = \"plugins\"\n[service]\nlisten = \"127.0.0.1:{}\"\nstate_dir = \"state\"\n",
        s.port
    );
    for (name, root, guard) in datasets {
        text.push_str(&format!(
            r#"[[dataset]]
name = "{name}"
plugin = "policy"
params = {{ drop_after_days = 30 }}
[dataset.guard]
{guard}
[dataset.directory]
root = "{root}"
labels = '^(?P<service>[^/]+)/(?P<level>\w+)-(?P<date>\d{{4}}-\d{{2}}-\d{{2}})\.log$'
time = "label:date"
"#
        ));
    }
    let p = s.path().join("retention.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn exists(s: &Setup, root: &str, name: &str) -> bool {
    s.path().join(root).join(name).is_file()
}

fn rows_by_name(report: &Value) -> std::collections::BTreeMap<String, Value> {
    report["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap().to_string(), r.clone()))
        .collect()
}

const OPEN_GUARDS: &str = "max_drop_bytes_fraction = 1.0\nmax_drop_segments_fraction = 1.0";

#[test]
fn a_legal_hold_keeps_held_segments_whatever_the_plugin_says_until_it_is_lifted() {
    let s = Setup::new("age_tiering", 0);
    let names = dated_tree(
        &s,
        "logs",
        &[("api", 40), ("api", 35), ("billing", 40), ("billing", 35), ("api", 2)],
    );
    let cfg = config(&s, &[("logs", "logs", OPEN_GUARDS)]);
    let svc = s.start(&cfg, Some(TOKEN));

    // Bad holds are refused, and only with the token.
    let good = json!({"dataset": "logs", "selector": {"label": {"key": "service", "value": "billing"}},
                      "reason": "case 7", "author": "legal@example.com"});
    assert_eq!(svc.post_json("/v1/holds", None, &good.to_string()).0, 401);
    for (bad, why) in [
        (
            json!({"dataset": "nope", "selector": {"name_prefix": "a"}, "reason": "r", "author": "a"}),
            "no dataset",
        ),
        (
            json!({"dataset": "logs", "selector": {"colour": "red"}, "reason": "r", "author": "a"}),
            "selector",
        ),
        (
            json!({"dataset": "logs", "selector": {"name_prefix": "a"}, "reason": " ", "author": "a"}),
            "reason",
        ),
        (
            json!({"dataset": "logs", "selector": {"name_prefix": "a"}, "reason": "r"}),
            "author",
        ),
    ] {
        let (st, v) = svc.post_json("/v1/holds", Some(TOKEN), &bad.to_string());
        assert_eq!(st, 400, "{bad}: {v}");
        assert!(v["error"].as_str().unwrap().contains(why), "{why}: {v}");
    }

    // Hold every billing segment, and one api segment by its name.
    let (st, h1) = svc.post_json("/v1/holds", Some(TOKEN), &good.to_string());
    assert_eq!(st, 201, "{h1}");
    let prefix = json!({"dataset": "logs", "selector": {"name_prefix": names[0]}, "reason": "audit 2026",
                        "author": "sre@example.com"});
    let (st, h2) = svc.post_json("/v1/holds", Some(TOKEN), &prefix.to_string());
    assert_eq!(st, 201, "{h2}");
    let (_, holds) = svc.get("/v1/holds?dataset=logs");
    assert_eq!(holds["holds"].as_array().unwrap().len(), 2);
    assert_eq!(
        svc.get("/v1/datasets/logs").1["dataset"]["holds"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // The plugin drops the four old segments; the holds keep three of them.
    let (st, report) = svc.post("/v1/datasets/logs/passes", Some(TOKEN));
    assert_eq!(st, 200, "{report}");
    assert_eq!(report["status"], "ok", "{report}");
    assert_eq!(report["stats"]["dropped"]["segments"], 1, "{report}");
    assert_eq!(report["stats"]["overridden"], 3, "{report}");
    let rows = rows_by_name(&report);
    assert_eq!(rows[&names[1]]["action"], "drop");
    for held in [&names[0], &names[2], &names[3]] {
        assert_eq!(rows[held]["action"], "keep", "{held}: {report}");
        assert_eq!(rows[held]["overridden"]["action"], "drop", "{held}");
    }
    assert!(
        rows[&names[2]]["overridden"]["hold"]
            .as_str()
            .unwrap()
            .contains("case 7, by legal@example.com")
    );
    assert!(!exists(&s, "logs", &names[1]));
    for kept in [&names[0], &names[2], &names[3], &names[4]] {
        assert!(exists(&s, "logs", kept), "{kept}");
    }

    // The audit trail says what was overridden, by which hold, against which plugin version.
    let (_, audit) = svc.get("/v1/audit?dataset=logs&outcome=overridden");
    let records = audit["records"].as_array().unwrap();
    assert_eq!(records.len(), 3, "{audit}");
    for r in records {
        assert_eq!(r["action"], "drop");
        assert_eq!(r["plugin_name"], "age-tiering");
        assert_eq!(r["plugin_digest"], report["plugin"]["digest"]);
        assert!(r["detail"].as_str().unwrap().starts_with("hold "), "{r}");
        assert!(r["reason"].is_string(), "{r}");
    }
    // The one drop went to the trash (restorable for a day by default).
    let (_, done) = svc.get("/v1/audit?dataset=logs&outcome=trashed");
    assert_eq!(done["records"][0]["segment"], names[1].as_str());
    assert_eq!(done["records"][0]["tier_before"], "hot");
    assert_eq!(done["records"][0]["tier_after"], "trash");

    // The command line honours the same holds, even with --force.
    let out = retention()
        .args(["run", "--force", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("OVERRIDDEN") && text.contains("held: 3"), "{text}");
    for kept in [&names[0], &names[2], &names[3]] {
        assert!(exists(&s, "logs", kept), "{kept}");
    }

    // Lifting a hold (with an author) lets the next pass act.
    assert_eq!(
        svc.post_json("/v1/holds/999/lift", Some(TOKEN), r#"{"author": "a"}"#).0,
        404
    );
    assert_eq!(svc.post_json("/v1/holds/1/lift", Some(TOKEN), "{}").0, 400);
    let id = h1["hold"]["id"].as_i64().unwrap();
    let (st, lifted) = svc.post_json(
        &format!("/v1/holds/{id}/lift"),
        Some(TOKEN),
        r#"{"author": "legal@example.com"}"#,
    );
    assert_eq!(st, 200, "{lifted}");
    assert_eq!(lifted["hold"]["lifted_by"], "legal@example.com");
    let (_, report) = svc.post("/v1/datasets/logs/passes", Some(TOKEN));
    assert_eq!(report["stats"]["dropped"]["segments"], 2, "{report}");
    assert_eq!(report["stats"]["overridden"], 1, "{report}");
    assert!(!exists(&s, "logs", &names[2]) && !exists(&s, "logs", &names[3]));
    assert!(exists(&s, "logs", &names[0]), "the name-prefix hold still holds");
    let (_, all) = svc.get("/v1/holds?all=true");
    assert_eq!(all["holds"].as_array().unwrap().len(), 2);
    assert_eq!(svc.get("/v1/holds").1["holds"].as_array().unwrap().len(), 1);
}

#[test]
fn guards_refuse_a_plan_naming_the_guard_and_force_passes_only_the_fraction_guards() {
    let s = Setup::new("age_tiering", 0);
    let old: Vec<(&str, i64)> = (0..6).map(|i| ("api", 40 + i)).chain([("api", 2)]).collect();
    dated_tree(&s, "a", &old);
    dated_tree(&s, "b", &old);
    dated_tree(&s, "c", &old);
    let cfg = config(
        &s,
        &[
            ("fractions", "a", ""),
            (
                "newest",
                "b",
                "keep_newest = 7\nmax_drop_bytes_fraction = 1.0\nmax_drop_segments_fraction = 1.0",
            ),
            ("young", "c", "min_drop_age_secs = 4000000"),
        ],
    );
    let svc = s.start(&cfg, Some(TOKEN));
    let files = |root: &str| std::fs::read_dir(s.path().join(root).join("api")).unwrap().count();

    // Six of seven segments: over both default fractions of 50%.
    let (_, r) = svc.post("/v1/datasets/fractions/passes", Some(TOKEN));
    assert_eq!(r["status"], "refused", "{r}");
    let e = r["error"].as_str().unwrap();
    assert!(
        e.contains("max_drop_bytes_fraction") && e.contains("85.7%") && e.contains("50.0%"),
        "{e}"
    );
    assert_eq!(files("a"), 7);
    let (_, audit) = svc.get("/v1/audit?dataset=fractions&outcome=refused");
    assert_eq!(audit["records"].as_array().unwrap().len(), 6, "{audit}");
    // --force lets that pass through.
    let (_, r) = svc.post("/v1/datasets/fractions/passes?force=true", Some(TOKEN));
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(files("a"), 1);

    // keep_newest and the minimum age are not fraction guards: --force does not pass them.
    for (ds, root, guard) in [("newest", "b", "keep_newest"), ("young", "c", "min_drop_age_secs")] {
        for force in ["false", "true"] {
            let (_, r) = svc.post(&format!("/v1/datasets/{ds}/passes?force={force}"), Some(TOKEN));
            assert_eq!(r["status"], "refused", "{r}");
            assert!(r["error"].as_str().unwrap().contains(guard), "{r}");
            assert_eq!(files(root), 7);
        }
    }
    let out = retention()
        .args(["run", "--force", "--dataset", "young", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("REFUSED") && text.contains("min_drop_age_secs"), "{text}");
    assert_eq!(files("c"), 7);
}

#[test]
fn the_audit_trail_pages_filters_and_exports_as_json_lines() {
    let s = Setup::new("age_tiering", 0);
    let files: Vec<(&str, i64)> = (0..5)
        .map(|i| ("api", 40 + i))
        .chain((0..5).map(|i| ("web", 2 + i)))
        .collect();
    dated_tree(&s, "logs", &files);
    let cfg = config(&s, &[("logs", "logs", OPEN_GUARDS)]);
    // Compress after a day: the five young files get compressed, the five old ones dropped.
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("drop_after_days = 30", "drop_after_days = 30, compress_after_days = 1"),
    )
    .unwrap();
    let svc: Service = s.start(&cfg, Some(TOKEN));
    let (_, r) = svc.post("/v1/datasets/logs/passes", Some(TOKEN));
    assert_eq!(r["stats"]["dropped"]["segments"], 5, "{r}");
    assert_eq!(r["stats"]["compressed"]["segments"], 5, "{r}");

    let mut seen = Vec::new();
    let mut path = "/v1/audit?limit=3".to_string();
    loop {
        let (st, page) = svc.get(&path);
        assert_eq!(st, 200, "{page}");
        seen.extend(
            page["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["seq"].as_i64().unwrap()),
        );
        match page["next"].as_i64() {
            Some(n) => path = format!("/v1/audit?limit=3&before={n}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 10);
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "newest first: {seen:?}");
    let (_, compressed) = svc.get("/v1/audit?action=compress");
    assert_eq!(compressed["records"].as_array().unwrap().len(), 5);
    assert!(
        compressed["records"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["tier_after"] == "compressed")
    );
    assert_eq!(svc.get("/v1/audit?limit=0").0, 400);
    assert_eq!(svc.get("/v1/audit?colour=red").0, 400);
    assert_eq!(svc.get("/v1/audit/export?limit=5").0, 400);

    let (st, body) = common::service::http(svc.port, "GET", "/v1/audit/export?dataset=logs", None);
    assert_eq!(st, 200);
    let lines: Vec<Value> = body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 10);
    assert!(
        lines.windows(2).all(|w| w[0]["seq"].as_i64() < w[1]["seq"].as_i64()),
        "oldest first"
    );
    assert!(lines.iter().all(|l| l["pass_id"] == r["pass_id"]));
    for l in &lines {
        let expected = if l["action"] == "drop" { "trashed" } else { "done" };
        assert_eq!(l["outcome"], expected, "drops go to the trash: {l}");
    }
}

#[test]
fn a_held_segment_in_the_trash_is_never_purged_and_the_api_restores_it_exactly() {
    let s = Setup::new("age_tiering", 0);
    let names = dated_tree(&s, "logs", &[("api", 40), ("billing", 41), ("api", 2)]);
    let cfg = config(&s, &[("logs", "logs", OPEN_GUARDS)]);
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("time = \"label:date\"", "time = \"label:date\"\ntrash_grace_secs = 1"),
    )
    .unwrap();
    let billing = std::fs::read(s.path().join("logs").join(&names[1])).unwrap();
    let svc = s.start(&cfg, Some(TOKEN));

    // Both old segments go to the trash.
    let (_, r) = svc.post("/v1/datasets/logs/passes", Some(TOKEN));
    assert_eq!(r["stats"]["trashed"]["segments"], 2, "{r}");
    let (st, trash) = svc.get("/v1/datasets/logs/trash");
    assert_eq!(st, 200);
    assert_eq!(trash["trash"].as_array().unwrap().len(), 2, "{trash}");

    // A hold set now covers the trashed billing segment: passes purge the api one once its grace ends, never it.
    let hold = json!({"dataset": "logs", "selector": {"label": {"key": "service", "value": "billing"}},
                      "reason": "case 9", "author": "legal"});
    assert_eq!(svc.post_json("/v1/holds", Some(TOKEN), &hold.to_string()).0, 201);
    common::service::wait_for("the unheld segment's purge", || {
        let (_, r) = svc.post("/v1/datasets/logs/passes", Some(TOKEN));
        (r["stats"]["purged"]["segments"] == 1).then_some(())
    });
    let (_, trash) = svc.get("/v1/datasets/logs/trash");
    let left: Vec<&str> = trash["trash"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(left, [names[1].as_str()]);

    // Restore through the API: exact bytes in the original place, recorded in the audit trail.
    assert_eq!(
        svc.post_json("/v1/datasets/logs/trash/restore", None, r#"{"names": []}"#)
            .0,
        401
    );
    assert_eq!(
        svc.post_json("/v1/datasets/logs/trash/restore", Some(TOKEN), r#"{"names": []}"#)
            .0,
        400
    );
    assert_eq!(
        svc.post_json("/v1/datasets/nope/trash/restore", Some(TOKEN), r#"{"names": ["a"]}"#)
            .0,
        404
    );
    let body = json!({ "names": [names[1]] }).to_string();
    let (st, v) = svc.post_json("/v1/datasets/logs/trash/restore", Some(TOKEN), &body);
    assert_eq!(st, 200, "{v}");
    assert_eq!(std::fs::read(s.path().join("logs").join(&names[1])).unwrap(), billing);
    let (st, v) = svc.post_json("/v1/datasets/logs/trash/restore", Some(TOKEN), &body);
    assert_eq!(st, 404, "{v}");
    assert!(v["results"][0]["error"].is_string(), "{v}");
    let (_, audit) = svc.get("/v1/audit?action=restore");
    assert_eq!(audit["records"][0]["segment"], names[1].as_str());
    let (_, audit) = svc.get("/v1/audit?action=purge");
    let purges = audit["records"].as_array().unwrap();
    assert!(purges.iter().all(|r| r["segment"] == names[0].as_str()), "{audit}");
    assert!(purges.iter().any(|r| r["outcome"] == "purging") && purges.iter().any(|r| r["outcome"] == "done"));
}

#[test]
fn a_hold_on_a_label_no_segment_can_have_is_refused_and_a_new_hold_says_what_it_selects_now() {
    let s = Setup::new("age_tiering", 0);
    let names = dated_tree(&s, "logs", &[("api", 40), ("billing", 41), ("billing", 2)]);
    let cfg = config(&s, &[("logs", "logs", OPEN_GUARDS)]);
    let svc = s.start(&cfg, Some(TOKEN));
    // The two old segments go to the trash; one billing segment stays.
    let (_, r) = svc.post("/v1/datasets/logs/passes", Some(TOKEN));
    assert_eq!(r["stats"]["trashed"]["segments"], 2, "{r}");

    // A typo in the key: nothing could ever be selected, so the hold is refused, naming the keys there are.
    let typo = json!({"dataset": "logs", "selector": {"label": {"key": "servcie", "value": "billing"}},
                      "reason": "case 12", "author": "legal"});
    let (st, v) = svc.post_json("/v1/holds", Some(TOKEN), &typo.to_string());
    assert_eq!(st, 400, "{v}");
    let e = v["error"].as_str().unwrap();
    assert!(e.contains("selector.label.key") && e.contains("\"servcie\""), "{e}");
    assert!(e.contains("service, level, date"), "{e}");
    assert!(svc.get("/v1/holds").1["holds"].as_array().unwrap().is_empty());

    // A good one says what it selects today: one live segment, one trash entry.
    let good = json!({"dataset": "logs", "selector": {"label": {"key": "service", "value": "billing"}},
                      "reason": "case 12", "author": "legal"});
    let (st, v) = svc.post_json("/v1/holds", Some(TOKEN), &good.to_string());
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["selects"], json!({"segments": 1, "trash_entries": 1}), "{v}");
    // One that selects nothing yet (a name to be written later) is accepted, and says so.
    let later =
        json!({"dataset": "logs", "selector": {"name_prefix": "audit/"}, "reason": "case 13", "author": "legal"});
    let (st, v) = svc.post_json("/v1/holds", Some(TOKEN), &later.to_string());
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["selects"], json!({"segments": 0, "trash_entries": 0}), "{v}");
    let by_name = json!({"dataset": "logs", "selector": {"name_prefix": names[0]}, "reason": "r", "author": "a"});
    let (_, v) = svc.post_json("/v1/holds", Some(TOKEN), &by_name.to_string());
    assert_eq!(v["selects"], json!({"segments": 0, "trash_entries": 1}), "{v}");
}
