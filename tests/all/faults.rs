//! Fault injection across the service: `retention serve` runs a pass every second over one data tree with the `churn`
//! plugin (every pass compresses, archives and drops a random part of the segments, archived ones included; drops go
//! to a trash, the dataset's or the archive's, with a 2 s grace, which later passes purge), and is killed with SIGKILL
//! at random moments, 50 times, restarted each time.
//! Afterwards every original file's content (by hash) must exist exactly once across hot, compressed, archived and
//! trash, unless the audit trail records its purge; no partial file may exist anywhere, and no temporary file may
//! remain after the next pass.
//!
//! The random delays come from a seed printed at the start (set `RETENTION_FAULT_SEED` to replay one).

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::service::{Setup, TOKEN, http};
use serde_json::Value;

const FILES: usize = 300;
const KILLS: usize = 50;

fn sha(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

/// A small xorshift generator: reproducible from its seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

#[test]
fn sigkill_at_random_moments_never_loses_or_duplicates_a_byte() {
    let seed = std::env::var("RETENTION_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("RETENTION_FAULT_SEED={seed}");
    let mut rng = Rng(seed);

    let s = Setup::new("churn", 0);
    let mut originals: BTreeMap<String, String> = BTreeMap::new();
    for i in 0..FILES {
        let name = format!("s{}/part-{i:04}.log", i % 7);
        let p = s.path().join("logs").join(&name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let body = format!("{name} line with some entropy {}\n", i * 7919).repeat(150 + i % 50);
        std::fs::write(&p, &body).unwrap();
        originals.insert(name, sha(body.as_bytes()));
    }
    std::fs::create_dir(s.path().join("archive")).unwrap();
    let cfg = s.path().join("retention.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"plugin_dir = "plugins"
[service]
listen = "127.0.0.1:{port}"
state_dir = "state"
[[dataset]]
name = "logs"
plugin = "policy"
schedule = "* * * * * *"
apply_parallelism = 2
[dataset.guard]
max_drop_bytes_fraction = 1.0
max_drop_segments_fraction = 1.0
keep_newest = 0
min_drop_age_secs = 0
[dataset.directory]
root = "logs"
archive_url = "file://{archive}"
trash_grace_secs = 2
"#,
            port = s.port,
            archive = s.path().join("archive").display()
        ),
    )
    .unwrap();

    for _ in 0..KILLS {
        let mut svc = s.start(&cfg, Some(TOKEN));
        std::thread::sleep(Duration::from_millis(rng.next(1_500)));
        svc.child.kill().unwrap();
        svc.child.wait().unwrap();
    }

    // One more start: a real pass recovers whatever the last kill interrupted.
    let svc = s.start(&cfg, Some(TOKEN));
    let (st, report) = svc.post("/v1/datasets/logs/passes", Some(TOKEN));
    assert_eq!(st, 200, "{report}");
    assert_eq!(report["status"], "ok", "{report}");
    let (_, export) = http(svc.port, "GET", "/v1/audit/export?dataset=logs", None);
    let audit: Vec<Value> = export.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let (status, log) = svc.stop();
    assert!(status.success(), "{log}");

    let done = |action: &str| {
        audit
            .iter()
            .filter(|r| r["action"] == action && (r["outcome"] == "done" || r["outcome"] == "trashed"))
            .count()
    };
    let interrupted = audit.iter().filter(|r| r["outcome"] == "interrupted").count();
    println!(
        "audit: {} compressed, {} archived, {} dropped, {} purged; {interrupted} actions of killed passes recorded as \
         interrupted",
        done("compress"),
        done("archive"),
        done("drop"),
        done("purge")
    );
    for action in ["compress", "archive", "drop", "purge"] {
        assert!(
            done(action) > 0,
            "no {action} was ever done: the test did not exercise it"
        );
    }
    let archived_trashed = audit
        .iter()
        .filter(|r| r["action"] == "drop" && r["tier_before"] == "archived" && r["outcome"] == "trashed")
        .count();
    assert!(
        archived_trashed > 0,
        "no archived object was ever dropped into the archive's trash: the test did not exercise it"
    );
    let purged: BTreeSet<String> = audit
        .iter()
        .filter(|r| r["action"] == "purge")
        .map(|r| r["segment"].as_str().unwrap().to_string())
        .collect();

    // The census: every copy of every content, wherever it is, by content hash; no temporary may be left.
    let (found, temps) = common::census::take(&s.path().join("logs"), &s.path().join("archive"));
    assert!(
        temps.is_empty(),
        "temporary files remained after the next pass: {temps:?}"
    );
    let mut copies: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, place, content) in found {
        let at = match place {
            "hot" => format!("data/{name}"),
            other => format!("{other}/{name}"),
        };
        copies.entry(sha(&content)).or_default().push(at);
    }
    let known: BTreeSet<&String> = originals.values().collect();
    for (hash, places) in &copies {
        assert!(
            known.contains(hash),
            "a file that is no original's whole content (partial?): {places:?}"
        );
    }
    // Every segment no longer where it started was moved by an action the audit trail records, done or interrupted.
    let acted_on: BTreeSet<&str> = audit
        .iter()
        .filter(|r| ["compress", "archive", "drop"].contains(&r["action"].as_str().unwrap()))
        .filter(|r| ["done", "trashed", "interrupted"].contains(&r["outcome"].as_str().unwrap()))
        .map(|r| r["segment"].as_str().unwrap())
        .collect();
    for (name, hash) in &originals {
        let moved = copies
            .get(hash)
            .is_none_or(|places| places != &[format!("data/{name}")]);
        assert!(
            !moved || acted_on.contains(name.as_str()),
            "{name} was moved ({:?}) and the audit trail records no action on it",
            copies.get(hash)
        );
        match copies.get(hash).map(Vec::len).unwrap_or(0) {
            1 => {}
            0 => assert!(
                purged.contains(name),
                "{name} is gone and the audit trail records no purge of it"
            ),
            n => panic!("{name} exists {n} times: {:?}", copies[hash]),
        }
    }
}
