//! Boundary throughput: segments per second through the plugin boundary (`begin`, then every batch lowered into the
//! `bench_policy` plugin, decided, lifted back and checked against the contract), beside the same logic compiled
//! natively into the host over the same columns, in one run. Also printed: the end-to-end plan from the host's
//! segment structs, which adds building the column batches.
//!
//! Run: `cargo build --release --target wasm32-wasip2 --manifest-path guest-plugins/Cargo.toml &&
//!       cargo bench --bench boundary` (see BENCHMARKS.md). Optional: `-- --segments N --batch N --reps N`.

use std::sync::Arc;
use std::time::Instant;

use retention::config::RuntimeConfig;
use retention::plugin::batch::{Batches, tier_code};
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

    // The host's batch building, timed on its own.
    let mut build_s = f64::MAX;
    let mut batches = Batches::build(&segments, batch);
    for _ in 0..reps {
        let t = Instant::now();
        batches = std::hint::black_box(Batches::build(&segments, batch));
        build_s = build_s.min(t.elapsed().as_secs_f64());
    }

    println!("boundary throughput: {n} segments, 3 labels each, batch {batch}, best of {reps} runs");
    println!(
        "{:<40} {:>15} {:>15} {:>7} {:>17}",
        "case", "plugin seg/s", "native seg/s", "ratio", "end-to-end seg/s"
    );
    for read_names in [false, true] {
        let params = vec![("read_names".to_string(), read_names.to_string())];
        let input = || PassInput {
            pass_id: "bench",
            dataset: "bench",
            now_ms: NOW_MS,
            dry_run: true,
            params: &params,
        };
        let mut best_plugin = f64::MAX;
        let mut plugin_decisions = Vec::new();
        for _ in 0..reps {
            let t = Instant::now();
            let plan = plugin.plan_batches(input(), segments.clone(), &symbols, &mut batches)?;
            best_plugin = best_plugin.min(t.elapsed().as_secs_f64());
            plugin_decisions = plan.decisions;
        }
        let mut best_e2e = f64::MAX;
        for _ in 0..reps {
            let t = Instant::now();
            std::hint::black_box(plugin.plan(input(), segments.clone(), &symbols)?);
            best_e2e = best_e2e.min(t.elapsed().as_secs_f64());
        }
        let mut best_native = f64::MAX;
        let mut native_decisions = Vec::new();
        for _ in 0..reps {
            let t = Instant::now();
            native_decisions = std::hint::black_box(native(&batches, &segments, &symbols, read_names));
            best_native = best_native.min(t.elapsed().as_secs_f64());
        }
        // The benchmark is only meaningful if both sides decided the same.
        let same = plugin_decisions.len() == n
            && plugin_decisions
                .iter()
                .zip(&native_decisions)
                .all(|(p, q)| p.action == q.action);
        anyhow::ensure!(same, "plugin and native decisions differ");
        let case = if read_names {
            "time, size, tier, 3 labels + every name"
        } else {
            "time, size, tier, 3 labels"
        };
        let (p, q, e) = (n as f64 / best_plugin, n as f64 / best_native, n as f64 / best_e2e);
        println!(
            "{case:<40} {:>15} {:>15} {:>6.1}x {:>17}",
            fmt_rate(p),
            fmt_rate(q),
            q / p,
            fmt_rate(e)
        );
    }
    println!(
        "building the column batches from segment structs (host, once per pass): {}",
        fmt_rate(n as f64 / build_s)
    );
    Ok(())
}

fn fmt_rate(r: f64) -> String {
    format!("{:.1} M", r / 1e6)
}

/// The same rule as `guest-plugins/test-plugins/bench-policy`, over the same columns the plugin receives.
fn native(batches: &Batches, segments: &[Segment], symbols: &Symbols, read_names: bool) -> Vec<Decision> {
    let key = |k: &str| symbols.get(k).unwrap_or(Sym::MAX);
    let (service, level) = (key("service"), key("level"));
    let (debug, audit) = (key("debug"), key("audit"));
    let mut out = Vec::with_capacity(segments.len());
    for (range, b) in &batches.list {
        let column = |k: Sym| b.labels.iter().find(|c| c.key == k).map(|c| &c.values[..]);
        let (services, levels) = (column(service), column(level));
        for i in 0..b.end_ms.len() {
            let age = NOW_MS - b.end_ms[i];
            let tier = b.tiers[i];
            let hot = tier == tier_code(Tier::Hot);
            let archived = tier == tier_code(Tier::Archived);
            // Rules 1 and 2 of bench-policy both drop (for different reasons).
            let temporary = read_names && segments[range.start + i].name.ends_with(".tmp");
            let action = if temporary || (age > 30 * DAY_MS && levels.is_some_and(|l| l[i] == debug)) {
                Action::Drop
            } else if age > 7 * DAY_MS && !archived && b.bytes[i] > 1_000_000 {
                Action::Archive
            } else if hot && age > DAY_MS && services.is_none_or(|s| s[i] != audit) {
                Action::Compress
            } else {
                Action::Keep
            };
            out.push(Decision { action, reason: 0 });
        }
    }
    out
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
                token: Default::default(),
            }
        })
        .collect();
    retention::segment::sort_oldest_first(&mut segments);
    (segments, symbols)
}
