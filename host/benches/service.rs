//! Service benchmarks, in one run:
//! - hot-swap latency: from the rename of a new version of the example plugin (`age-tiering`) into the plugin
//!   directory to its swap, and to the end of the first pass that uses it; p50 and p99 over `--swaps` versions, with a
//!   cold compile and then with the same versions again from the on-disk compile cache;
//! - restart to ready: the real `retention serve` binary with `--plugins` plugins, from spawn to `/readyz` answering
//!   200, with an empty state directory (cold: every plugin compiled) beside a warm one (compiled code cached);
//! - idle memory: resident set of the real service with the example plugins loaded, after a pass of each dataset.
//!
//! Every version of a plugin is the same component with a distinct custom section appended, so each has its own digest
//! (and a fresh nonce per run keeps earlier runs' cache entries out of the cold figures).
//!
//! Run: `cargo build --release --target wasm32-wasip2 --manifest-path guest-plugins/Cargo.toml &&
//!       cargo bench --bench service` (see BENCHMARKS.md). Optional: `-- --swaps N --plugins N --restarts N`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use retention::config::Config;
use retention::service::Service;
use retention::service::scheduler::SystemClock;
use support::{nonce, variant};

mod support;

fn plugins_built() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-plugins/target/wasm32-wasip2/release")
}

fn example(stem: &str) -> anyhow::Result<Vec<u8>> {
    let p = plugins_built().join(format!("{stem}.wasm"));
    std::fs::read(&p).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e}: build the guest plugins first (see BENCHMARKS.md)",
            p.display()
        )
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn summary(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (percentile(&v, 0.5), percentile(&v, 0.99), v[v.len() - 1])
}

fn write_tree(dir: &Path, files: usize) {
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    for i in 0..files {
        std::fs::write(logs.join(format!("app-{i:03}.log")), format!("line {i}\n").repeat(100)).unwrap();
    }
}

fn config_text(port: u16, plugins: &[&str]) -> String {
    let mut text =
        format!("plugin_dir = \"plugins\"\n[service]\nlisten = \"127.0.0.1:{port}\"\nstate_dir = \"state\"\n");
    for p in plugins {
        let params = match *p {
            "size-budget" => "params = { max_bytes = \"1GiB\" }\n",
            "gfs" => "params = { keep_daily = 7, keep_last = 3 }\n",
            _ => "",
        };
        text.push_str(&format!(
            "[[dataset]]\nname = \"ds-{p}\"\nplugin = \"{p}\"\n{params}[dataset.directory]\nroot = \"logs\"\n"
        ));
    }
    text
}

/// Hot-swap latency, in process: returns (rename->swap, rename->first pass done) in ms per swap.
async fn hot_swap(
    base: &[u8],
    swaps: usize,
    tags: &[String],
    dir: &Path,
    svc: &Arc<Service>,
) -> (Vec<f64>, Vec<f64>, std::collections::BTreeMap<&'static str, usize>) {
    let mut sources = std::collections::BTreeMap::new();
    let plugins = dir.join("plugins");
    let mut changes = svc.plugins.subscribe();
    let mut to_swap = Vec::new();
    let mut to_pass = Vec::new();
    for tag in tags.iter().take(swaps) {
        let bytes = variant(base, tag);
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        let tmp = plugins.join(".policy.wasm.tmp");
        std::fs::write(&tmp, &bytes).unwrap();
        changes.borrow_and_update();
        let t0 = Instant::now();
        std::fs::rename(&tmp, plugins.join("policy.wasm")).unwrap();
        loop {
            if svc.plugins.get("policy").is_ok_and(|p| p.meta.digest == digest) {
                break;
            }
            tokio::time::timeout(Duration::from_secs(30), changes.changed())
                .await
                .expect("the swap within 30 s")
                .unwrap();
        }
        to_swap.push(t0.elapsed().as_secs_f64() * 1e3);
        let source = svc.plugins.status("policy").unwrap().active.unwrap().source;
        *sources.entry(source.as_str()).or_insert(0) += 1;
        let report = svc.trigger("ds-policy", true, false).await.unwrap();
        to_pass.push(t0.elapsed().as_secs_f64() * 1e3);
        assert_eq!(
            report.plugin.as_ref().unwrap().digest,
            digest,
            "the first pass after the swap used another version"
        );
    }
    (to_swap, to_pass, sources)
}

async fn wait_ready(port: u16, child: &mut std::process::Child) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/readyz");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(r) = client.get(&url).send().await
            && r.status() == 200
        {
            return Ok(());
        }
        if let Some(s) = child.try_wait()? {
            anyhow::bail!("the service exited with {s}");
        }
        anyhow::ensure!(Instant::now() < deadline, "the service was not ready within 120 s");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn_service(config: &Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_retention"))
        .args(["serve", "--config"])
        .arg(config)
        .env("RETENTION_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn retention serve")
}

fn stop(mut child: std::process::Child) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: usize| -> usize {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map_or(default, |v| v.parse().expect("a number"))
    };
    let swaps = arg("--swaps", 50);
    let n_plugins = arg("--plugins", 10);
    let restarts = arg("--restarts", 5);
    let rt = tokio::runtime::Runtime::new()?;
    let base = example("age_tiering")?;

    // 1. Hot swap, in process.
    let dir = tempfile::tempdir()?;
    std::fs::create_dir(dir.path().join("plugins"))?;
    write_tree(dir.path(), 10);
    let run = nonce();
    let tags: Vec<String> = (0..=swaps).map(|i| format!("{run}-{i}")).collect();
    std::fs::write(dir.path().join("plugins/policy.wasm"), variant(&base, &tags[swaps]))?;
    let config_path = dir.path().join("retention.toml");
    std::fs::write(&config_path, config_text(free_port(), &["policy"]))?;
    let config = Config::load_service(&config_path)?;
    let (cold, warm) = rt.block_on(async {
        let svc = Service::new(&config_path, config, Arc::new(SystemClock))?;
        svc.start().await?;
        // First round: every version is new (compiled). Second round: the same versions again; only the last few are
        // still in memory (kept for rollback), the rest come from the on-disk cache.
        let cold = hot_swap(&base, swaps, &tags, dir.path(), &svc).await;
        let warm = hot_swap(&base, swaps, &tags, dir.path(), &svc).await;
        svc.shutdown().await;
        anyhow::Ok((cold, warm))
    })?;
    println!(
        "hot swap of age-tiering ({} bytes), {swaps} swaps each; ms from the rename into the plugin directory",
        base.len()
    );
    println!("{:<34} {:>9} {:>9} {:>9}", "case", "p50 ms", "p99 ms", "max ms");
    for (name, v) in [
        ("cold compile: rename -> swapped", cold.0),
        ("cold compile: rename -> pass done", cold.1),
        ("from cache: rename -> swapped", warm.0),
        ("from cache: rename -> pass done", warm.1),
    ] {
        let (p50, p99, max) = summary(v);
        println!("{name:<34} {p50:>9.1} {p99:>9.1} {max:>9.1}");
    }
    println!(
        "where the compiled code came from: cold round {:?}, cache round {:?}",
        cold.2, warm.2
    );

    // 2. Restart to ready, real binary, cold and warm state directory, interleaved.
    let stems = [
        "age_tiering",
        "gfs",
        "size_budget",
        "bench_policy",
        "swap_v1",
        "swap_v2",
    ];
    let mut cold_ms = Vec::new();
    let mut warm_ms = Vec::new();
    for round in 0..restarts {
        let d = tempfile::tempdir()?;
        std::fs::create_dir(d.path().join("plugins"))?;
        write_tree(d.path(), 10);
        let run = nonce();
        let mut names = Vec::new();
        for i in 0..n_plugins {
            let stem = stems[i % stems.len()];
            let name = format!("p{i:02}");
            std::fs::write(
                d.path().join(format!("plugins/{name}.wasm")),
                variant(&example(stem)?, &format!("{run}-{round}-{i}")),
            )?;
            names.push(name);
        }
        let port = free_port();
        let cfg = d.path().join("retention.toml");
        // Datasets only for plugins that need no parameters; the others load with none.
        std::fs::write(
            &cfg,
            config_text(port, &[]).replace("[service]", "[service]\nhistory_passes = 100")
                + "[[dataset]]\nname = \"logs\"\nplugin = \"p00\"\n[dataset.directory]\nroot = \"logs\"\n",
        )?;
        for out in [&mut cold_ms, &mut warm_ms] {
            let t0 = Instant::now();
            let mut child = spawn_service(&cfg);
            rt.block_on(wait_ready(port, &mut child))?;
            out.push(t0.elapsed().as_secs_f64() * 1e3);
            stop(child);
        }
    }
    println!();
    println!("restart to ready: `retention serve` with {n_plugins} plugins, spawn -> /readyz 200, {restarts} rounds");
    println!("{:<34} {:>9} {:>9} {:>9}", "case", "p50 ms", "min ms", "max ms");
    for (name, v) in [
        ("cold (empty state dir)", cold_ms),
        ("warm (compiled code cached)", warm_ms),
    ] {
        let mut s = v.clone();
        s.sort_by(f64::total_cmp);
        println!(
            "{name:<34} {:>9.1} {:>9.1} {:>9.1}",
            percentile(&s, 0.5),
            s[0],
            s[s.len() - 1]
        );
    }

    // 3. Idle memory with the example plugins loaded, after one pass of each dataset.
    let d = tempfile::tempdir()?;
    std::fs::create_dir(d.path().join("plugins"))?;
    write_tree(d.path(), 200);
    for (stem, name) in [
        ("age_tiering", "age-tiering"),
        ("gfs", "gfs"),
        ("size_budget", "size-budget"),
    ] {
        std::fs::copy(
            plugins_built().join(format!("{stem}.wasm")),
            d.path().join(format!("plugins/{name}.wasm")),
        )?;
    }
    let port = free_port();
    let cfg = d.path().join("retention.toml");
    std::fs::write(
        &cfg,
        config_text(port, &["age-tiering", "gfs", "size-budget"])
            .replace("[service]", "[service]\napi_token = \"bench-token-0123456789\""),
    )?;
    let mut child = spawn_service(&cfg);
    rt.block_on(wait_ready(port, &mut child))?;
    rt.block_on(async {
        let c = reqwest::Client::new();
        for ds in ["ds-age-tiering", "ds-gfs", "ds-size-budget"] {
            let r = c
                .post(format!("http://127.0.0.1:{port}/v1/datasets/{ds}/passes?dry_run=true"))
                .bearer_auth("bench-token-0123456789")
                .send()
                .await?;
            anyhow::ensure!(r.status() == 200, "pass of {ds}: {}", r.status());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        anyhow::Ok(())
    })?;
    let rss = rss_kib(child.id());
    stop(child);
    println!();
    println!("idle service with the example plugins (age-tiering, gfs, size-budget) loaded, after a pass of each:");
    println!("resident memory: {:.1} MiB (target < 64 MiB)", rss as f64 / 1024.0);
    Ok(())
}
