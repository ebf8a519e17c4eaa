//! Boundary throughput: segments per second through a whole plan (`begin` + every `decide` batch) of the
//! `bench_policy` plugin, beside the same logic compiled natively into the host, in one run.
//!
//! Run: `cargo build --release --target wasm32-wasip2 --manifest-path guest-plugins/Cargo.toml &&
//!       cargo bench --bench boundary` (see BENCHMARKS.md). Optional: `-- --segments N --batch N --reps N`.

use std::sync::Arc;
use std::time::Instant;

use retention::config::RuntimeConfig;
use retention::plugin::{PassInput, Runtime};
use retention::segment::{Action, Decision, Labels, Segment, Sym, Symbols, Tier};

const DAY_MS: i64 = 86_400_000;
const NOW_MS: i64 = 1_790_000_000_000;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: usize| -> usize {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map_or(default, |v| v.parse().expect("a number"))
    };
    let n = arg("--segments", 2_000_000);
    let batch = arg("--batch", RuntimeConfig::default().batch_size);
    let reps = arg("--reps", 5);

    let wasm = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../guest-plugins/target/wasm32-wasip2/release/bench_policy.wasm");
    anyhow::ensure!(
        wasm.is_file(),
        "{} is missing: build the guest plugins first (see BENCHMARKS.md)",
        wasm.display()
    );
    let (segments, symbols) = synthetic(n);
    let segments = Arc::new(segments);
    let runtime = Runtime::new(RuntimeConfig {
        batch_size: batch,
        ..RuntimeConfig::default()
    })?;
    let plugin = runtime.load_file(&wasm)?;

    println!("boundary throughput: {n} segments, 3 labels each, batch {batch}, best of {reps} runs");
    println!(
        "{:<44} {:>14} {:>14} {:>8}",
        "case", "plugin seg/s", "native seg/s", "ratio"
    );
    for read_names in [false, true] {
        let params = vec![("read_names".to_string(), read_names.to_string())];
        let mut best_plugin = f64::MAX;
        let mut plugin_decisions = Vec::new();
        for _ in 0..reps {
            let input = PassInput {
                pass_id: "bench",
                dataset: "bench",
                now_ms: NOW_MS,
                dry_run: true,
                params: &params,
            };
            let t = Instant::now();
            let plan = plugin.plan(input, segments.clone(), &symbols, batch)?;
            best_plugin = best_plugin.min(t.elapsed().as_secs_f64());
            plugin_decisions = plan.decisions;
        }
        let mut best_native = f64::MAX;
        let mut native_decisions = Vec::new();
        for _ in 0..reps {
            let t = Instant::now();
            native_decisions = std::hint::black_box(native(&segments, &symbols, read_names));
            best_native = best_native.min(t.elapsed().as_secs_f64());
        }
        // The benchmark is only meaningful if both sides decided the same.
        let same = plugin_decisions
            .iter()
            .zip(&native_decisions)
            .all(|(p, n)| p.action == n.action);
        anyhow::ensure!(same, "plugin and native decisions differ");
        let case = if read_names {
            "time, size, tier, 3 labels + every name"
        } else {
            "time, size, tier, 3 labels"
        };
        let (p, q) = (n as f64 / best_plugin, n as f64 / best_native);
        println!("{case:<44} {:>14} {:>14} {:>7.1}x", fmt_rate(p), fmt_rate(q), q / p);
    }
    Ok(())
}

fn fmt_rate(r: f64) -> String {
    format!("{:.1} M", r / 1e6)
}

/// The same rule as `guest-plugins/bench-policy`, over the host's own segment structs.
fn native(segments: &[Segment], symbols: &Symbols, read_names: bool) -> Vec<Decision> {
    let key = |k: &str| symbols.get(k).unwrap_or(Sym::MAX);
    let (service, level) = (key("service"), key("level"));
    let (debug, audit) = (key("debug"), key("audit"));
    let label = |s: &Segment, k: Sym| s.labels.iter().find(|(kk, _)| *kk == k).map(|(_, v)| *v);
    segments
        .iter()
        .map(|s| {
            let age = NOW_MS - s.end_ms;
            let action = if read_names && s.name.ends_with(".tmp") {
                Action::Drop
            } else if age > 30 * DAY_MS && label(s, level) == Some(debug) {
                Action::Drop
            } else if age > 7 * DAY_MS && s.tier != Tier::Archived && s.bytes > 1_000_000 {
                Action::Archive
            } else if s.tier == Tier::Hot && age > DAY_MS && label(s, service) != Some(audit) {
                Action::Compress
            } else {
                Action::Keep
            };
            Decision { action, reason: 0 }
        })
        .collect()
}

/// Segments with 3 labels (5 services, 3 levels, 4 regions), ages up to 60 days, sizes up to 4 MB, all tiers.
fn synthetic(n: usize) -> (Vec<Segment>, Symbols) {
    let mut symbols = Symbols::new();
    let keys = [
        symbols.intern("service"),
        symbols.intern("level"),
        symbols.intern("region"),
    ];
    let services: Vec<Sym> = ["api", "web", "audit", "billing", "search"]
        .iter()
        .map(|s| symbols.intern(s))
        .collect();
    let levels: Vec<Sym> = ["debug", "info", "error"].iter().map(|s| symbols.intern(s)).collect();
    let regions: Vec<Sym> = ["eu", "us", "ap", "sa"].iter().map(|s| symbols.intern(s)).collect();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        // xorshift: deterministic, fast, good enough to mix the branches.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut segments: Vec<Segment> = (0..n)
        .map(|i| {
            let r = next();
            let end_ms = NOW_MS - (r % (60 * DAY_MS as u64)) as i64;
            let tier = match r >> 60 {
                0..=9 => Tier::Hot,
                10..=13 => Tier::Compressed,
                _ => Tier::Archived,
            };
            let mut labels: Labels = smallvec::smallvec![
                (keys[0], services[(r >> 8) as usize % services.len()]),
                (keys[1], levels[(r >> 16) as usize % levels.len()]),
                (keys[2], regions[(r >> 24) as usize % regions.len()]),
            ];
            labels.sort_unstable();
            let ext = if r % 97 == 0 { "tmp" } else { "log" };
            Segment {
                name: format!("svc-{}/part-{i:08}.{ext}", (r >> 8) % 5),
                tier,
                start_ms: end_ms,
                end_ms,
                rows: None,
                bytes: (r >> 32) % 4_000_000,
                labels,
                locator: String::new(),
                modified_ns: 0,
            }
        })
        .collect();
    retention::segment::sort_oldest_first(&mut segments);
    (segments, symbols)
}
