//! The dataset's boundary: no symlink followed, no file but the one the scan saw, no writer's file removed, no engine
//! or sibling file managed, the state marker.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::time::Duration;

use super::*;
use crate::segment::{Action, Tier};
use crate::store::{Store, StoreError, TRASH_DIR, Trash, TrashEntry, Work};
use rustix::fs::FileType;
use std::io;

// the dataset's boundary ----------------------------------------------------------------------------------

/// Every file under `dir` with its bytes (for checking that nothing outside the root changed).
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries {
            let p = e.unwrap().path();
            if p.symlink_metadata().unwrap().is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_str().unwrap().to_string();
                out.push((rel, std::fs::read(&p).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn a_directory_swapped_for_a_symlink_after_the_scan_is_never_followed_by_any_action() {
    let fx = Fx::new();
    let outside = fx._tmp.path().join("outside");
    for grace in [Duration::ZERO, DAY] {
        std::fs::create_dir_all(&outside).unwrap();
        for n in ["a.log", "b.log", "c.log"] {
            // Twins outside the root: same size and mtime as the files the scan saw.
            fx.write_at(&format!("d/{n}"), b"same size", 1_700_000_000);
            let twin = write_file(&outside.join(n), b"SAME SIZE");
            set_mtime(&twin, 1_700_000_000);
        }
        let before = tree(&outside);
        let store = fx.store_with_grace(grace).await;
        let (s, _) = scan(&store).await;
        // Between the scan and the apply, the directory becomes a symlink to the outside one.
        std::fs::rename(fx.root.join("d"), fx.root.join("d-moved")).unwrap();
        std::os::unix::fs::symlink(&outside, fx.root.join("d")).unwrap();
        let results = apply(
            &store,
            &[
                (seg(&s, "d/a.log"), Action::Drop),
                (seg(&s, "d/b.log"), Action::Compress),
                (seg(&s, "d/c.log"), Action::Archive),
            ],
        )
        .await;
        for r in &results {
            let e = r.as_ref().unwrap_err().to_string();
            assert!(e.contains("symlink"), "{e}");
        }
        assert_eq!(
            tree(&outside),
            before,
            "nothing outside the root changed (grace {grace:?})"
        );
        assert!(fx.archived("d/c.log").is_none());
        assert!(fx.trash_files().is_empty(), "{:?}", fx.trash_files());
        std::fs::remove_file(fx.root.join("d")).unwrap();
        std::fs::remove_dir_all(fx.root.join("d-moved")).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();
    }
}

#[tokio::test]
async fn a_trash_that_is_a_symlink_is_never_used_nor_purged() {
    let fx = Fx::new();
    let outside = fx._tmp.path().join("elsewhere");
    // An "expired entry" outside the root, which a purge through the link would delete.
    write_file(&outside.join("1-2/old.log"), b"someone else's file");
    std::os::unix::fs::symlink(&outside, fx.root.join(TRASH_DIR)).unwrap();
    fx.write("a.log", b"hot");
    let store = fx.store().await;
    let e = store.list().await.unwrap_err().to_string();
    assert!(e.contains("symlink") && e.contains(TRASH_DIR), "{e}");
    let forged = TrashEntry {
        name: "old.log".into(),
        tier: Tier::Hot,
        bytes: 19,
        trashed_at_ms: 1,
        expires_at_ms: 2,
        locator: format!("{TRASH_DIR}/1-2/old.log"),
        labels: Vec::new(),
    };
    assert!(store.purge(&[forged]).await.is_err());
    let (s, _) = scan(&store).await;
    assert!(skipped(&s, TRASH_DIR).contains("symlink"), "the scan says so");
    let e = apply1(&store, seg(&s, "a.log"), Action::Drop)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("symlink"), "{e}");
    assert!(fx.exists("a.log"), "the drop left the file as it was");
    assert_eq!(
        std::fs::read(outside.join("1-2/old.log")).unwrap(),
        b"someone else's file"
    );
    assert_eq!(tree(&outside).len(), 1, "nothing was moved out of the root");
}

#[tokio::test]
async fn a_restore_through_a_parent_that_became_a_symlink_is_refused() {
    let fx = Fx::new();
    let outside = fx._tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    fx.write("d/a.log", b"dropped");
    let store = fx.store().await;
    let (s, _) = scan(&store).await;
    assert!(apply1(&store, seg(&s, "d/a.log"), Action::Drop).await.unwrap().trashed);
    std::fs::remove_dir(fx.root.join("d")).unwrap();
    std::os::unix::fs::symlink(&outside, fx.root.join("d")).unwrap();
    let e = store.restore("d/a.log").await.unwrap_err().to_string();
    assert!(e.contains("symlink"), "{e}");
    assert!(tree(&outside).is_empty(), "nothing landed outside the root");
    assert_eq!(store.list().await.unwrap().len(), 1, "still restorable");
}

#[tokio::test]
async fn a_fifo_swapped_in_after_the_scan_is_refused_without_blocking() {
    let fx = Fx::new();
    for n in ["a.log", "b.log", "c.log"] {
        fx.write(n, b"x");
    }
    let store = fx.store_with_grace(Duration::ZERO).await;
    let (s, _) = scan(&store).await;
    for n in ["a.log", "b.log", "c.log"] {
        std::fs::remove_file(fx.root.join(n)).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            fx.root.join(n),
            FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
    }
    let plan = [
        (seg(&s, "a.log"), Action::Compress),
        (seg(&s, "b.log"), Action::Archive),
        (seg(&s, "c.log"), Action::Drop),
    ];
    // A blocking open would hang here: the deadline turns that into a failure.
    let results = tokio::time::timeout(Duration::from_secs(60), apply(&store, &plan))
        .await
        .expect("the actions did not block on a FIFO");
    for r in results {
        let e = r.unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }
    for n in ["a.log", "b.log", "c.log"] {
        assert!(
            std::fs::symlink_metadata(fx.root.join(n))
                .unwrap()
                .file_type()
                .is_fifo()
        );
    }
}

#[tokio::test]
async fn another_file_of_the_same_size_and_mtime_swapped_in_is_refused() {
    let fx = Fx::new();
    fx.write_at("a.log", b"the original", 1_700_000_000);
    let store = fx.store_with_grace(Duration::ZERO).await;
    let (s, _) = scan(&store).await;
    let other = fx.write_at("other", b"THE IMPOSTOR", 1_700_000_000);
    std::fs::rename(other, fx.root.join("a.log")).unwrap();
    let e = apply1(&store, seg(&s, "a.log"), Action::Drop)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("another file than the scan saw"), "{e}");
    assert_eq!(std::fs::read(fx.root.join("a.log")).unwrap(), b"THE IMPOSTOR");
}

#[tokio::test]
async fn a_file_another_process_holds_open_for_writing_is_skipped_by_every_action() {
    let fx = Fx::new();
    for n in ["a.log", "b.log", "c.log"] {
        fx.write(n, b"a daemon's log\n");
    }
    // A quiet writer: it keeps the files open with O_APPEND and writes nothing.
    let mut writer = {
        let mut c = std::process::Command::new("sleep");
        c.arg("600");
        let f = |n: &str| File::options().append(true).open(fx.root.join(n)).unwrap();
        c.stdout(f("a.log")).stderr(f("b.log"));
        let keep_c = f("c.log");
        // The third file on another descriptor of the same child.
        unsafe {
            use std::os::fd::AsRawFd;
            use std::os::unix::process::CommandExt;
            let fd = keep_c.as_raw_fd();
            c.pre_exec(move || {
                if libc::dup2(fd, 9) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = c.spawn().unwrap();
        drop(keep_c);
        child
    };
    let store = fx.store().await;
    let (s, _) = scan(&store).await;
    let plan = [
        (seg(&s, "a.log"), Action::Compress),
        (seg(&s, "b.log"), Action::Archive),
        (seg(&s, "c.log"), Action::Drop),
    ];
    for r in apply(&store, &plan).await {
        let e = r.unwrap_err();
        assert!(matches!(e, StoreError::Busy { .. }), "{e}");
        assert!(e.to_string().contains("open for writing by another process"), "{e}");
    }
    for n in ["a.log", "b.log", "c.log"] {
        assert_eq!(std::fs::read(fx.root.join(n)).unwrap(), b"a daemon's log\n");
    }
    assert!(!fx.exists("a.log.zst") && fx.archived("b.log").is_none() && fx.trash_files().is_empty());
    writer.kill().unwrap();
    writer.wait().unwrap();
    // Once the writer is gone, the same plan goes through.
    for r in apply(&store, &plan).await {
        r.unwrap();
    }
    assert!(fx.exists("a.log.zst") && fx.archived("b.log").is_some() && !fx.exists("c.log"));
}

#[tokio::test]
async fn the_engines_own_directories_and_config_file_under_the_root_are_never_segments() {
    let fx = Fx::new();
    fx.write("a.log", b"data");
    fx.write("state/state.sqlite3", b"the holds");
    fx.write("state/compiled/x.cwasm", b"code");
    fx.write("plugins/p.wasm", b"a plugin");
    fx.write("retention.toml", b"plugin_dir = ...");
    fx.write("inner/b.log", b"another dataset's");
    let mut cfg = fx.cfg();
    cfg.excluded = ["state", "plugins", "retention.toml", "inner"]
        .iter()
        .map(|p| crate::store::dir::Excluded {
            path: fx.root.join(p),
            what: p.to_string(),
        })
        .collect();
    let store = DirectoryStore::open(cfg).await.unwrap();
    let (s, _) = scan(&store).await;
    assert_eq!(names(&s), ["a.log"]);
    assert!(s.skipped.is_empty(), "{:?}", s.skipped);
}

#[tokio::test]
async fn a_file_that_two_datasets_sharing_a_root_both_match_belongs_to_neither() {
    let fx = Fx::new();
    fx.write("a.log", b"matched by both");
    fx.write("b.txt", b"only ours");
    let mut cfg = fx.cfg();
    cfg.siblings = vec![crate::store::dir::Sibling {
        dataset: "other".into(),
        include: globs(&["**/*.log"]),
        exclude: globs(&[]),
    }];
    let store = DirectoryStore::open(cfg).await.unwrap();
    let (s, _) = scan(&store).await;
    assert_eq!(names(&s), ["b.txt"]);
    let r = skipped(&s, "a.log");
    assert!(r.contains("\"other\"") && r.contains("belongs to one dataset"), "{r}");
}

#[tokio::test]
async fn a_zst_declaring_a_gigabyte_beside_a_small_hot_file_is_a_conflict_without_decompressing_it() {
    let fx = Fx::new();
    fx.write("a.log", b"a small hot file");
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    enc.set_pledged_src_size(Some(1 << 30)).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..1024 {
        enc.write_all(&zeros).unwrap();
    }
    fx.write("a.log.zst", &enc.finish().unwrap());
    let (s, _) = scan(&fx.store().await).await;
    assert!(s.segments.is_empty());
    let r = skipped(&s, "a.log");
    assert!(r.contains("differs"), "{r}");
}

#[tokio::test]
async fn a_dataset_is_bound_to_the_state_database_of_its_first_real_pass() {
    let fx = Fx::new();
    let store = fx.store().await;
    store.bind_state("logs", "db-1", false).await.unwrap();
    assert!(!fx.exists(TRASH_DIR), "a dry run writes nothing");
    store.bind_state("logs", "db-1", true).await.unwrap();
    store.bind_state("logs", "db-1", true).await.unwrap();
    store.bind_state("logs", "db-1", false).await.unwrap();
    let e = store.bind_state("logs", "db-2", true).await.unwrap_err();
    assert!(matches!(e, StoreError::OtherState { .. }), "{e}");
    let e = e.to_string();
    assert!(
        e.contains("db-1") && e.contains("db-2") && e.contains("no pass runs"),
        "{e}"
    );
    // Another dataset sharing the root has its own record.
    store.bind_state("other", "db-2", true).await.unwrap();
    assert!(fx.trash_files().is_empty(), "the markers are not trash entries");
    assert!(store.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_drop_is_trashed_at_the_passes_now() {
    let fx = Fx::new();
    fx.write("a.log", b"x");
    let store = fx.store().await;
    let (s, _) = scan(&store).await;
    let work = [Work {
        segment: seg(&s, "a.log"),
        action: Action::Drop,
    }];
    let now_ms = 1_900_000_000_000;
    let opts = crate::store::ApplyOptions {
        parallelism: 1,
        now_ms,
        progress: &|_| {},
        cancel: None,
    };
    store.apply(&work, &opts).await.pop().unwrap().unwrap().unwrap();
    let t = store.list().await.unwrap();
    assert_eq!(t[0].trashed_at_ms, now_ms);
    assert_eq!(t[0].expires_at_ms, now_ms + DAY.as_millis() as i64);
}
