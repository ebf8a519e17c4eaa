//! `retention demo`: the first thing a new user runs. Generates a sample log tree (`<service>/<level>-<date>.log` over
//! the last 45 days), writes a config for the embedded default store (a directory, with a `file://` archive) using the
//! `age_tiering` example plugin, then runs a dry run and a real pass, printing both reports.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{Duration, Utc};

use super::UsageError;
use crate::config::Config;

const SERVICES: [&str; 3] = ["api", "billing", "audit"];
const LEVELS: [&str; 3] = ["debug", "info", "error"];
const DAYS: i64 = 45;

/// The demo's configuration; `{plugin_dir}` is filled in.
const CONFIG: &str = r#"# Written by `retention demo`. Paths are relative to this file.
plugin_dir = "{plugin_dir}"

[runtime]
memory_limit_mib = 64
call_timeout_ms = 2000

[[dataset]]
name = "app-logs"
plugin = "age_tiering"
# Compress after a day, archive after two weeks, drop after 30 days; debug logs go after a week; audit logs are
# never dropped.
params = { compress_after_days = 1, archive_after_days = 14, drop_after_days = 30, override.level.debug.drop_after_days = 7, override.service.audit.drop_after_days = "never" }

[dataset.directory]
root = "logs"
include = ["**/*.log"]
labels = '^(?P<service>[^/]+)/(?P<level>\w+)-(?P<date>\d{4}-\d{2}-\d{2})\.log$'
time = "label:date"
compression_level = 3
archive_url = "file://{archive}"

[dataset.guard]
# The demo's first pass catches up on 45 days at once; a real deployment keeps the protective default (0.5).
max_drop_bytes_fraction = 0.9
"#;

/// Generates the demo tree under `dir` and runs a dry run, then a real pass.
pub async fn run(dir: &Path, plugin_dir: &Path) -> anyhow::Result<i32> {
    let plugin = plugin_dir.join("age_tiering.wasm");
    if !plugin.is_file() {
        return Err(UsageError(format!(
            "no example plugin at {}: build the plugins first (see README: `cargo build --release --target \
             wasm32-wasip2 --manifest-path guest-plugins/Cargo.toml`)",
            plugin.display()
        ))
        .into());
    }
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        return Err(UsageError(format!(
            "{} exists and is not empty: remove it or pass --dir",
            dir.display()
        ))
        .into());
    }
    let files = generate_tree(&dir.join("logs"))?;
    let archive = dir.join("archive");
    std::fs::create_dir_all(&archive)?;
    let archive = std::fs::canonicalize(&archive)?;
    let plugin_dir = std::fs::canonicalize(plugin_dir)?;
    let config_path = dir.join("retention.toml");
    let text = CONFIG
        .replace("{plugin_dir}", &toml_escape(&plugin_dir))
        .replace("{archive}", &toml_escape(&archive));
    std::fs::write(&config_path, text).with_context(|| format!("write {}", config_path.display()))?;
    let config = Config::load(&config_path).map_err(|e| UsageError(e.to_string()))?;

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Generated {files} log files under {} and the config {}.\n\n== Dry run: the plan, nothing touched ==",
        dir.join("logs").display(),
        config_path.display()
    )?;
    drop(out);
    let code = super::run_datasets(
        &config,
        &config.datasets,
        &super::RunHow {
            dry_run: true,
            ..Default::default()
        },
    )
    .await?;
    if code != 0 {
        return Ok(code);
    }
    println!("\n== Real pass: compress, archive and drop ==");
    let code = super::run_datasets(&config, &config.datasets, &super::RunHow::default()).await?;
    let bin = std::env::current_exe().map_or_else(|_| "retention".into(), |p| p.display().to_string());
    println!(
        "\nTry it yourself: {bin} run --config {} --dry-run",
        config_path.display()
    );
    Ok(code)
}

fn toml_escape(p: &Path) -> String {
    p.display().to_string().replace('\\', "\\\\").replace('"', "\\\"")
}

/// Writes `<service>/<level>-<date>.log` files for the last `DAYS` days; returns how many.
fn generate_tree(root: &Path) -> anyhow::Result<usize> {
    let today = Utc::now().date_naive();
    let mut n = 0;
    for service in SERVICES {
        let dir: PathBuf = root.join(service);
        std::fs::create_dir_all(&dir)?;
        for level in LEVELS {
            for day in 0..DAYS {
                let date = today - Duration::days(day);
                let path = dir.join(format!("{level}-{date}.log"));
                let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
                // Debug logs are chatty, errors rare: sizes differ as they would.
                let lines = match level {
                    "debug" => 400,
                    "info" => 120,
                    _ => 15,
                };
                for i in 0..lines {
                    writeln!(
                        f,
                        "{date}T{:02}:{:02}:{:02}Z {level:<5} {service} request_id={:08x} status=200 \
                         latency_ms={} msg=\"handled request\"",
                        (i / 60) % 24,
                        i % 60,
                        (i * 7) % 60,
                        (day as u64) << 16 | i as u64,
                        (i * 37) % 500
                    )?;
                }
                f.flush()?;
                n += 1;
            }
        }
    }
    Ok(n)
}
