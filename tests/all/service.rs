//! `retention serve` end to end: the real binary as a service, real plugins dropped into a real plugin directory, the
//! admin API over real HTTP, signals, restarts.
//!
//! Waiting here polls the service's own API for the state a step must reach (a pass running, a plugin swapped); it
//! never sleeps for a guessed duration. The scheduler's timing is tested in paused tokio time
//! (`host/src/service/scheduler.rs`).

use crate::common;

use std::io::Write;

use common::service::{Service, Setup, TOKEN, http, json, wait_for};
use common::{plugin, retention};
use serde_json::Value;

#[test]
fn a_scheduled_dataset_gets_passes_on_its_cron_ticks_and_failed_passes_are_recorded_without_stopping_the_loop() {
    let s = Setup::new("swap_v2", 3);
    let config = s.config("schedule = \"* * * * * *\"", "");
    // A second dataset whose plugin is not there: every one of its passes fails, and the schedule goes on.
    let mut text = std::fs::read_to_string(&config).unwrap();
    // (Its globs match none of the other's files: a file two datasets match belongs to neither.)
    text.push_str("[[dataset]]\nname = \"broken\"\nplugin = \"missing\"\nschedule = \"* * * * * *\"\n[dataset.directory]\nroot = \"logs\"\ninclude = [\"broken/**\"]\n");
    std::fs::write(&config, text).unwrap();
    let svc = s.start(&config, None);
    let failed = wait_for("two failed scheduled passes", || {
        let (_, v) = svc.get("/v1/passes?dataset=broken");
        let p = v["passes"].as_array().unwrap().clone();
        (p.len() >= 2).then_some(p)
    });
    for p in &failed {
        assert_eq!(p["status"], "failed", "{p}");
        assert!(p["error"].as_str().unwrap().contains("no plugin \"missing\""), "{p}");
    }
    let passes = wait_for("two scheduled passes", || {
        let (_, v) = svc.get("/v1/passes?dataset=logs");
        let p = v["passes"].as_array().unwrap().clone();
        (p.len() >= 2).then_some(p)
    });
    assert!(
        passes.iter().all(|p| p["trigger"] == "schedule" && p["status"] == "ok"),
        "{passes:?}"
    );
    // The first pass compressed the three files; later ones find nothing hot.
    let oldest = passes.last().unwrap();
    let (_, all) = svc.get("/v1/passes?dataset=logs&limit=1000");
    let first = all["passes"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(first["stats"]["compressed"]["segments"], 3, "{first}");
    assert!(oldest["plugin_version"] == "2.0.0");
    let (_, ds) = svc.get("/v1/datasets/logs");
    assert!(ds["dataset"]["next_run"].is_string(), "{ds}");
    assert_eq!(ds["dataset"]["schedule"], "* * * * * *");
    let (status, log) = svc.stop();
    assert!(status.success(), "{status}\n{log}");
    assert!(s.path().join("logs/app-000.log.zst").is_file());
}

#[test]
fn a_plugin_renamed_into_the_directory_is_swapped_in_and_bad_ones_are_rejected_while_the_good_one_serves() {
    let s = Setup::new("swap_v1", 4);
    // v1 is busy 1.5 s in begin, so that a pass can be held in flight across the swap.
    let config = s.config("params = { slow_ms = 1500 }", "");
    let svc = s.start(&config, Some(TOKEN));
    assert_eq!(svc.active_version("policy").as_deref(), Some("1.0.0"));

    // v1 decides.
    let (st, report) = svc.post("/v1/datasets/logs/passes", Some(TOKEN));
    assert_eq!(st, 200, "{report}");
    assert_eq!(report["plugin"]["version"], "1.0.0");
    assert_eq!(report["segments"][0]["reason"], "kept by v1");

    // A pass in flight while v2 is renamed in finishes on v1.
    let port = svc.port;
    let in_flight = std::thread::spawn(move || json(&http(port, "POST", "/v1/datasets/logs/passes", Some(TOKEN)).1));
    wait_for("the pass to be running", || {
        (svc.get("/v1/datasets/logs").1["dataset"]["running"] == true).then_some(())
    });
    s.put_plugin("policy", std::fs::read(plugin("swap_v2")).unwrap());
    wait_for("v2 to be active", || {
        (svc.active_version("policy").as_deref() == Some("2.0.0")).then_some(())
    });
    let report = in_flight.join().unwrap();
    assert_eq!(report["plugin"]["version"], "1.0.0", "{report}");
    assert_eq!(report["status"], "ok");
    assert!(
        report["segments"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["reason"] == "kept by v1")
    );

    // The next pass uses v2.
    let (_, report) = svc.post("/v1/datasets/logs/passes", Some(TOKEN));
    assert_eq!(report["plugin"]["version"], "2.0.0", "{report}");
    assert_eq!(report["stats"]["compressed"]["segments"], 4, "{report}");

    // Garbage, a core module and a plugin that traps when run are each rejected; v2 keeps serving.
    let core_module = b"\0asm\x01\0\0\0".to_vec();
    for (bytes, why) in [
        (b"definitely not wasm".to_vec(), "not a WebAssembly file"),
        (core_module, "core WebAssembly module"),
        (std::fs::read(plugin("trap_on_load")).unwrap(), "trial batch"),
    ] {
        let rejections = svc.events("policy").iter().filter(|e| e["event"] == "rejected").count();
        s.put_plugin("policy", bytes);
        let event = wait_for(why, || {
            let events = svc.events("policy");
            let now = events.iter().filter(|e| e["event"] == "rejected").count();
            (now > rejections).then(|| events[0].clone())
        });
        assert!(event["reason"].as_str().unwrap().contains(why), "{event}");
        let p = svc.plugin("policy");
        assert_eq!(p["plugin"]["active"]["version"], "2.0.0", "{p}");
        assert!(
            p["plugin"]["last_rejection"]["reason"].as_str().unwrap().contains(why),
            "{p}"
        );
        let (st, report) = svc.post("/v1/datasets/logs/passes?dry_run=true", Some(TOKEN));
        assert_eq!(
            (st, &report["plugin"]["version"]),
            (200, &Value::from("2.0.0")),
            "{report}"
        );
    }
    // Compiled code is never taken from the plugin directory: a precompiled file renamed in as a plugin is refused.
    let cached = std::fs::read_dir(s.path().join("state/compiled"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let rejections = svc.events("policy").iter().filter(|e| e["event"] == "rejected").count();
    s.put_plugin("policy", std::fs::read(&cached).unwrap());
    let event = wait_for("the precompiled file's rejection", || {
        let events = svc.events("policy");
        (events.iter().filter(|e| e["event"] == "rejected").count() > rejections).then(|| events[0].clone())
    });
    assert!(
        event["reason"].as_str().unwrap().contains("not a WebAssembly file"),
        "{event}"
    );
    assert_eq!(svc.active_version("policy").as_deref(), Some("2.0.0"));
    let trap = svc.events("policy")[1].clone();
    assert!(trap["reason"].as_str().unwrap().contains("trap"), "{trap}");
    let (_, metrics) = http(svc.port, "GET", "/metrics", None);
    assert!(
        metrics.contains("retention_plugin_failures_total{plugin=\"policy\",kind=\"trap\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("retention_plugin_loads_total{plugin=\"policy\",outcome=\"rejected\"} 4"),
        "{metrics}"
    );

    // A file still being copied in is not loaded half-written: only its writer's close loads it.
    let v1 = std::fs::read(plugin("swap_v1")).unwrap();
    let before = svc.events("policy").len();
    {
        let mut f = std::fs::File::create(s.plugins().join("policy.wasm")).unwrap();
        f.write_all(&v1[..v1.len() / 2]).unwrap();
        f.flush().unwrap();
        // The service sees the half file's creation and writes, but no close yet: a pass still gets v2.
        let (_, report) = svc.post("/v1/datasets/logs/passes?dry_run=true", Some(TOKEN));
        assert_eq!(report["plugin"]["version"], "2.0.0", "{report}");
        f.write_all(&v1[v1.len() / 2..]).unwrap();
    }
    wait_for("v1 to be active again", || {
        (svc.active_version("policy").as_deref() == Some("1.0.0")).then_some(())
    });
    let events = svc.events("policy");
    let new: Vec<&Value> = events[..events.len() - before].iter().collect();
    assert!(
        new.iter().all(|e| e["event"] == "loaded"),
        "the half-written file was read: {new:?}"
    );

    // Removing the file disables the dataset: passes fail with a clear error, no ghost version serves.
    std::fs::remove_file(s.plugins().join("policy.wasm")).unwrap();
    wait_for("the plugin to be removed", || {
        (svc.plugin("policy")["plugin"]["state"] == "removed").then_some(())
    });
    let (st, report) = svc.post("/v1/datasets/logs/passes", Some(TOKEN));
    assert_eq!(st, 200);
    assert_eq!(report["status"], "failed", "{report}");
    // No ghost version either through a rollback.
    let (st, v) = svc.post("/v1/plugins/policy/rollback", Some(TOKEN));
    assert_eq!(st, 409, "{v}");
    assert!(v["error"].as_str().unwrap().contains("removed"), "{v}");
    assert!(report["error"].as_str().unwrap().contains("was removed"), "{report}");
    assert!(report["plugin"].is_null());
    let (status, log) = svc.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn a_restart_with_a_warm_compile_cache_loads_plugins_without_compiling() {
    let s = Setup::new("age_tiering", 1);
    let config = s.config("", "");
    let metric = |svc: &Service, source: &str| {
        let (_, text) = http(svc.port, "GET", "/metrics", None);
        text.lines()
            .find(|l| {
                l.starts_with(&format!(
                    "retention_plugin_compiles_total{{plugin=\"policy\",source=\"{source}\"}}"
                ))
            })
            .map(|l| l.rsplit(' ').next().unwrap().to_string())
    };
    let svc = s.start(&config, None);
    assert_eq!(metric(&svc, "compiled").as_deref(), Some("1"));
    assert_eq!(metric(&svc, "disk-cache"), None);
    let (status, log) = svc.stop();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("plugin loaded") && log.contains("source=compiled"),
        "{log}"
    );

    let svc = s.start(&config, None);
    assert_eq!(metric(&svc, "disk-cache").as_deref(), Some("1"));
    assert_eq!(metric(&svc, "compiled"), None, "a warm restart compiled again");
    let (_, p) = svc.get("/v1/plugins");
    assert_eq!(p["plugins"][0]["active"]["source"], "disk-cache", "{p}");
    let (status, log) = svc.stop();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("source=disk-cache") && !log.contains("source=compiled"),
        "{log}"
    );
    // The cache is in the state directory, never beside the plugins.
    assert!(std::fs::read_dir(s.path().join("state/compiled")).unwrap().count() >= 1);
    assert_eq!(std::fs::read_dir(s.plugins()).unwrap().count(), 1);
}

#[test]
fn the_admin_api_answers_every_endpoint_and_refuses_bad_or_unauthorised_requests() {
    let s = Setup::new("swap_v2", 2);
    let config = s.config("params = { a = 1 }", "");
    let svc = s.start(&config, Some(TOKEN));

    // Health, readiness, metrics.
    assert_eq!(svc.get("/healthz"), (200, serde_json::json!({"status": "ok"})));
    assert_eq!(svc.get("/readyz").0, 200);

    // Mutating endpoints: no token, a wrong token -> 401, and nothing happens.
    for path in [
        "/v1/datasets/logs/passes",
        "/v1/plugins/reload",
        "/v1/plugins/policy/rollback",
        "/v1/config/reload",
    ] {
        let (st, v) = svc.post(path, None);
        assert_eq!(st, 401, "{path}: {v}");
        assert!(v["error"].as_str().unwrap().contains("missing bearer token"), "{v}");
        let (st, v) = svc.post(path, Some("wrong-token-0123456789"));
        assert_eq!(st, 401, "{path}: {v}");
        assert_eq!(v["status"], 401);
    }
    assert!(
        s.path().join("logs/app-000.log").is_file(),
        "a refused trigger ran a pass"
    );
    assert_eq!(svc.get("/v1/passes").1["passes"], serde_json::json!([]));

    // Trigger: a dry run touches nothing; a real pass compresses.
    let (st, dry) = svc.post("/v1/datasets/logs/passes?dry_run=true", Some(TOKEN));
    assert_eq!(st, 200, "{dry}");
    assert_eq!(dry["dry_run"], true);
    assert!(s.path().join("logs/app-000.log").is_file());
    let (st, real) = svc.post("/v1/datasets/logs/passes", Some(TOKEN));
    assert_eq!(st, 200);
    assert_eq!(real["stats"]["compressed"]["segments"], 2, "{real}");
    assert!(s.path().join("logs/app-000.log.zst").is_file());
    // Bad trigger input.
    assert_eq!(svc.post("/v1/datasets/nope/passes", Some(TOKEN)).0, 404);
    let (st, v) = svc.post("/v1/datasets/logs/passes?dry_run=maybe", Some(TOKEN));
    assert_eq!(st, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("dry_run"), "{v}");

    // History with paging, and one pass's report.
    let (_, page) = svc.get("/v1/passes?limit=1");
    assert_eq!(page["passes"][0]["pass_id"], real["pass_id"]);
    let next = page["next"].as_str().unwrap().to_string();
    let (_, page2) = svc.get(&format!("/v1/passes?limit=1&before={next}"));
    assert_eq!(page2["passes"][0]["pass_id"], dry["pass_id"]);
    let (_, page3) = svc.get(&format!(
        "/v1/passes?limit=1&before={}",
        page2["next"].as_str().unwrap()
    ));
    assert_eq!(page3["passes"], serde_json::json!([]));
    assert!(page3["next"].is_null());
    let (st, report) = svc.get(&format!("/v1/passes/{}", real["pass_id"].as_str().unwrap()));
    assert_eq!(st, 200);
    assert_eq!(report["segments"].as_array().unwrap().len(), 2);
    assert_eq!(svc.get("/v1/passes/nope").0, 404);
    for bad in [
        "/v1/passes?limit=0",
        "/v1/passes?limit=5000",
        "/v1/passes?limit=abc",
        "/v1/passes?before=nope",
        "/v1/passes?colour=red",
    ] {
        let (st, v) = svc.get(bad);
        assert_eq!(st, 400, "{bad}: {v}");
        assert!(v["error"].is_string());
    }

    // Datasets and plugins.
    let (_, ds) = svc.get("/v1/datasets");
    let d = &ds["datasets"][0];
    assert_eq!(d["name"], "logs");
    assert_eq!(d["plugin"], "policy");
    assert_eq!(d["last_pass"]["pass_id"], real["pass_id"]);
    assert_eq!(d["params"], serde_json::json!([["a", "1"]]));
    assert_eq!(svc.get("/v1/datasets/nope").0, 404);
    let (_, ps) = svc.get("/v1/plugins");
    assert_eq!(ps["plugins"][0]["active"]["name"], "swap-v2");
    assert_eq!(ps["plugins"][0]["datasets"], serde_json::json!(["logs"]));
    assert_eq!(svc.get("/v1/plugins/nope").0, 404);

    // Rollback: none before a second version; after one, back to the first.
    let (st, v) = svc.post("/v1/plugins/policy/rollback", Some(TOKEN));
    assert_eq!(st, 409, "{v}");
    assert_eq!(svc.post("/v1/plugins/nope/rollback", Some(TOKEN)).0, 404);
    s.put_plugin("policy", std::fs::read(plugin("swap_v1")).unwrap());
    let (st, v) = svc.post("/v1/plugins/reload", Some(TOKEN));
    assert_eq!(st, 200);
    assert_eq!(v["plugins"][0]["active"]["version"], "1.0.0", "{v}");
    let (st, v) = svc.post("/v1/plugins/policy/rollback", Some(TOKEN));
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["plugin"]["active"]["version"], "2.0.0", "{v}");
    let events = svc.events("policy");
    assert_eq!(events[0]["event"], "rolled-back");

    // Config reload: a bad config is refused and the running one stays; a good one applies.
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        good.replace("params = { a = 1 }", "params = { a = 1 }\ncolour = \"red\""),
    )
    .unwrap();
    let (st, v) = svc.post("/v1/config/reload", Some(TOKEN));
    assert_eq!(st, 422, "{v}");
    assert!(v["error"].as_str().unwrap().contains("colour"), "{v}");
    assert_eq!(
        svc.get("/v1/datasets/logs").1["dataset"]["params"],
        serde_json::json!([["a", "1"]])
    );
    std::fs::write(&config, good.replace("params = { a = 1 }", "params = { a = 2 }")).unwrap();
    let (st, v) = svc.post("/v1/config/reload", Some(TOKEN));
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        svc.get("/v1/datasets/logs").1["dataset"]["params"],
        serde_json::json!([["a", "2"]])
    );
    // The reload rescanned the directory, whose file did not change: the rollback holds.
    assert_eq!(svc.active_version("policy").as_deref(), Some("2.0.0"));

    // Unknown endpoints and methods.
    assert_eq!(svc.get("/v1/nothing").0, 404);
    assert_eq!(svc.post("/v1/passes", Some(TOKEN)).0, 405);

    // Metrics, in Prometheus text format.
    let (st, text) = http(svc.port, "GET", "/metrics", None);
    assert_eq!(st, 200);
    for needle in [
        "retention_passes_total{dataset=\"logs\",status=\"ok\",dry_run=\"false\"} 1",
        "retention_passes_total{dataset=\"logs\",status=\"ok\",dry_run=\"true\"} 1",
        "retention_pass_duration_seconds_count{dataset=\"logs\"} 2",
        "retention_segments_total{dataset=\"logs\",action=\"compress\"} 2",
        "retention_bytes_total{dataset=\"logs\",action=\"compress\"}",
        "retention_plugin_loads_total{plugin=\"policy\",outcome=\"loaded\"} 2",
        "retention_plugin_loads_total{plugin=\"policy\",outcome=\"rolled-back\"} 1",
        "retention_plugin_info{plugin=\"policy\",name=\"swap-v2\",version=\"2.0.0\",digest=",
    ] {
        assert!(text.contains(needle), "missing {needle} in:\n{text}");
    }

    // `retention status` shows the same through the API.
    let out = retention().args(["status", "--config"]).arg(&config).output().unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        table.contains("PLUGIN") && table.contains("swap-v2 2.0.0") && table.contains("active"),
        "{table}"
    );
    assert!(
        table.contains("DATASET") && table.contains("logs") && table.contains("policy"),
        "{table}"
    );
    let (status, log) = svc.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn without_a_configured_token_mutating_endpoints_are_refused() {
    let s = Setup::new("swap_v2", 1);
    let config = s.config("", "");
    let svc = s.start(&config, None);
    let (st, v) = svc.post("/v1/datasets/logs/passes", Some(TOKEN));
    assert_eq!(st, 403, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("no API token is configured"),
        "{v}"
    );
    assert!(s.path().join("logs/app-000.log").is_file());
    assert_eq!(svc.get("/v1/datasets").0, 200);
}

#[test]
fn sighup_reloads_the_config_and_a_broken_one_leaves_the_running_config_untouched() {
    let s = Setup::new("swap_v2", 1);
    let config = s.config("params = { a = 1 }", "");
    let svc = s.start(&config, None);
    let params = |svc: &Service| svc.get("/v1/datasets/logs").1["dataset"]["params"].clone();
    let good = std::fs::read_to_string(&config).unwrap();

    std::fs::write(&config, good.replace("params = { a = 1 }", "params = { a = 7 }")).unwrap();
    svc.signal("-HUP");
    wait_for("the new params", || {
        (params(&svc) == serde_json::json!([["a", "7"]])).then_some(())
    });

    std::fs::write(&config, good.replace("params = { a = 1 }", "schedule = \"not cron\"")).unwrap();
    svc.signal("-HUP");
    wait_for("the refusal in the log", || {
        svc.log().contains("config reload refused").then_some(())
    });
    assert!(svc.log().contains("dataset[0].schedule"), "{}", svc.log());
    assert_eq!(params(&svc), serde_json::json!([["a", "7"]]));
    let (status, log) = svc.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn an_invalid_cron_expression_fails_at_start_up_and_names_the_dataset() {
    let s = Setup::new("swap_v2", 1);
    let config = s.config("schedule = \"0 0 25 * * *\"", "");
    let out = retention().args(["serve", "--config"]).arg(&config).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("dataset[0].schedule") && err.contains("dataset logs") && err.contains("0 0 25"),
        "{err}"
    );
}

#[test]
fn sigterm_during_a_pass_stops_it_at_an_action_boundary_and_exits_zero() {
    let s = Setup::new("swap_v1", 2);
    let config = s.config("params = { slow_ms = 1000 }", "");
    let svc = s.start(&config, Some(TOKEN));
    let port = svc.port;
    let pass = std::thread::spawn(move || http(port, "POST", "/v1/datasets/logs/passes", Some(TOKEN)));
    wait_for("the pass to be running", || {
        (svc.get("/v1/datasets/logs").1["dataset"]["running"] == true).then_some(())
    });
    let (status, log) = svc.stop();
    assert!(status.success(), "{status}\n{log}");
    let _ = pass.join();
    // The pass was recorded as cancelled: it planned, then applied nothing after the shutdown began.
    let svc = s.start(&config, Some(TOKEN));
    let (_, v) = svc.get("/v1/passes");
    assert_eq!(v["passes"][0]["status"], "cancelled", "{v}");
    assert!(s.path().join("logs/app-000.log").is_file());
}

#[test]
fn an_api_reachable_off_the_machine_is_refused_without_a_token_and_warned_about_with_one() {
    let s = Setup::new("swap_v2", 1);
    let config = s.config("", "");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("listen = \"127.0.0.1:", "listen = \"0.0.0.0:")).unwrap();
    let out = retention()
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("RETENTION_API_TOKEN")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("service.listen") && err.contains("0.0.0.0") && err.contains("needs an API token"),
        "{err}"
    );
    let svc = s.start(&config, Some(TOKEN));
    assert!(svc.log().contains("reachable from other machines"), "{}", svc.log());
    let (st, v) = svc.get("/v1/service");
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["service"]["reachable_off_machine"], true, "{v}");
    assert!(v["service"]["warnings"][0].as_str().unwrap().contains("TLS"), "{v}");
    let out = retention()
        .args(["status", "--url", &format!("http://127.0.0.1:{}", s.port)])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.starts_with("WARNING: the admin API listens on 0.0.0.0"),
        "{text}"
    );
}

#[test]
fn a_state_database_removed_while_the_service_runs_stops_its_passes() {
    let s = Setup::new("swap_v2", 2);
    let config = s.config("", "");
    let svc = s.start(&config, Some(TOKEN));
    let (st, r) = svc.post("/v1/datasets/logs/passes?dry_run=true", Some(TOKEN));
    assert_eq!((st, r["status"].as_str()), (200, Some("ok")), "{r}");
    for f in ["state.sqlite3", "state.sqlite3-wal", "state.sqlite3-shm"] {
        let _ = std::fs::remove_file(s.path().join("state").join(f));
    }
    let before = common::files_under(&s.path().join("logs"));
    let (st, r) = svc.post("/v1/datasets/logs/passes", Some(TOKEN));
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["status"], "failed", "{r}");
    let e = r["error"].as_str().unwrap();
    assert!(
        e.contains("was removed or replaced") && e.contains("no pass runs"),
        "{e}"
    );
    assert_eq!(
        common::files_under(&s.path().join("logs")),
        before,
        "nothing was touched"
    );
}
