//! The hostile-plugin corpus against the real service: every bad plugin costs its own pass (or its own load) and
//! never the service or the data. Each failing pass must apply nothing (even after the plugin answered earlier batches
//! with a valid plan), name the cause, and leave the service answering.
//!
//! The plugins: `misbehave` (one binary, the `mode` parameter picks the misbehaviour), `loop-in-info`, `old-world`
//! (an older, incompatible version of our world), plus garbage bytes, a core module and a component of another world.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;

use common::plugin;
use common::service::{Service, Setup, TOKEN, http};
use serde_json::Value;

/// The plugin makes two valid batches (compress every hot segment) before it misbehaves, so the trial batch on load
/// (8 segments = 2 batches of 4) passes and a real pass (12 segments = 3 batches) fails in its third batch.
const GOOD_BATCHES: u32 = 2;

/// Failing in a pass: (mode, failure kind, words the error must contain).
const FAILING: &[(&str, &str, &[&str])] = &[
    ("loop", "timeout", &["decide", "deadline"]),
    ("oom", "memory", &["decide", "memory"]),
    ("trap", "trap", &["decide"]),
    ("wrong-count", "invalid-output", &["decide", "3 actions", "4 segments"]),
    ("compress-all", "invalid-output", &["compress", "compressed"]),
    ("bad-reason", "invalid-output", &["reason"]),
    ("refuse", "refused", &["decide"]),
];

/// Misbehaving within the rules: the pass must succeed.
const SUCCEEDING: &[(&str, &str)] = &[
    ("slow", "slow_ms = 200"),
    ("log-flood", ""),
    ("huge-reason", ""),
    ("snoop", ""),
];

fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(root).unwrap() {
        let p = e.unwrap().path();
        out.insert(
            p.file_name().unwrap().to_string_lossy().into_owned(),
            std::fs::read(&p).unwrap(),
        );
    }
    out
}

fn setup() -> (Setup, std::path::PathBuf) {
    let s = Setup::new("misbehave", 0);
    std::fs::remove_file(s.plugins().join("policy.wasm")).unwrap();
    let misbehave = std::fs::read(plugin("misbehave")).unwrap();
    let mut text = format!(
        "plugin_dir = \"plugins\"\n[runtime]\ncall_timeout_ms = 500\nbatch_size = 4\n\
         [service]\nlisten = \"127.0.0.1:{}\"\nstate_dir = \"state\"\n",
        s.port
    );
    let modes = FAILING
        .iter()
        .map(|(m, _, _)| (*m, format!("good_batches = {GOOD_BATCHES}")))
        .chain(SUCCEEDING.iter().map(|(m, p)| (*m, p.to_string())))
        .chain([("loop-begin", String::new())]);
    for (mode, extra) in modes {
        // One plugin file per dataset: a plugin's load trial runs with the parameters of every dataset that uses it.
        s.put_plugin(&format!("m-{mode}"), misbehave.clone());
        let root = s.path().join(format!("d-{mode}"));
        std::fs::create_dir(&root).unwrap();
        for i in 0..11 {
            std::fs::write(root.join(format!("f{i:02}.log")), format!("line {i}\n").repeat(100)).unwrap();
        }
        // The newest segment is already compressed: compressing it again is impossible.
        std::fs::write(root.join("f99.log.zst"), zstd::encode_all(&b"old\n"[..], 3).unwrap()).unwrap();
        let sep = if extra.is_empty() { "" } else { ", " };
        text.push_str(&format!(
            "[[dataset]]\nname = \"{mode}\"\nplugin = \"m-{mode}\"\nparams = {{ mode = \"{mode}\"{sep}{extra} }}\n\
             [dataset.directory]\nroot = \"d-{mode}\"\n"
        ));
    }
    // Plugins that must be refused at load, with no dataset.
    s.put_plugin("loop-info", std::fs::read(plugin("loop_in_info")).unwrap());
    s.put_plugin("old-world", std::fs::read(plugin("old_world")).unwrap());
    s.put_plugin("garbage", b"#!/bin/sh\nrm -rf /\n".to_vec());
    s.put_plugin("core", b"\0asm\x01\0\0\0".to_vec());
    s.put_plugin("other-world", b"\0asm\x0d\0\x01\0".to_vec());
    let cfg = s.path().join("retention.toml");
    std::fs::write(&cfg, text).unwrap();
    (s, cfg)
}

fn healthy(svc: &Service) {
    assert_eq!(svc.get("/healthz").0, 200, "the service stopped answering");
}

#[test]
fn every_hostile_plugin_fails_its_own_pass_naming_the_cause_and_applies_nothing() {
    let (s, cfg) = setup();
    let svc = s.start(&cfg, Some(TOKEN));
    for (mode, kind, words) in FAILING {
        let root = s.path().join(format!("d-{mode}"));
        let before = snapshot(&root);
        let (st, r) = svc.post(&format!("/v1/datasets/{mode}/passes"), Some(TOKEN));
        assert_eq!(st, 200, "{mode}: {r}");
        assert_eq!(r["status"], "failed", "{mode}: {r}");
        assert_eq!(r["failure_kind"], *kind, "{mode}: {r}");
        let e = r["error"].as_str().unwrap();
        assert!(e.contains("plugin misbehave"), "{mode}: {e}");
        for w in *words {
            assert!(e.contains(w), "{mode}: {w:?} not in {e}");
        }
        assert_eq!(snapshot(&root), before, "{mode}: the failed plan touched data");
        healthy(&svc);
    }
    let (_, metrics) = http(svc.port, "GET", "/metrics", None);
    for (mode, kind, _) in FAILING {
        let line = format!("retention_plugin_failures_total{{plugin=\"m-{mode}\",kind=\"{kind}\"}} 1");
        assert!(metrics.contains(&line), "missing {line} in\n{metrics}");
    }
}

#[test]
fn plugins_that_misbehave_within_the_rules_succeed_with_bounded_output() {
    let (s, cfg) = setup();
    let svc = s.start(&cfg, Some(TOKEN));
    let pass = |mode: &str| -> Value {
        let (st, r) = svc.post(&format!("/v1/datasets/{mode}/passes?dry_run=true"), Some(TOKEN));
        assert_eq!((st, &r["status"]), (200, &Value::from("ok")), "{mode}: {r}");
        r
    };
    assert_eq!(pass("slow")["segments"][0]["reason"], "slow but in time");
    let r = pass("log-flood");
    assert_eq!(r["plugin_log"].as_array().unwrap().len(), 1_000);
    assert!(
        r["plugin_log_dropped"].as_u64().unwrap() >= 3 * 100_000 - 1_000,
        "{}",
        r["plugin_log_dropped"]
    );
    assert_eq!(
        pass("huge-reason")["segments"][0]["reason"].as_str().unwrap().len(),
        512
    );
    let snoop = pass("snoop")["segments"][0]["reason"].as_str().unwrap().to_string();
    assert!(
        snoop.contains("file=Err(") && snoop.contains("env=0 args=0") && snoop.contains("socket=Err("),
        "{snoop}"
    );
    healthy(&svc);
}

#[test]
fn hostile_plugins_are_refused_at_load_with_their_reason_and_the_service_stays_up() {
    let (s, cfg) = setup();
    let svc = s.start(&cfg, Some(TOKEN));
    for (name, words) in [
        ("loop-info", &["info", "timeout"][..]),
        ("m-loop-begin", &["trial batch", "begin", "timeout"][..]),
        (
            "old-world",
            &["retention:policy/policy@0.0.1", "does not implement"][..],
        ),
        ("garbage", &["not a WebAssembly file"][..]),
        ("core", &["core WebAssembly module"][..]),
        ("other-world", &["component of another world"][..]),
    ] {
        let p = svc.plugin(name);
        assert_eq!(p["plugin"]["state"], "rejected", "{name}: {p}");
        let reason = p["plugin"]["last_rejection"]["reason"].as_str().unwrap();
        for w in words {
            assert!(reason.contains(w), "{name}: {w:?} not in {reason}");
        }
    }
    // The dataset whose plugin never loaded fails its passes, saying why, and touches nothing.
    let root = s.path().join("d-loop-begin");
    let before = snapshot(&root);
    let (_, r) = svc.post("/v1/datasets/loop-begin/passes", Some(TOKEN));
    assert_eq!(r["status"], "failed");
    assert!(r["error"].as_str().unwrap().contains("has no good version"), "{r}");
    assert_eq!(snapshot(&root), before);
    // Every good plugin still serves.
    let (_, r) = svc.post("/v1/datasets/slow/passes?dry_run=true", Some(TOKEN));
    assert_eq!(r["status"], "ok", "{r}");
    healthy(&svc);
}
