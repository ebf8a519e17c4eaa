//! The directory store's tests: real files in temp dirs, real archives, real crashes of a child process.

mod actions;
mod boundary;
mod conformance;
mod crash;
mod recover;
mod scan;
mod trash;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use super::names::temp_parts;
use super::{DirectoryConfig, DirectoryStore, TimeSource, rel_join, split_rel};
use crate::segment::{Action, Segment, Symbols};
use crate::store::{Applied, ApplyOptions, Scan, Store, StoreError, TRASH_DIR, Trash, TrashEntry, Work};

const DAY: Duration = Duration::from_secs(86_400);

fn globs(patterns: &[&str]) -> GlobSet {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(GlobBuilder::new(p).literal_separator(true).build().unwrap());
    }
    b.build().unwrap()
}

/// A dataset root and an archive directory in a fresh temporary directory.
struct Fx {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    archive: PathBuf,
}

impl Fx {
    fn new() -> Fx {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("data");
        let archive = tmp.path().join("archive");
        std::fs::create_dir(&root).unwrap();
        std::fs::create_dir(&archive).unwrap();
        Fx {
            _tmp: tmp,
            root,
            archive,
        }
    }

    fn cfg(&self) -> DirectoryConfig {
        DirectoryConfig {
            root: self.root.clone(),
            include: globs(&["**"]),
            exclude: globs(&[]),
            labels: None,
            time: TimeSource::Mtime,
            compression_level: 3,
            archive_url: Some(url::Url::from_directory_path(&self.archive).unwrap()),
            trash_grace: DAY,
            excluded: Vec::new(),
            siblings: Vec::new(),
        }
    }

    async fn store(&self) -> DirectoryStore {
        DirectoryStore::open(self.cfg()).await.unwrap()
    }

    async fn store_with_grace(&self, grace: Duration) -> DirectoryStore {
        let mut cfg = self.cfg();
        cfg.trash_grace = grace;
        DirectoryStore::open(cfg).await.unwrap()
    }

    /// The files of the dataset's trash as `<batch>/<rel>`, then those of the archive's as
    /// `archive:<batch>/<rel>`.
    fn trash_files(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (base, tag) in [(&self.root, ""), (&self.archive, "archive:")] {
            let top = base.join(TRASH_DIR);
            let mut stack = vec![top.clone()];
            while let Some(d) = stack.pop() {
                let Ok(entries) = std::fs::read_dir(&d) else { continue };
                for e in entries {
                    let p = e.unwrap().path();
                    if p.is_dir() {
                        stack.push(p);
                    } else if d == top {
                        // The engine area's own files (the temporaries' key, state markers): no entries.
                    } else {
                        out.push(format!("{tag}{}", p.strip_prefix(&top).unwrap().to_str().unwrap()));
                    }
                }
            }
        }
        out.sort();
        out
    }

    fn write(&self, rel: &str, content: &[u8]) -> PathBuf {
        write_file(&self.root.join(rel), content)
    }

    /// Writes a file with a given mtime, in seconds since the epoch.
    fn write_at(&self, rel: &str, content: &[u8], secs: u64) -> PathBuf {
        let p = self.write(rel, content);
        set_mtime(&p, secs);
        p
    }

    fn exists(&self, rel: &str) -> bool {
        self.root.join(rel).exists()
    }

    fn archived(&self, rel: &str) -> Option<Vec<u8>> {
        std::fs::read(self.archive.join(rel)).ok()
    }

    /// Writes a temporary of `store` that becomes `target` (relative path), tagged as the store tags its own;
    /// returns its relative path.
    fn temp(&self, store: &DirectoryStore, target: &str, content: &[u8]) -> String {
        let key = store.inner.temp_key(true).unwrap().unwrap();
        let rel = rel_join(split_rel(target).0, &key.temp_name(target));
        self.write(&rel, content);
        rel
    }
}

fn write_file(p: &Path, content: &[u8]) -> PathBuf {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
    p.to_path_buf()
}

fn set_mtime(p: &Path, secs: u64) {
    let f = File::options().write(true).open(p).unwrap();
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap();
}

fn zst(content: &[u8]) -> Vec<u8> {
    zstd::encode_all(content, 3).unwrap()
}

fn unzst(content: &[u8]) -> Vec<u8> {
    zstd::decode_all(content).unwrap()
}

async fn scan(store: &DirectoryStore) -> (Scan, Symbols) {
    let mut symbols = Symbols::new();
    let (_, scan) = store.scan(false, &mut symbols).await.unwrap();
    (scan, symbols)
}

fn seg<'a>(scan: &'a Scan, name: &str) -> &'a Segment {
    scan.segments
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no segment {name} in {:?}", names(scan)))
}

fn names(scan: &Scan) -> Vec<String> {
    let mut n: Vec<_> = scan.segments.iter().map(|s| s.name.clone()).collect();
    n.sort();
    n
}

fn skipped<'a>(scan: &'a Scan, name: &str) -> &'a str {
    &scan
        .skipped
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("{name} not skipped: {:?}", scan.skipped))
        .reason
}

async fn apply(store: &DirectoryStore, plan: &[(&Segment, Action)]) -> Vec<Result<Applied, StoreError>> {
    let work: Vec<Work<'_>> = plan.iter().map(|&(segment, action)| Work { segment, action }).collect();
    let done = AtomicUsize::new(0);
    let progress = |n: u64| {
        done.fetch_add(n as usize, Ordering::Relaxed);
    };
    // The pass's now: the clock, but never twice the same millisecond (two applies in a row are two passes).
    static LAST: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let clock = chrono::Utc::now().timestamp_millis();
    let now_ms = clock.max(LAST.fetch_max(clock, Ordering::Relaxed) + 1);
    LAST.fetch_max(now_ms, Ordering::Relaxed);
    let opts = ApplyOptions {
        parallelism: 2,
        now_ms,
        progress: &progress,
        cancel: None,
    };
    let results = store.apply(&work, &opts).await;
    assert_eq!(
        done.load(Ordering::Relaxed),
        plan.len(),
        "progress counts every action once"
    );
    results
        .into_iter()
        .map(|r| r.expect("without a cancellation every action has a result"))
        .collect()
}

/// Purges what a pass at `now_ms` would (without holds): the entries expired by then.
async fn purge_expired(store: &DirectoryStore, now_ms: i64) -> Result<Vec<TrashEntry>, StoreError> {
    let due: Vec<TrashEntry> = store
        .list()
        .await?
        .into_iter()
        .filter(|e| e.expires_at_ms <= now_ms)
        .collect();
    store.purge(&due).await
}

async fn apply1(store: &DirectoryStore, seg: &Segment, action: Action) -> Result<Applied, StoreError> {
    apply(store, &[(seg, action)]).await.pop().unwrap()
}
