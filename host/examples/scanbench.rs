// Temporary measurement, deleted after use.
use std::time::Instant;

use globset::{GlobBuilder, GlobSetBuilder};
use retention::config::{DirectoryConfig, TimeSource};
use retention::segment::{Action, Symbols};
use retention::store::dir::DirectoryStore;
use retention::store::{Store, Work};

fn globs(p: &[&str]) -> globset::GlobSet {
    let mut b = GlobSetBuilder::new();
    for p in p {
        b.add(GlobBuilder::new(p).literal_separator(true).build().unwrap());
    }
    b.build().unwrap()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args[1].as_str();
    let root = std::path::PathBuf::from(&args[2]);
    let labels = mode.ends_with("labels");
    let cfg = DirectoryConfig {
        root,
        include: globs(&["**"]),
        exclude: globs(&[]),
        labels: labels.then(|| regex::Regex::new(r"^(?P<service>[^/]+)/(?P<day>[0-9-]+)/").unwrap()),
        time: if labels {
            TimeSource::Label {
                name: "day".into(),
                format: "%Y-%m-%d".into(),
            }
        } else {
            TimeSource::Mtime
        },
        compression_level: 3,
        archive_url: None,
    };
    let store = DirectoryStore::open(cfg).await.unwrap();
    if mode.starts_with("scan") {
        for _ in 0..5 {
            let t = Instant::now();
            let mut sy = Symbols::new();
            if mode.contains("recover") {
                store.recover(false).await.unwrap();
            }
            let s = store.scan(&mut sy).await.unwrap();
            println!(
                "{mode} {} segments {} skipped in {:?}",
                s.segments.len(),
                s.skipped.len(),
                t.elapsed()
            );
        }
    } else {
        let par: usize = args[3].parse().unwrap();
        let mut sy = Symbols::new();
        let s = store.scan(&mut sy).await.unwrap();
        let work: Vec<Work> = s
            .segments
            .iter()
            .map(|s| Work {
                segment: s,
                action: Action::Compress,
            })
            .collect();
        let t = Instant::now();
        let group: usize = args.get(4).map_or(512, |g| g.parse().unwrap());
        let mut errors = 0;
        for chunk in work.chunks(group) {
            let r = store.apply(chunk, par, &|_| {}).await;
            errors += r.iter().filter(|r| r.is_err()).count();
        }
        println!(
            "compress {} ({} errors) in {:?} (groups of {group})",
            work.len(),
            errors,
            t.elapsed()
        );
    }
}
