//! Shadow mode end to end, with the real service and real plugins: a new plugin version decides beside the active one
//! on the same segments and acts on nothing; the API and `retention status` show how the plans differ; promoting
//! writes the shadow's bytes as the dataset's plugin, discarding ends the shadow. A shadow that fails or is missing
//! never costs the active pass.
//!
//! Waiting polls the service's API for the state a step must reach; nothing sleeps for a guessed duration.

use crate::common;

use common::service::{Service, Setup, TOKEN, http, wait_for};
use common::{plugin, retention};
use serde_json::{Value, json};

fn shadow(svc: &Service) -> Value {
    let (st, v) = svc.get("/v1/datasets/logs/shadow");
    assert_eq!(st, 200, "{v}");
    v
}

fn pass(svc: &Service) -> Value {
    let (st, report) = svc.post("/v1/datasets/logs/passes", Some(TOKEN));
    assert_eq!(st, 200, "{report}");
    assert_eq!(report["status"], "ok", "{report}");
    report
}

fn set_shadow(svc: &Service, plugin: &str, passes: u32) -> Value {
    let body = json!({ "plugin": plugin, "passes": passes }).to_string();
    let (st, v) = svc.post_json("/v1/datasets/logs/shadow", Some(TOKEN), &body);
    assert_eq!(st, 201, "{v}");
    v
}

fn hot_files(s: &Setup) -> usize {
    std::fs::read_dir(s.path().join("logs"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "log"))
        .count()
}

#[test]
fn a_shadow_set_through_the_api_decides_beside_the_active_plugin_acts_on_nothing_and_can_be_promoted() {
    let s = Setup::new("swap_v1", 3);
    s.put_plugin("policy-next", std::fs::read(plugin("swap_v2")).unwrap());
    let config = s.config("", "");
    let svc = s.start(&config, Some(TOKEN));
    assert_eq!(shadow(&svc)["shadow"], Value::Null);

    let set = set_shadow(&svc, "policy-next", 2);
    assert_eq!(set["shadow"]["plugin"], "policy-next", "{set}");
    assert_eq!(set["shadow"]["source"], "api");
    assert_eq!(set["shadow"]["passes_left"], 2);
    assert_eq!(set["shadow"]["state"], "running");

    // v1 decides and acts (keeps everything); v2 decides on the same segments and acts on nothing.
    let report = pass(&svc);
    assert_eq!(report["plugin"]["version"], "1.0.0");
    assert_eq!(report["stats"]["kept"]["segments"], 3, "{report}");
    assert_eq!(report["stats"]["compressed"]["segments"], 0, "{report}");
    assert_eq!(hot_files(&s), 3, "the shadow's compressions were applied");
    assert!(!s.path().join("logs/app-000.log.zst").exists());
    let c = &report["shadow"];
    assert_eq!(c["plugin"], "policy-next", "{c}");
    assert_eq!(c["active"]["version"], "1.0.0");
    assert_eq!(c["shadow"]["name"], "swap-v2");
    assert_eq!(c["shadow"]["version"], "2.0.0");
    assert_eq!(c["error"], Value::Null);
    assert_eq!(c["segments"], 3);
    assert_eq!(c["actions"]["keep"]["active"]["segments"], 3, "{c}");
    assert_eq!(c["actions"]["keep"]["shadow"]["segments"], 0, "{c}");
    assert_eq!(c["actions"]["compress"]["active"]["segments"], 0, "{c}");
    assert_eq!(c["actions"]["compress"]["shadow"]["segments"], 3, "{c}");
    assert_eq!(
        c["actions"]["compress"]["shadow"]["bytes"], report["stats"]["kept"]["bytes"],
        "{c}"
    );
    assert_eq!(c["differing"], 3);
    let diffs = c["differences"].as_array().unwrap();
    assert_eq!(diffs.len(), 3);
    for d in diffs {
        assert_eq!(d["tier"], "hot", "{d}");
        assert_eq!(d["active"], json!({"action": "keep", "reason": "kept by v1"}), "{d}");
        assert_eq!(
            d["shadow"],
            json!({"action": "compress", "reason": "compressed by v2"}),
            "{d}"
        );
    }
    assert_eq!(diffs[0]["name"], "app-000.log");

    // The API shows the shadow with one pass used and its comparison, recorded with the pass.
    let v = shadow(&svc);
    assert_eq!(v["shadow"]["passes_left"], 1, "{v}");
    assert_eq!(v["comparisons"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["comparisons"][0]["pass_id"], report["pass_id"]);
    assert_eq!(v["comparisons"][0]["differing"], 3);
    assert_eq!(v["totals"]["passes"], 1);
    assert_eq!(v["shadow"]["latest"]["pass_id"], report["pass_id"]);
    let (_, recorded) = svc.get(&format!("/v1/passes/{}", report["pass_id"].as_str().unwrap()));
    assert_eq!(recorded["shadow"]["differing"], 3, "{recorded}");

    // A dry run runs no shadow and uses none of its passes.
    let (_, dry) = svc.post("/v1/datasets/logs/passes?dry_run=true", Some(TOKEN));
    assert!(dry.get("shadow").is_none(), "{dry}");
    assert_eq!(shadow(&svc)["shadow"]["passes_left"], 1);

    // The second real pass uses the last one; the third runs no shadow.
    let second = pass(&svc);
    assert_eq!(second["shadow"]["differing"], 3, "{second}");
    let v = shadow(&svc);
    assert_eq!(
        (&v["shadow"]["passes_left"], &v["shadow"]["state"]),
        (&json!(0), &json!("done")),
        "{v}"
    );
    let third = pass(&svc);
    assert!(third.get("shadow").is_none(), "{third}");
    let v = shadow(&svc);
    let comparisons = v["comparisons"].as_array().unwrap();
    assert_eq!(comparisons.len(), 2, "{v}");
    assert_eq!(comparisons[0]["pass_id"], second["pass_id"], "latest first");
    assert_eq!(v["totals"]["passes"], 2);
    assert_eq!(v["totals"]["differing"], 6);
    assert_eq!(v["totals"]["actions"]["compress"]["shadow"]["segments"], 6);
    assert_eq!(hot_files(&s), 3);

    // `retention status` shows the shadow beside the active version, with the latest figures active/shadow.
    let out = retention().args(["status", "--config"]).arg(&config).output().unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let row = table
        .lines()
        .find(|l| l.contains("policy-next (swap-v2 2.0.0)"))
        .unwrap_or_else(|| panic!("no shadow row in:\n{table}"));
    assert!(row.contains("policy (swap-v1 1.0.0)"), "{row}");
    assert!(row.contains("done") && row.contains("0/2"), "{row}");
    assert!(row.contains("3/0") && row.contains("0/3"), "{row}");
    assert!(table.contains("DIFFERING"), "{table}");

    let (_, metrics) = http(svc.port, "GET", "/metrics", None);
    assert!(
        metrics.contains("retention_shadow_passes_total{dataset=\"logs\",outcome=\"ok\"} 2"),
        "{metrics}"
    );

    // Promote: the exact bytes that ran in shadow become the dataset's plugin file; the directory swaps them in.
    let (st, v) = svc.post("/v1/datasets/logs/shadow/promote", Some(TOKEN));
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["promoted"]["version"]["version"], "2.0.0", "{v}");
    assert_eq!(
        std::fs::read(s.plugins().join("policy.wasm")).unwrap(),
        std::fs::read(plugin("swap_v2")).unwrap()
    );
    wait_for("v2 to be the active plugin", || {
        (svc.active_version("policy").as_deref() == Some("2.0.0")).then_some(())
    });
    // No temporary is left in the plugin directory.
    assert_eq!(std::fs::read_dir(s.plugins()).unwrap().count(), 2);
    let v = shadow(&svc);
    assert_eq!(v["shadow"]["state"], "promoted", "{v}");
    let report = pass(&svc);
    assert_eq!(report["plugin"]["version"], "2.0.0", "{report}");
    assert_eq!(report["stats"]["compressed"]["segments"], 3, "{report}");
    assert!(report.get("shadow").is_none(), "{report}");
    let (st, v) = svc.post("/v1/datasets/logs/shadow/promote", Some(TOKEN));
    assert_eq!(st, 409, "{v}");
    assert!(v["error"].as_str().unwrap().contains("has no shadow"), "{v}");

    // The shadow's history survives a restart.
    let (status, log) = svc.stop();
    assert!(status.success(), "{log}");
    let svc = s.start(&config, Some(TOKEN));
    let v = shadow(&svc);
    assert_eq!(v["shadow"]["state"], "promoted", "{v}");
    assert_eq!(v["comparisons"].as_array().unwrap().len(), 2, "{v}");
}

#[test]
fn discard_ends_a_shadow_and_bad_shadow_requests_get_their_status_codes() {
    let s = Setup::new("swap_v1", 2);
    s.put_plugin("policy-next", std::fs::read(plugin("swap_v2")).unwrap());
    let config = s.config("", "");
    let svc = s.start(&config, Some(TOKEN));
    let good = r#"{"plugin": "policy-next", "passes": 3}"#;

    // Mutating shadow endpoints need the token.
    for path in [
        "/v1/datasets/logs/shadow",
        "/v1/datasets/logs/shadow/promote",
        "/v1/datasets/logs/shadow/discard",
    ] {
        let (st, v) = svc.post_json(path, None, good);
        assert_eq!(st, 401, "{path}: {v}");
    }
    // Unknown dataset: 404 everywhere.
    assert_eq!(svc.get("/v1/datasets/nope/shadow").0, 404);
    for path in [
        "/v1/datasets/nope/shadow",
        "/v1/datasets/nope/shadow/promote",
        "/v1/datasets/nope/shadow/discard",
    ] {
        let (st, v) = svc.post_json(path, Some(TOKEN), good);
        assert_eq!(st, 404, "{path}: {v}");
        assert!(v["error"].as_str().unwrap().contains("\"nope\""), "{v}");
    }
    // Bad bodies: 400, naming what is wrong.
    for (body, needle) in [
        ("not json", ""),
        (r#"{"plugin": "policy-next"}"#, "passes"),
        (r#"{"plugin": "policy-next", "passes": 3, "colour": 1}"#, "colour"),
        (
            r#"{"plugin": "policy-next", "passes": 0}"#,
            "passes must be between 1 and 10000, got 0",
        ),
        (r#"{"plugin": "policy-next", "passes": 10001}"#, "10001"),
        (r#"{"plugin": "../policy-next", "passes": 1}"#, "../policy-next"),
        (r#"{"plugin": "policy", "passes": 1}"#, "the dataset's own plugin"),
    ] {
        let (st, v) = svc.post_json("/v1/datasets/logs/shadow", Some(TOKEN), body);
        assert_eq!(st, 400, "{body}: {v}");
        assert!(v["error"].as_str().unwrap().contains(needle), "{body}: {v}");
    }
    // No shadow: promote and discard are 409.
    for path in ["/v1/datasets/logs/shadow/promote", "/v1/datasets/logs/shadow/discard"] {
        let (st, v) = svc.post(path, Some(TOKEN));
        assert_eq!(st, 409, "{path}: {v}");
        assert!(v["error"].as_str().unwrap().contains("has no shadow"), "{v}");
    }

    // A shadow that has not run yet cannot be promoted.
    set_shadow(&svc, "policy-next", 3);
    let (st, v) = svc.post("/v1/datasets/logs/shadow/promote", Some(TOKEN));
    assert_eq!(st, 409, "{v}");
    assert!(v["error"].as_str().unwrap().contains("has not run"), "{v}");
    // A shadow file that changed since it ran is not promoted: what is promoted is what was compared.
    pass(&svc);
    s.put_plugin("policy-next", std::fs::read(plugin("age_tiering")).unwrap());
    let (st, v) = svc.post("/v1/datasets/logs/shadow/promote", Some(TOKEN));
    assert_eq!(st, 409, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("changed since it ran in shadow"),
        "{v}"
    );
    assert_eq!(
        std::fs::read(s.plugins().join("policy.wasm")).unwrap(),
        std::fs::read(plugin("swap_v1")).unwrap()
    );

    // Discard ends it: the next pass runs no shadow, and the dataset shows none.
    let (st, v) = svc.post("/v1/datasets/logs/shadow/discard", Some(TOKEN));
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["shadow"]["state"], "discarded", "{v}");
    assert!(pass(&svc).get("shadow").is_none());
    assert_eq!(shadow(&svc)["shadow"]["state"], "discarded");
    assert_eq!(svc.get("/v1/datasets/logs").1["dataset"]["shadow"], Value::Null);
    let (st, _) = svc.post("/v1/datasets/logs/shadow/discard", Some(TOKEN));
    assert_eq!(st, 409);
    assert_eq!(svc.post("/v1/datasets/logs/shadow", Some(TOKEN)).0, 400, "no body");
}

#[test]
fn a_shadow_that_is_missing_or_traps_leaves_the_active_pass_applying_its_plan_and_the_comparison_records_why() {
    // The active plugin ignores `mode`; the shadow (misbehave) traps in `decide` with it.
    let s = Setup::new("swap_v2", 2);
    s.put_plugin("broken", std::fs::read(plugin("misbehave")).unwrap());
    let config = s.config("params = { mode = \"trap\" }", "");
    let svc = s.start(&config, Some(TOKEN));

    set_shadow(&svc, "nowhere", 1);
    let report = pass(&svc);
    assert_eq!(report["stats"]["compressed"]["segments"], 2, "{report}");
    assert!(s.path().join("logs/app-000.log.zst").is_file());
    let c = &report["shadow"];
    assert!(c["error"].as_str().unwrap().contains("no plugin \"nowhere\""), "{c}");
    assert_eq!(c["shadow"], Value::Null, "{c}");
    assert_eq!(c["actions"]["compress"]["active"]["segments"], 2, "{c}");
    assert_eq!(c["differing"], 0);

    for i in 0..2 {
        std::fs::write(s.path().join(format!("logs/new-{i}.log")), "fresh\n".repeat(100)).unwrap();
    }
    set_shadow(&svc, "broken", 1);
    let report = pass(&svc);
    assert_eq!(report["stats"]["compressed"]["segments"], 2, "{report}");
    assert_eq!(report["error"], Value::Null, "{report}");
    assert!(s.path().join("logs/new-0.log.zst").is_file());
    let c = &report["shadow"];
    assert_eq!(c["shadow"]["name"], "misbehave", "{c}");
    assert_eq!(c["failure_kind"], "trap", "{c}");
    assert!(c["error"].as_str().unwrap().contains("decide"), "{c}");
    assert_eq!(c["actions"]["compress"]["shadow"]["segments"], 0, "{c}");

    // A shadow that failed in its latest pass is not promoted.
    let (st, v) = svc.post("/v1/datasets/logs/shadow/promote", Some(TOKEN));
    assert_eq!(st, 409, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("failed in its latest pass"),
        "{v}"
    );
    let v = shadow(&svc);
    assert_eq!(
        (&v["totals"]["passes"], &v["totals"]["failed"]),
        (&json!(1), &json!(1)),
        "{v}"
    );
    let (_, metrics) = http(svc.port, "GET", "/metrics", None);
    assert!(
        metrics.contains("retention_shadow_passes_total{dataset=\"logs\",outcome=\"failed\"} 2"),
        "{metrics}"
    );
    let (status, log) = svc.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn a_shadow_from_the_config_runs_its_passes_and_once_discarded_comes_back_only_when_the_config_changes() {
    let s = Setup::new("swap_v1", 2);
    s.put_plugin("policy-next", std::fs::read(plugin("swap_v2")).unwrap());
    let config = s.config("[dataset.shadow]\nplugin = \"policy-next\"\npasses = 1", "");
    let svc = s.start(&config, Some(TOKEN));

    let v = shadow(&svc);
    assert_eq!(v["shadow"]["source"], "config", "{v}");
    assert_eq!(v["shadow"]["passes_left"], 1, "{v}");
    let report = pass(&svc);
    assert_eq!(
        report["shadow"]["actions"]["compress"]["shadow"]["segments"], 2,
        "{report}"
    );
    assert_eq!(hot_files(&s), 2);
    assert_eq!(shadow(&svc)["shadow"]["state"], "done");
    let (st, v) = svc.post("/v1/datasets/logs/shadow/discard", Some(TOKEN));
    assert_eq!(st, 200, "{v}");

    // Discarded, it stays so across a restart: the config's same shadow does not come back.
    let (status, log) = svc.stop();
    assert!(status.success(), "{log}");
    let svc = s.start(&config, Some(TOKEN));
    assert_eq!(shadow(&svc)["shadow"]["state"], "discarded");
    assert!(pass(&svc).get("shadow").is_none());

    // A changed `[dataset.shadow]` is a new shadow.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("passes = 1", "passes = 2");
    std::fs::write(&config, text).unwrap();
    let (st, v) = svc.post("/v1/config/reload", Some(TOKEN));
    assert_eq!(st, 200, "{v}");
    let v = shadow(&svc);
    assert_eq!(
        (
            &v["shadow"]["source"],
            &v["shadow"]["passes_left"],
            &v["shadow"]["state"]
        ),
        (&json!("config"), &json!(2), &json!("running")),
        "{v}"
    );
    // One set through the API wins over the config's.
    set_shadow(&svc, "policy-next", 5);
    let v = shadow(&svc);
    assert_eq!(
        (&v["shadow"]["source"], &v["shadow"]["passes_left"]),
        (&json!("api"), &json!(5)),
        "{v}"
    );
    let report = pass(&svc);
    assert_eq!(report["shadow"]["differing"], 2, "{report}");
    assert_eq!(shadow(&svc)["shadow"]["passes_left"], 4);
}
