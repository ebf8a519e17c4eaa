//! Crash safety: every injected failure and every crash of a child process at each point keeps every file whole in
//! one visible place, and recovery settles it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::segment::Action;
use crate::store::dir::{CRASH_POINTS, WHOLE_FILE, ZST, logical};
use crate::store::{Store, StoreError, TRASH_DIR, Trash, TrashEntry};

// crash safety -------------------------------------------------------------------------------------------

/// A tree exercising every action: `c/` is compressed, `a/` (hot) and `z/` (compressed) archived, `d/` (hot),
/// `e/` (compressed) and the archived `x/` dropped. Returns each segment's original content.
fn crash_tree(root: &Path, archive: &Path) -> HashMap<String, Vec<u8>> {
    let mut originals = HashMap::new();
    for i in 0..4 {
        let content = format!("line of file {i}\n").repeat(100 + i * 50).into_bytes();
        for dir in ["c", "a", "d"] {
            let name = format!("{dir}/{i}.log");
            write_file(&root.join(&name), &content);
            originals.insert(name, content.clone());
        }
        for dir in ["z", "e"] {
            let name = format!("{dir}/{i}.log");
            write_file(&root.join(format!("{name}.zst")), &zst(&content));
            originals.insert(name, content.clone());
        }
        let name = format!("x/{i}.log");
        write_file(&archive.join(&name), &content);
        originals.insert(name, content);
    }
    // One file large enough to be compressed as a stream.
    let big: Vec<u8> = (0..WHOLE_FILE + 100_000).map(|i| (i % 241) as u8).collect();
    write_file(&root.join("c/big.log"), &big);
    originals.insert("c/big.log".into(), big);
    originals
}

fn plan_action(name: &str) -> Action {
    match &name[..1] {
        "c" => Action::Compress,
        "a" | "z" => Action::Archive,
        _ => Action::Drop,
    }
}

/// Scans and applies the plan of [`crash_tree`] to the segments it still concerns (as a plugin would decide).
async fn run_crash_plan(store: &DirectoryStore) -> Vec<Result<Applied, StoreError>> {
    let (s, _) = scan(store).await;
    let plan: Vec<(&Segment, Action)> = s
        .segments
        .iter()
        .map(|s| (s, plan_action(&s.name)))
        .filter(|(s, a)| a.allowed_from(s.tier) && a.tier_after(s.tier) != Some(s.tier))
        .collect();
    apply(store, &plan).await
}

/// A copy of a segment: name, place (`hot`, `compressed`, `archived` or `trash`) and content (decompressed).
pub(super) type VisibleCopy = (String, &'static str, Vec<u8>);

/// Every copy, visible or in the trash: `(name, place, content)`, content decompressed. Panics on a partial copy.
pub(super) fn visible_copies(root: &Path, archive: &Path) -> (Vec<VisibleCopy>, Vec<PathBuf>) {
    let mut copies = Vec::new();
    let mut temps = Vec::new();
    for (base, archived) in [(root, false), (archive, true)] {
        let mut stack = vec![base.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                    continue;
                }
                let file_name = p.file_name().unwrap().to_str().unwrap();
                let staging = archived
                    && file_name
                        .rsplit_once('#')
                        .is_some_and(|(_, d)| d.bytes().all(|b| b.is_ascii_digit()));
                if temp_parts(file_name).is_some() || staging {
                    temps.push(p);
                    continue;
                }
                let mut rel = p.strip_prefix(base).unwrap().to_str().unwrap().to_string();
                if p.parent() == Some(&base.join(TRASH_DIR)) {
                    // The engine area's own files (the temporaries' key): no copies of anything.
                    continue;
                }
                // `.retention-trash/<batch>/<rel>`
                let trashed = rel.starts_with(&format!("{TRASH_DIR}/"));
                if trashed {
                    rel = rel.splitn(3, '/').nth(2).unwrap().to_string();
                }
                let raw = std::fs::read(&p).unwrap();
                let content = if rel.ends_with(ZST) {
                    zstd::decode_all(&raw[..])
                        .unwrap_or_else(|e| panic!("visible {} is not a complete zstd file: {e}", p.display()))
                } else {
                    raw
                };
                let place = match (archived, trashed, rel.ends_with(ZST)) {
                    (_, true, _) => "trash",
                    (true, false, _) => "archived",
                    (false, false, true) => "compressed",
                    (false, false, false) => "hot",
                };
                copies.push((logical(&rel).to_string(), place, content));
            }
        }
    }
    (copies, temps)
}

/// The invariant: every visible name (and every trash entry) holds the complete original content, and every
/// segment that was not dropped is visible somewhere; a dropped one too (in its place or in a trash) unless
/// `drops_may_be_gone` (no grace, or purged). With `settled`, also: no temporaries and exactly one copy of each.
fn check_invariant(
    root: &Path,
    archive: &Path,
    originals: &HashMap<String, Vec<u8>>,
    settled: bool,
    drops_may_be_gone: bool,
    context: &str,
) {
    let (copies, temps) = visible_copies(root, archive);
    let mut count: HashMap<&str, usize> = HashMap::new();
    for (name, tier, content) in &copies {
        let original = originals
            .get(name)
            .unwrap_or_else(|| panic!("{context}: unexpected visible {name}"));
        assert!(
            content == original,
            "{context}: the {tier} copy of {name} is not the original content"
        );
        *count.entry(name).or_default() += 1;
    }
    for name in originals.keys() {
        let n = count.get(name.as_str()).copied().unwrap_or(0);
        if plan_action(name) != Action::Drop || !drops_may_be_gone {
            assert!(n >= 1, "{context}: {name} is visible nowhere");
        }
        if settled {
            assert!(n <= 1, "{context}: {name} has {n} copies after recovery");
        }
    }
    if settled {
        assert!(
            temps.is_empty(),
            "{context}: temporaries left after recovery: {temps:?}"
        );
    }
}

/// Every crash point with the default grace, but the drop points, which only a drop without grace (deleting at
/// once) reaches.
fn crash_cases() -> impl Iterator<Item = (&'static str, Duration)> {
    CRASH_POINTS.iter().map(|p| {
        let grace = if p.starts_with("drop:") { Duration::ZERO } else { DAY };
        (*p, grace)
    })
}

/// Restores every trashed segment; one result each.
async fn restore_all(store: &DirectoryStore) -> Vec<Result<TrashEntry, StoreError>> {
    let mut out = Vec::new();
    for e in store.list().await.unwrap() {
        out.push(store.restore(&e.name).await);
    }
    out
}

#[tokio::test]
async fn every_injected_failure_leaves_each_file_whole_in_one_visible_place_after_recovery() {
    for (point, grace) in crash_cases().filter(|(p, _)| !p.starts_with("recover:")) {
        let context = &format!("{point} (grace {grace:?})");
        let fx = Fx::new();
        let originals = crash_tree(&fx.root, &fx.archive);
        let store = fx.store_with_grace(grace).await;
        let purging = point.starts_with("purge:");
        if purging || point.starts_with("restore:") {
            // Purges and restores work on what a pass put in the trash.
            let applied = run_crash_plan(&store).await;
            assert!(applied.iter().all(|r| r.is_ok()), "{context}: {applied:?}");
        }
        let failed = {
            let _fail = crate::crashpoint::fail_under(&fx.root, point);
            if purging {
                vec![purge_expired(&store, i64::MAX).await.map(|_| ())]
            } else if point.starts_with("restore:") {
                restore_all(&store).await.into_iter().map(|r| r.map(|_| ())).collect()
            } else {
                run_crash_plan(&store)
                    .await
                    .into_iter()
                    .map(|r| r.map(|_| ()))
                    .collect()
            }
        };
        assert!(
            failed.iter().any(|r| r.is_err()),
            "{context}: the injected failure was never reached"
        );
        let gone = grace.is_zero() || purging;
        check_invariant(&fx.root, &fx.archive, &originals, false, gone, context);
        store.recover(true).await.unwrap();
        check_invariant(&fx.root, &fx.archive, &originals, true, gone, context);
        // The failed steps can be retried to completion.
        if purging {
            purge_expired(&store, i64::MAX).await.unwrap();
            assert!(fx.trash_files().is_empty(), "{context}: {:?}", fx.trash_files());
        } else if point.starts_with("restore:") {
            let retried = restore_all(&store).await;
            assert!(
                retried.iter().all(|r| r.is_ok()),
                "{context}: retry failed: {retried:?}"
            );
            assert!(fx.trash_files().is_empty(), "{context}: {:?}", fx.trash_files());
        } else {
            let retried = run_crash_plan(&store).await;
            assert!(
                retried.iter().all(|r| r.is_ok()),
                "{context}: retry failed: {retried:?}"
            );
        }
        check_invariant(&fx.root, &fx.archive, &originals, true, gone, context);
    }
}

#[tokio::test]
async fn failed_recover_steps_leave_each_file_whole() {
    for point in ["recover:temp-removed", "recover:duplicate-removed"] {
        let fx = Fx::new();
        let originals = crash_tree(&fx.root, &fx.archive);
        let store = fx.store().await;
        fx.temp(&store, "c/0.log.zst", b"partial");
        fx.write("c/1.log.zst", &zst(&originals["c/1.log"]));
        {
            let _fail = crate::crashpoint::fail_under(&fx.root, point);
            store.recover(true).await.unwrap_err();
        }
        check_invariant(&fx.root, &fx.archive, &originals, false, false, point);
        store.recover(true).await.unwrap();
        check_invariant(&fx.root, &fx.archive, &originals, true, false, point);
    }
}

/// Environment variable through which [`every_crash_point_keeps_each_file_whole_in_a_visible_place`] hands a
/// child process of this test binary its work: `apply|recover|purge|restore <root> <archive> <grace secs>`.
const CHILD_ENV: &str = "RETENTION_TEST_CRASH_CHILD";

/// Not a test of its own: the child process of the crash test, which dies at `RETENTION_CRASH_AT`. Without the
/// environment variable it has nothing to do.
#[tokio::test]
async fn a_crash_child_applies_the_plan_its_parent_hands_it() {
    let Ok(args) = std::env::var(CHILD_ENV) else { return };
    let args: Vec<&str> = args.split('\t').collect();
    let [mode, root, archive, grace] = args[..] else {
        panic!("{CHILD_ENV}: {args:?}")
    };
    let mut cfg = Fx::new().cfg();
    cfg.root = root.into();
    cfg.archive_url = Some(url::Url::from_directory_path(archive).unwrap());
    cfg.trash_grace = Duration::from_secs(grace.parse().unwrap());
    let store = DirectoryStore::open(cfg).await.unwrap();
    match mode {
        "apply" => drop(run_crash_plan(&store).await),
        "purge" => drop(purge_expired(&store, i64::MAX).await),
        "restore" => drop(restore_all(&store).await),
        _ => drop(store.recover(true).await),
    }
}

fn run_child(mode: &str, fx: &Fx, grace: Duration, point: &str) -> std::process::ExitStatus {
    let (root, archive) = (fx.root.display(), fx.archive.display());
    std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "store::dir::tests::crash::a_crash_child_applies_the_plan_its_parent_hands_it",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{mode}\t{root}\t{archive}\t{}", grace.as_secs()))
        .env("RETENTION_CRASH_AT", point)
        .env_remove("RETENTION_FAIL_AT")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
}

#[tokio::test]
async fn every_crash_point_keeps_each_file_whole_in_a_visible_place() {
    use std::os::unix::process::ExitStatusExt;
    for (point, grace) in crash_cases() {
        let context = &format!("{point} (grace {grace:?})");
        let fx = Fx::new();
        let originals = crash_tree(&fx.root, &fx.archive);
        let store = fx.store_with_grace(grace).await;
        let mode = match point.split(':').next().unwrap() {
            "recover" => {
                // Leave a temporary and a duplicate behind first, then crash while recovering them.
                let status = run_child("apply", &fx, grace, "compress:renamed");
                assert_eq!(status.signal(), Some(6), "compress:renamed: {status}");
                "recover"
            }
            m @ ("purge" | "restore") => {
                // Purges and restores work on what a pass put in the trash.
                let applied = run_crash_plan(&store).await;
                assert!(applied.iter().all(|r| r.is_ok()), "{context}: {applied:?}");
                m
            }
            _ => "apply",
        };
        let status = run_child(mode, &fx, grace, point);
        assert_eq!(
            status.signal(),
            Some(6),
            "{context}: the crash point was never reached ({status})"
        );
        let gone = grace.is_zero() || mode == "purge";
        check_invariant(&fx.root, &fx.archive, &originals, false, gone, context);
        store.recover(true).await.unwrap();
        check_invariant(&fx.root, &fx.archive, &originals, true, gone, context);
        let (s, _) = scan(&store).await;
        assert!(s.skipped.is_empty(), "{context}: {:?}", s.skipped);
    }
}
