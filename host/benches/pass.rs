//! Whole passes with the real binary, beside the shell tools a user would use instead, in one run:
//! - a dry-run pass over a tree of 200,000 files (plan printed to /dev/null) against
//!   `find ROOT -type f -printf '%s %T@ %p\n' > /dev/null` on the same tree (target: at most 1.5x find's time);
//! - compressing the same files with a real pass (`age_tiering`, `compress_after_days = 0`) against the `zstd` command
//!   line at the same level and thread count (target: at least 0.9x its throughput), with the same command followed
//!   by `sync` for information (ours makes every compressed file durable before removing its source).
//!
//! Run: `cargo build --release --target wasm32-wasip2 --manifest-path guest-plugins/Cargo.toml &&
//!       cargo bench --bench pass` (see BENCHMARKS.md). Options: `-- --files N --reps N --compress-reps N --dir DIR`;
//! `--baseline BIN` times another `retention` binary's dry run beside ours in the same turns (a build of an earlier
//! commit, for before/after figures); `--compress-reps 0` skips the compression part.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const LEVEL: i32 = 3;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let files: usize = arg("--files").map_or(200_000, |v| v.parse().expect("a number"));
    let reps: usize = arg("--reps").map_or(5, |v| v.parse().expect("a number"));
    let compress_reps: usize = arg("--compress-reps").map_or(3, |v| v.parse().expect("a number"));
    let base = PathBuf::from(arg("--dir").unwrap_or_else(|| std::env::temp_dir().display().to_string()));
    let baseline = arg("--baseline").map(PathBuf::from);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let plugins = repo.join("guest-plugins/target/wasm32-wasip2/release");
    anyhow::ensure!(
        plugins.join("age_tiering.wasm").is_file(),
        "build the guest plugins first (see BENCHMARKS.md)"
    );
    let bin = env!("CARGO_BIN_EXE_retention");
    let work = tempfile::Builder::new().prefix("retention-bench-").tempdir_in(&base)?;
    let pristine = work.path().join("pristine");
    let t = Instant::now();
    let bytes = generate(&pristine, files)?;
    println!(
        "tree: {files} files, {:.1} MiB, generated in {:.1} s under {}",
        bytes as f64 / (1 << 20) as f64,
        t.elapsed().as_secs_f64(),
        work.path().display()
    );

    // ---- dry run against find -------------------------------------------------------------------------------------
    let config = write_config(
        work.path(),
        "dry",
        &pristine,
        &plugins,
        "compress_after_days = 1, drop_after_days = 30",
        1,
    )?;
    // Warm the page cache and the compiled-plugin cache, as a user's second run would have them.
    sh(Command::new("find")
        .arg(&pristine)
        .args(["-type", "f"])
        .stdout(Stdio::null()))?;
    let dry_run = |bin: &Path| {
        sh(Command::new(bin)
            .args(["run", "--dry-run", "--config"])
            .arg(&config)
            .stdout(Stdio::null()))
    };
    dry_run(Path::new(bin))?;
    if let Some(b) = &baseline {
        dry_run(b)?;
    }
    // Alternate the contenders so that all see the same machine state; keep each one's best.
    let (mut find, mut dry, mut before) = (f64::MAX, f64::MAX, f64::MAX);
    for _ in 0..reps {
        find = find.min(best(1, || {
            sh(Command::new("find")
                .arg(&pristine)
                .args(["-type", "f", "-printf", "%s %T@ %p\\n"])
                .stdout(Stdio::null()))
        })?);
        if let Some(b) = &baseline {
            before = before.min(best(1, || dry_run(b))?);
        }
        dry = dry.min(best(1, || dry_run(Path::new(bin)))?);
    }
    println!();
    println!(
        "{:<58} {:>10} {:>10}",
        "dry run over the tree (best of reps)", "seconds", "vs find"
    );
    println!(
        "{:<58} {:>10.3} {:>9.2}x",
        "find -type f -printf '%s %T@ %p\\n' > /dev/null", find, 1.0
    );
    if let Some(b) = &baseline {
        println!(
            "{:<58} {:>10.3} {:>9.2}x",
            format!("baseline {} --dry-run", b.display()),
            before,
            before / find
        );
    }
    println!(
        "{:<58} {:>10.3} {:>9.2}x",
        "retention run --dry-run > /dev/null (target <= 1.5x)",
        dry,
        dry / find
    );
    if compress_reps == 0 {
        return Ok(());
    }

    // ---- compression against the zstd CLI -------------------------------------------------------------------------
    println!();
    println!(
        "{:<58} {:>10} {:>10} {:>10}",
        "compress every file, level 3", "seconds", "MiB/s", "vs zstd"
    );
    // The contenders take turns within each repetition (zstd, zstd then sync, ours at 1 thread, ours at 2): the
    // filesystem's own write-back makes single runs vary a lot, and turns spread that over all of them. Each keeps its
    // best time. The target compares against plain zstd; the `&& sync` row, which waits for zstd's output to reach
    // the disk as ours does, is for information.
    //
    // Every timed run starts from the same history: the previous run's tree deleted, a fresh copy, `sync`. On ext4
    // without a journal (as on the machine of BENCHMARKS.md) deleting 100,000s of files makes the next minute's file
    // creations slower (the allocator skips recently deleted inodes), so without an untimed run first, the first
    // contender of round 1 (zstd) would be the only one to start on an untouched filesystem.
    let mut runs: Vec<(String, Option<usize>, &Path)> = vec![
        ("find | xargs zstd -q -3 -T1 --rm".into(), None, Path::new(bin)),
        (
            "find | xargs zstd -q -3 -T1 --rm && sync (information)".into(),
            Some(0),
            Path::new(bin),
        ),
        (
            "retention run (compress, apply_parallelism = 1)".into(),
            Some(1),
            Path::new(bin),
        ),
        (
            "retention run (compress, apply_parallelism = 2)".into(),
            Some(2),
            Path::new(bin),
        ),
    ];
    if let Some(b) = &baseline {
        runs.push((
            "baseline (compress, apply_parallelism = 1)".into(),
            Some(1),
            b.as_path(),
        ));
    }
    let mut best_of = vec![f64::MAX; runs.len()];
    let zstd = |tree: &Path, then: &str| {
        // zstd compresses the files one after another; -T1 is the thread count of apply_parallelism = 1.
        sh(Command::new("sh").arg("-c").arg(format!(
            "find '{}' -type f -print0 | xargs -0 zstd -q -{LEVEL} -T1 --rm{then}",
            tree.display()
        )))
    };
    zstd(&fresh_copy(&pristine, &work.path().join("tree"))?, "")?;
    for _ in 0..compress_reps {
        for (k, (_, parallelism, which)) in runs.iter().enumerate() {
            let tree = fresh_copy(&pristine, &work.path().join("tree"))?;
            let t = Instant::now();
            match parallelism {
                None => zstd(&tree, "")?,
                Some(0) => zstd(&tree, " && sync")?,
                Some(p) => {
                    let config = write_config(work.path(), "compress", &tree, &plugins, "compress_after_days = 0", *p)?;
                    sh(Command::new(which)
                        .args(["run", "--config"])
                        .arg(&config)
                        .stdout(Stdio::null()))?;
                }
            }
            best_of[k] = best_of[k].min(t.elapsed().as_secs_f64());
            let left = count_files(&tree, "log")?;
            anyhow::ensure!(left == 0, "{left} files were not compressed");
        }
    }
    let rate = |s: f64| bytes as f64 / (1 << 20) as f64 / s;
    for (k, (label, _, _)) in runs.iter().enumerate() {
        println!(
            "{:<58} {:>10.3} {:>10.1} {:>9.2}x",
            label,
            best_of[k],
            rate(best_of[k]),
            best_of[0] / best_of[k]
        );
    }
    println!(
        "\n(throughput ratio = zstd's time / ours; target >= 0.9 at the same thread count, apply_parallelism = 1)"
    );
    Ok(())
}

fn best(reps: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let mut best = f64::MAX;
    for _ in 0..reps {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

fn sh(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd.status()?;
    anyhow::ensure!(status.success(), "{cmd:?} failed: {status}");
    Ok(())
}

/// `<service>/<level>-<date>-<n>.log`: 100 services, 3 levels, dates over 60 days; log lines of 1 to 6 KiB per file.
fn generate(root: &Path, files: usize) -> anyhow::Result<u64> {
    use std::io::Write;
    let levels = ["debug", "info", "error"];
    let mut bytes = 0;
    for i in 0..files {
        let service = format!("svc-{:02}", i % 100);
        let dir = root.join(&service);
        if i < 100 {
            std::fs::create_dir_all(&dir)?;
        }
        let day = (i / 300) % 60;
        let date = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + chrono::Duration::days(day as i64);
        let level = levels[i % 3];
        let path = dir.join(format!("{level}-{date}-{i:06}.log"));
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
        let lines = 10 + (i * 7919) % 50;
        for l in 0..lines {
            let n = writeln!(
                f,
                "{date}T{:02}:{:02}:{:02}Z {level} {service} request_id={:016x} user={} status={} latency_ms={} \
                 path=/api/v1/items/{}",
                l % 24,
                (l * 7) % 60,
                (l * 13) % 60,
                (i as u64) << 20 | l as u64,
                (i * 31 + l) % 977,
                [200, 200, 200, 404, 500][l % 5],
                (i + l * 17) % 900,
                (i * l) % 10_000
            );
            n?;
        }
        f.flush()?;
        bytes += f.get_ref().metadata()?.len();
    }
    Ok(bytes)
}

fn fresh_copy(pristine: &Path, to: &Path) -> anyhow::Result<PathBuf> {
    if to.exists() {
        std::fs::remove_dir_all(to)?;
    }
    sh(Command::new("cp").arg("-a").arg(pristine).arg(to))?;
    // Let the copy's writeback settle so that neither contender pays for it.
    sh(&mut Command::new("sync"))?;
    Ok(to.to_path_buf())
}

fn count_files(root: &Path, ext: &str) -> anyhow::Result<usize> {
    let out = Command::new("find")
        .arg(root)
        .args(["-type", "f", "-name"])
        .arg(format!("*.{ext}"))
        .output()?;
    Ok(out.stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count())
}

fn write_config(
    dir: &Path,
    name: &str,
    root: &Path,
    plugins: &Path,
    params: &str,
    parallelism: usize,
) -> anyhow::Result<PathBuf> {
    let text = format!(
        r#"plugin_dir = "{plugins}"
[[dataset]]
name = "bench"
plugin = "age_tiering"
params = {{ {params} }}
apply_parallelism = {parallelism}
[dataset.directory]
root = "{root}"
labels = '^(?P<service>[^/]+)/(?P<level>\w+)-(?P<date>\d{{4}}-\d{{2}}-\d{{2}})-\d+\.log$'
time = "label:date"
compression_level = {LEVEL}
# Drops delete, as when BENCHMARKS.md's figures were measured (by default they would move to the trash).
trash_grace_secs = 0
[dataset.guard]
max_drop_bytes_fraction = 1.0
max_drop_segments_fraction = 1.0
keep_newest = 0
min_drop_age_secs = 0
"#,
        plugins = plugins.display(),
        root = root.display()
    );
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, text)?;
    Ok(p)
}
