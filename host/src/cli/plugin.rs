//! `retention plugin check` and `retention plugin test`: a plugin author's tools over a built component.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::{TestArgs, UsageError};
use crate::config::RuntimeConfig;
use crate::plugin::{PassInput, PluginError, PluginMeta, Runtime};
use crate::segment::{Segment, Symbols, Tier};

#[derive(Serialize)]
struct CheckOutput<'a> {
    file: String,
    world: &'static str,
    #[serde(flatten)]
    meta: &'a PluginMeta,
}

/// What `--json` prints when the plugin cannot be loaded or a call fails: always JSON, never nothing.
#[derive(Serialize)]
struct ErrorOutput {
    file: String,
    error: ErrorBody,
}

#[derive(Serialize)]
struct ErrorBody {
    message: String,
    /// `timeout`, `memory`, `trap`, `invalid-output` or `refused` for a failed call; absent for a load error.
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<crate::plugin::FailureKind>,
}

/// Reports a failure on stderr and, with `--json`, as JSON on stdout; exit code 1.
fn failed(file: &Path, json: bool, e: &PluginError) -> anyhow::Result<i32> {
    eprintln!("error: {e}");
    if json {
        let out = ErrorOutput {
            file: file.display().to_string(),
            error: ErrorBody {
                message: e.to_string(),
                kind: e.kind(),
            },
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(1)
}

/// The runtime of `plugin check` and `plugin test`: the defaults of a config, with the memory cap given.
fn runtime(memory_limit_mib: u64) -> anyhow::Result<Arc<Runtime>> {
    let limits = RuntimeConfig {
        memory_limit_bytes: (memory_limit_mib as usize) << 20,
        ..RuntimeConfig::default()
    };
    Runtime::new(limits)
}

pub(super) fn check(file: &Path, json: bool, memory_limit_mib: u64) -> anyhow::Result<i32> {
    let runtime = runtime(memory_limit_mib)?;
    // For an answer now: cached code, or the baseline compiler's for a large plugin (about a second for 20 MB
    // instead of 5 to 10).
    let plugin = match runtime.load_file_quick(file) {
        Ok(p) => p,
        Err(e) => return failed(file, json, &e),
    };
    let m = &plugin.meta;
    if json {
        let out = CheckOutput {
            file: file.display().to_string(),
            world: crate::plugin::WORLD,
            meta: m,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("{}: a plugin of world {}", file.display(), crate::plugin::WORLD);
        println!("  name:        {}", m.name);
        println!("  version:     {}", m.version);
        println!("  description: {}", crate::pass::report::escaped(&m.description));
        println!("  digest:      sha256:{}", m.digest);
        println!("  size:        {} bytes", m.size_bytes);
        let how = if m.cached {
            " (compiled code from the cache)".to_string()
        } else {
            format!(" ({})", m.compiler.as_str())
        };
        println!("  compile:     {:.1} ms{how}", m.compile_ms);
        println!("  imports:");
        for i in &m.imports {
            println!("    {i}");
        }
    }
    Ok(0)
}

/// One segment of a `plugin test` fixture.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureSegment {
    name: String,
    /// End of the time range (RFC 3339).
    time: DateTime<chrono::FixedOffset>,
    /// Start of the time range (RFC 3339); defaults to `time`.
    start: Option<DateTime<chrono::FixedOffset>>,
    #[serde(default = "hot")]
    tier: FixtureTier,
    #[serde(default)]
    bytes: u64,
    rows: Option<u64>,
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum FixtureTier {
    Hot,
    Compressed,
    Archived,
}

fn hot() -> FixtureTier {
    FixtureTier::Hot
}

#[derive(Serialize)]
struct TestDecision {
    name: String,
    tier: Tier,
    action: crate::segment::Action,
    reason: Option<String>,
}

#[derive(Serialize)]
struct TestOutput<'a> {
    plugin: TestPlugin<'a>,
    decisions: Vec<TestDecision>,
    log: Vec<crate::plugin::LogLine>,
}

#[derive(Serialize)]
struct TestPlugin<'a> {
    name: &'a str,
    version: &'a str,
    description: &'a str,
    digest: &'a str,
}

pub(super) fn test(args: TestArgs) -> anyhow::Result<i32> {
    let (json, file) = (args.json, args.file.clone());
    let r = run_test(args);
    if json && let Err(e) = &r {
        // A bad fixture or an unreadable file: with `--json`, still JSON (the message also goes to stderr).
        let out = ErrorOutput {
            file: file.display().to_string(),
            error: ErrorBody {
                message: format!("{e:#}"),
                kind: None,
            },
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    r
}

fn run_test(args: TestArgs) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(&args.segments)
        .with_context(|| format!("cannot read segments file {}", args.segments.display()))?;
    let fixture: Vec<FixtureSegment> = serde_json::from_str(&text)
        .map_err(|e| UsageError(format!("invalid segments file {}: {e}", args.segments.display())))?;
    let mut symbols = Symbols::new();
    let mut segments: Vec<(usize, Segment)> = Vec::with_capacity(fixture.len());
    for (i, f) in fixture.into_iter().enumerate() {
        let end_ms = f.time.timestamp_millis();
        let mut labels: crate::segment::Labels = f
            .labels
            .iter()
            .map(|(k, v)| (symbols.intern(k), symbols.intern(v)))
            .collect();
        labels.sort_unstable();
        segments.push((
            i,
            Segment {
                locator: f.name.clone(),
                name: f.name,
                tier: match f.tier {
                    FixtureTier::Hot => Tier::Hot,
                    FixtureTier::Compressed => Tier::Compressed,
                    FixtureTier::Archived => Tier::Archived,
                },
                start_ms: f.start.map_or(end_ms, |s| s.timestamp_millis()),
                end_ms,
                rows: f.rows,
                bytes: f.bytes,
                labels,
                token: Default::default(),
            },
        ));
    }
    if let Some(dup) = duplicate_name(segments.iter().map(|(_, s)| s.name.as_str())) {
        bail!(UsageError(format!(
            "segment name {dup:?} appears twice in {}",
            args.segments.display()
        )));
    }
    // The contract promises oldest first; remember each segment's place in the fixture to answer in its order.
    segments.sort_by(|(_, a), (_, b)| a.end_ms.cmp(&b.end_ms).then_with(|| a.name.cmp(&b.name)));
    let order: Vec<usize> = segments.iter().map(|(i, _)| *i).collect();
    let segments: Arc<Vec<Segment>> = Arc::new(segments.into_iter().map(|(_, s)| s).collect());

    let runtime = runtime(args.memory_limit_mib)?;
    let plugin = match runtime.load_file_quick(&args.file) {
        Ok(p) => p,
        Err(e) => return failed(&args.file, args.json, &e),
    };
    let now = args.now.unwrap_or_else(Utc::now);
    let mut params = args.params.clone();
    params.sort();
    let input = PassInput {
        pass_id: "test",
        dataset: &args.dataset,
        now_ms: now.timestamp_millis(),
        dry_run: true,
        params: &params,
    };
    let plan = match plugin.plan(input, segments.clone(), &symbols) {
        Ok(p) => p,
        Err(e) => return failed(&args.file, args.json, &e),
    };
    let mut decisions: Vec<Option<TestDecision>> = (0..segments.len()).map(|_| None).collect();
    for ((seg, d), &i) in segments.iter().zip(&plan.decisions).zip(&order) {
        decisions[i] = Some(TestDecision {
            name: seg.name.clone(),
            tier: seg.tier,
            action: d.action,
            reason: plan.reasons.of(d).map(str::to_string),
        });
    }
    let decisions: Vec<TestDecision> = decisions
        .into_iter()
        .map(|d| d.expect("every segment decided"))
        .collect();
    let m = &plugin.meta;
    if args.json {
        let out = TestOutput {
            plugin: TestPlugin {
                name: &m.name,
                version: &m.version,
                description: &m.description,
                digest: &m.digest,
            },
            decisions,
            log: plan.log,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        writeln!(
            out,
            "plugin {} {} (sha256 {}), now {}",
            m.name,
            m.version,
            &m.digest[..12],
            now.to_rfc3339_opts(SecondsFormat::Secs, true)
        )?;
        let width = decisions.iter().map(|d| d.name.len()).max().unwrap_or(0).clamp(7, 60);
        writeln!(out, "  {:<8} {:<10} {:<width$}  REASON", "ACTION", "TIER", "SEGMENT")?;
        for d in &decisions {
            writeln!(
                out,
                "  {:<8} {:<10} {:<width$}  {}",
                d.action.as_str(),
                d.tier.as_str(),
                crate::pass::report::escaped(&d.name),
                crate::pass::report::escaped(d.reason.as_deref().unwrap_or("-"))
            )?;
        }
        for l in &plan.log {
            writeln!(
                out,
                "  plugin {}: {}",
                l.level,
                crate::pass::report::escaped(&l.message)
            )?;
        }
    }
    Ok(0)
}

fn duplicate_name<'a>(names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let mut seen = std::collections::HashSet::new();
    names.into_iter().find(|n| !seen.insert(*n))
}
