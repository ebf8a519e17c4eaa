//! Prometheus metrics of the service, through `prometheus-client`; `GET /metrics` renders them.
//!
//! Every figure is counted where it happens (a pass ends, a plugin loads or fails), never recomputed from the state
//! database, so that scraping is cheap and cannot block a pass.

use std::sync::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::pass::report::PassReport;
use crate::plugin::{FailureKind, PluginMeta};

type Labels = Vec<(&'static str, String)>;

/// The service's metrics.
pub struct Metrics {
    registry: Registry,
    passes: Family<Labels, Counter>,
    pass_duration: Family<Labels, Histogram, fn() -> Histogram>,
    segments: Family<Labels, Counter>,
    bytes: Family<Labels, Counter>,
    ticks_skipped: Family<Labels, Counter>,
    plugin_loads: Family<Labels, Counter>,
    plugin_compiles: Family<Labels, Counter>,
    plugin_failures: Family<Labels, Counter>,
    plugin_info: Family<Labels, Gauge>,
    shadow_passes: Family<Labels, Counter>,
    /// The label set of each plugin's active version in `plugin_info`, to remove when it changes.
    active: Mutex<std::collections::HashMap<String, Labels>>,
}

fn duration_histogram() -> Histogram {
    // 10 ms to ~45 min.
    Histogram::new(exponential_buckets(0.01, 2.0, 19))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("retention");
        let m = Metrics {
            passes: Family::default(),
            pass_duration: Family::new_with_constructor(duration_histogram),
            segments: Family::default(),
            bytes: Family::default(),
            ticks_skipped: Family::default(),
            plugin_loads: Family::default(),
            plugin_compiles: Family::default(),
            plugin_failures: Family::default(),
            plugin_info: Family::default(),
            shadow_passes: Family::default(),
            active: Mutex::new(Default::default()),
            registry: Registry::default(),
        };
        registry.register(
            "passes",
            "Passes by dataset, status (ok, refused, failed, cancelled) and dry_run",
            m.passes.clone(),
        );
        registry.register(
            "pass_duration_seconds",
            "Wall-clock duration of passes by dataset",
            m.pass_duration.clone(),
        );
        registry.register(
            "segments",
            "Segments acted on by real passes, by dataset and action (keep, compress, archive, drop)",
            m.segments.clone(),
        );
        registry.register(
            "bytes",
            "Bytes of the segments acted on by real passes (before the action), by dataset and action",
            m.bytes.clone(),
        );
        registry.register(
            "ticks_skipped",
            "Scheduled ticks skipped because the dataset's previous pass was still running",
            m.ticks_skipped.clone(),
        );
        registry.register(
            "plugin_loads",
            "Plugin loads by plugin and outcome (loaded, rejected, removed, rolled-back; optimized: a version that served on baseline code now runs Cranelift's)",
            m.plugin_loads.clone(),
        );
        registry.register(
            "plugin_compiles",
            "Where loaded plugins' compiled code came from, by plugin and source (compiled, disk-cache, memory)",
            m.plugin_compiles.clone(),
        );
        registry.register(
            "plugin_failures",
            "Failed plugin calls by plugin and kind (timeout, memory, trap, invalid-output, refused)",
            m.plugin_failures.clone(),
        );
        registry.register(
            "plugin_info",
            "The active version of each plugin (value 1), with its name, version and digest",
            m.plugin_info.clone(),
        );
        registry.register(
            "shadow_passes",
            "Passes that ran a shadow plugin beside the active one, by dataset and outcome (ok, failed)",
            m.shadow_passes.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Counts a finished pass.
    pub fn pass_finished(&self, report: &PassReport, plugin_file: &str) {
        let ds = report.dataset.clone();
        self.passes
            .get_or_create(&vec![
                ("dataset", ds.clone()),
                ("status", report.status.as_str().to_string()),
                ("dry_run", report.dry_run.to_string()),
            ])
            .inc();
        self.pass_duration
            .get_or_create(&vec![("dataset", ds.clone())])
            .observe(report.duration_ms / 1e3);
        if let Some(kind) = report.failure_kind {
            self.plugin_failed(plugin_file, kind);
        }
        if report.dry_run {
            return;
        }
        let s = &report.stats;
        for (action, a) in [
            ("keep", s.kept),
            ("compress", s.compressed),
            ("archive", s.archived),
            ("drop", s.dropped),
        ] {
            if a.segments > 0 {
                let l = vec![("dataset", ds.clone()), ("action", action.to_string())];
                self.segments.get_or_create(&l).inc_by(a.segments);
                self.bytes.get_or_create(&l).inc_by(a.bytes);
            }
        }
    }

    /// Counts a pass that ran a shadow; `ok` when the shadow planned.
    pub fn shadow_pass(&self, dataset: &str, ok: bool) {
        self.shadow_passes
            .get_or_create(&vec![
                ("dataset", dataset.to_string()),
                ("outcome", if ok { "ok" } else { "failed" }.to_string()),
            ])
            .inc();
    }

    pub fn tick_skipped(&self, dataset: &str) {
        self.ticks_skipped
            .get_or_create(&vec![("dataset", dataset.to_string())])
            .inc();
    }

    /// Counts a plugin event (`loaded`, `rejected`, `removed`, `rolled-back`).
    pub fn plugin_event(&self, plugin: &str, outcome: &str) {
        self.plugin_loads
            .get_or_create(&vec![("plugin", plugin.to_string()), ("outcome", outcome.to_string())])
            .inc();
    }

    pub fn plugin_compiled(&self, plugin: &str, source: &str) {
        self.plugin_compiles
            .get_or_create(&vec![("plugin", plugin.to_string()), ("source", source.to_string())])
            .inc();
    }

    pub fn plugin_failed(&self, plugin: &str, kind: FailureKind) {
        self.plugin_failures
            .get_or_create(&vec![
                ("plugin", plugin.to_string()),
                ("kind", kind.as_str().to_string()),
            ])
            .inc();
    }

    /// Sets (or with `None`, clears) the active version of a plugin.
    pub fn plugin_active(&self, plugin: &str, meta: Option<&PluginMeta>) {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = active.remove(plugin) {
            self.plugin_info.remove(&old);
        }
        if let Some(m) = meta {
            let l = vec![
                ("plugin", plugin.to_string()),
                ("name", m.name.clone()),
                ("version", m.version.clone()),
                ("digest", m.digest.clone()),
            ];
            self.plugin_info.get_or_create(&l).set(1);
            active.insert(plugin.to_string(), l);
        }
    }

    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_swap_leaves_only_the_new_version_in_plugin_info() {
        let m = Metrics::new();
        let meta = |v: &str, d: &str| PluginMeta {
            name: "age-tiering".into(),
            version: v.into(),
            description: String::new(),
            digest: d.into(),
            size_bytes: 1,
            compile_ms: 1.0,
            cached: false,
            compiler: crate::plugin::Compiler::Cranelift,
            imports: vec![],
        };
        m.plugin_active("tiering", Some(&meta("0.1.0", "aaaa")));
        m.plugin_active("tiering", Some(&meta("0.2.0", "bbbb")));
        m.plugin_event("tiering", "loaded");
        let text = m.render();
        assert!(
            text.contains(
                "retention_plugin_info{plugin=\"tiering\",name=\"age-tiering\",version=\"0.2.0\",digest=\"bbbb\"} 1"
            ),
            "{text}"
        );
        assert!(!text.contains("aaaa"), "{text}");
        assert!(
            text.contains("retention_plugin_loads_total{plugin=\"tiering\",outcome=\"loaded\"} 1"),
            "{text}"
        );
        m.plugin_active("tiering", None);
        assert!(!m.render().contains("bbbb"));
    }
}
