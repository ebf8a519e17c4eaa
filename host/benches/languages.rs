//! Plugins per language, side by side in one run: the same rule in Rust and in Python (`age-tiering`), and in Rust
//! and in TypeScript on both engines (`gfs` on QuickJS and on StarlingMonkey). Per component:
//! - size;
//! - cold compile with Cranelift (what passes run) and with Winch (the baseline compiler of a quick first load);
//! - cached load (Cranelift's code from the disk cache, a fresh process's view);
//! - rename to serving in the service: from the rename of a new version into the plugin directory until it serves
//!   (`get` returns it), and until Cranelift's code has replaced the baseline code;
//! - plan time for N segments (default 100,000, oldest first, labels `level` and `service`) on Cranelift's code and on
//!   Winch's, best of `--reps`, and the plugin's peak linear memory during that pass.
//!
//! Run: `guest-plugins/python/build.sh && guest-plugins/ts/build.sh &&
//!       cargo build --release --target wasm32-wasip2 --manifest-path guest-plugins/Cargo.toml &&
//!       cargo bench --bench languages` (see BENCHMARKS.md). Optional: `-- --segments 100000,300000 --reps 3 --only TS`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use retention::config::{Config, RuntimeConfig};
use retention::plugin::{Compiler, LoadedPlugin, PassInput, Runtime};
use retention::segment::{Segment, Symbols, Tier};
use retention::service::Service;
use retention::service::scheduler::SystemClock;
use support::{nonce, variant};

mod support;

const DAY_MS: i64 = 86_400_000;
const NOW_MS: i64 = 1_772_323_200_000; // 2026-03-01T00:00:00Z

struct Case {
    label: &'static str,
    path: PathBuf,
    params: &'static [(&'static str, &'static str)],
}

fn guest(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-plugins").join(rel)
}

fn cases() -> Vec<Case> {
    const AGE: &[(&str, &str)] = &[
        ("compress_after_days", "3"),
        ("archive_after_days", "30"),
        ("drop_after_days", "90"),
        ("override.level.debug.drop_after_days", "7"),
    ];
    const GFS: &[(&str, &str)] = &[("keep_daily", "7"), ("keep_weekly", "4"), ("group_by", "service")];
    let rust = |stem: &str| guest(&format!("target/wasm32-wasip2/release/{stem}.wasm"));
    vec![
        Case {
            label: "age-tiering, Rust",
            path: rust("age_tiering"),
            params: AGE,
        },
        Case {
            label: "age-tiering, Python",
            path: guest("python/target/age-tiering.wasm"),
            params: AGE,
        },
        Case {
            label: "gfs, Rust",
            path: rust("gfs"),
            params: GFS,
        },
        Case {
            label: "gfs, TS on QuickJS",
            path: guest("ts/target/gfs.quickjs.wasm"),
            params: GFS,
        },
        Case {
            label: "gfs, TS on StarlingMonkey",
            path: guest("ts/target/gfs.starlingmonkey.wasm"),
            params: GFS,
        },
    ]
}

fn runtime(cache: Option<&Path>) -> anyhow::Result<Arc<Runtime>> {
    Runtime::new(RuntimeConfig {
        cache_dir: cache.map(Path::to_path_buf),
        compile_cache: cache.is_some(),
        ..RuntimeConfig::default()
    })
}

/// `n` segments a day apart going back from now (several per day), labelled `level` and `service`.
fn segments(n: usize, symbols: &mut Symbols) -> Arc<Vec<Segment>> {
    let levels = ["debug", "info", "warn"].map(|v| symbols.intern(v));
    let services = ["api", "db", "web", "batch"].map(|v| symbols.intern(v));
    let (level, service) = (symbols.intern("level"), symbols.intern("service"));
    let per_day = 100;
    let mut out: Vec<Segment> = (0..n)
        .map(|i| {
            let end_ms = NOW_MS - ((n - i) / per_day) as i64 * DAY_MS - ((n - i) % per_day) as i64 * 1_000;
            let mut labels: retention::segment::Labels =
                [(level, levels[i % 3]), (service, services[i % 4])][..].into();
            labels.sort_unstable();
            let name = format!("{}/app-{i:08}.log", ["api", "db", "web", "batch"][i % 4]);
            Segment {
                locator: name.clone(),
                name,
                tier: [Tier::Hot, Tier::Hot, Tier::Compressed][i % 3],
                start_ms: end_ms,
                end_ms,
                rows: None,
                bytes: 4096 + i as u64,
                labels,
                token: Default::default(),
            }
        })
        .collect();
    out.sort_by(|a, b| a.end_ms.cmp(&b.end_ms).then_with(|| a.name.cmp(&b.name)));
    Arc::new(out)
}

/// Best-of-`reps` plan time in ms, and the peak memory in MiB.
fn plan(plugin: &LoadedPlugin, case: &Case, n: usize, reps: usize) -> anyhow::Result<(f64, f64)> {
    let mut symbols = Symbols::new();
    let segs = segments(n, &mut symbols);
    let params: Vec<(String, String)> = case
        .params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut best = f64::MAX;
    let mut peak = 0;
    for _ in 0..reps {
        let input = PassInput {
            pass_id: "bench",
            dataset: "bench",
            now_ms: NOW_MS,
            dry_run: true,
            params: &params,
        };
        let t = Instant::now();
        let out = plugin
            .plan(input, segs.clone(), &symbols)
            .map_err(|e| anyhow::anyhow!("{}: {e}", case.label))?;
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
        peak = peak.max(out.peak_memory_bytes);
    }
    Ok((best, peak as f64 / f64::from(1 << 20)))
}

/// Rename to serving in an in-process service: (rename -> serving, rename -> serving on Cranelift's code), in ms.
async fn rename_to_serving(base: &[u8], case: &Case) -> anyhow::Result<(f64, f64)> {
    let dir = tempfile::tempdir()?;
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(dir.path().join("logs"))?;
    std::fs::create_dir(&plugins)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let config_path = dir.path().join("retention.toml");
    std::fs::write(
        &config_path,
        format!(
            "plugin_dir = \"plugins\"\n[service]\nlisten = \"127.0.0.1:{port}\"\nstate_dir = \"state\"\n\
             [[dataset]]\nname = \"logs\"\nplugin = \"policy\"\nparams = {{ {} }}\n[dataset.directory]\nroot = \"logs\"\n",
            case.params
                .iter()
                .map(|(k, v)| format!("\"{k}\" = \"{v}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )?;
    let config = Config::load_service(&config_path)?;
    let svc = Service::new(&config_path, config, Arc::new(SystemClock))?;
    svc.start().await?;
    let bytes = variant(base, &nonce());
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    let tmp = plugins.join(".policy.wasm.tmp");
    std::fs::write(&tmp, &bytes)?;
    let mut changes = svc.plugins.subscribe();
    changes.borrow_and_update();
    let t0 = Instant::now();
    std::fs::rename(&tmp, plugins.join("policy.wasm"))?;
    let mut serving = None;
    loop {
        if let Ok(p) = svc.plugins.get("policy")
            && p.meta.digest == digest
        {
            let at = t0.elapsed().as_secs_f64() * 1e3;
            serving.get_or_insert(at);
            if p.meta.compiler == Compiler::Cranelift {
                svc.shutdown().await;
                return Ok((serving.unwrap(), at));
            }
        }
        tokio::time::timeout(Duration::from_secs(120), changes.changed()).await??;
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let sizes: Vec<usize> = arg("--segments")
        .unwrap_or_else(|| "100000".into())
        .split(',')
        .map(|s| s.parse().expect("a number of segments"))
        .collect();
    let reps: usize = arg("--reps").map_or(3, |r| r.parse().expect("a number"));
    // `--only TS`: the cases whose label contains this text.
    let only = arg("--only").unwrap_or_default();
    let rt = tokio::runtime::Runtime::new()?;
    println!(
        "{:<27} {:>8} {:>10} {:>9} {:>8} {:>9} {:>10}",
        "plugin", "MB", "cranelift", "winch", "cached", "serving", "optimised"
    );
    let mut plans = Vec::new();
    for case in cases().into_iter().filter(|c| c.label.contains(&only)) {
        let base = std::fs::read(&case.path).map_err(|e| {
            anyhow::anyhow!(
                "{}: {e}: build it first (see the header of this file)",
                case.path.display()
            )
        })?;
        let shown = case.path.display().to_string();
        // Cold compiles: fresh runtimes without a cache, fresh bytes.
        let cranelift = runtime(None)?.load_bytes_traced(&variant(&base, &nonce()), &shown)?.0;
        let quick = runtime(None)?.load_quick(&variant(&base, &nonce()), &shown)?.0;
        let winch = if quick.meta.compiler == Compiler::Winch {
            format!("{:.0}", quick.meta.compile_ms)
        } else {
            "-".into() // under the size where the baseline compiler is used
        };
        // Cached: compile into a cache, then load it in a new runtime.
        let cache = tempfile::tempdir()?;
        let bytes = variant(&base, &nonce());
        runtime(Some(cache.path()))?.load_bytes_traced(&bytes, &shown)?;
        let cached = runtime(Some(cache.path()))?.load_bytes_traced(&bytes, &shown)?.0;
        assert!(cached.meta.cached);
        let (serving, optimised) = rt.block_on(rename_to_serving(&base, &case))?;
        println!(
            "{:<27} {:>8.2} {:>8.0}ms {:>7}ms {:>6.1}ms {:>7.0}ms {:>8.0}ms",
            case.label,
            base.len() as f64 / 1e6,
            cranelift.meta.compile_ms,
            winch,
            cached.meta.compile_ms,
            serving,
            optimised
        );
        plans.push((case, cranelift, quick));
    }
    println!();
    println!("plan time, best of {reps}, and the plugin's peak memory");
    println!(
        "{:<27} {:>10} {:>12} {:>12} {:>10}",
        "plugin", "segments", "cranelift", "winch", "peak MiB"
    );
    for (case, cranelift, quick) in &plans {
        for &n in &sizes {
            let (ms, peak) = plan(cranelift, case, n, reps)?;
            let winch = if quick.meta.compiler == Compiler::Winch {
                format!("{:.0}ms", plan(quick, case, n, reps)?.0)
            } else {
                "-".into()
            };
            println!(
                "{:<27} {:>10} {:>10.0}ms {:>12} {:>10.1}",
                case.label, n, ms, winch, peak
            );
        }
    }
    Ok(())
}
