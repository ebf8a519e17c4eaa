//! The trash: drops into it, listing, purge and restore, locally and in the archive's trash.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use super::*;
use crate::segment::{Action, Tier};
use crate::store::dir::names::{batch_name, parse_batch_name};
use crate::store::{Store, StoreError, TRASH_DIR, Trash, TrashEntry};
use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt;

// trash --------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_drop_with_grace_moves_files_into_the_trash_and_archived_objects_into_the_archives_trash() {
    let fx = Fx::new();
    fx.write_at("d/a.log", b"hot", 1_000_000);
    fx.write("d/b.log.zst", &zst(b"compressed"));
    write_file(&fx.archive.join("c.log"), b"archived");
    let store = fx.store().await;
    let (s, _) = scan(&store).await;
    let before = chrono::Utc::now().timestamp_millis();
    let results = apply(
        &store,
        &[
            (seg(&s, "d/a.log"), Action::Drop),
            (seg(&s, "d/b.log"), Action::Drop),
            (seg(&s, "c.log"), Action::Drop),
        ],
    )
    .await;
    let after = chrono::Utc::now().timestamp_millis();
    let trashed: Vec<bool> = results.iter().map(|r| r.as_ref().unwrap().trashed).collect();
    assert_eq!(trashed, [true, true, true]);
    assert!(scan(&store).await.0.segments.is_empty());
    assert!(!fx.exists("d/a.log") && !fx.exists("d/b.log.zst"));
    assert!(!fx.archive.join("c.log").exists());

    // The layout records the trash time, the expiry, the relative path and the tier (.zst); the archive's trash
    // the same under the archive's prefix, with the object's bytes as they were.
    let files = fx.trash_files();
    assert_eq!(files.len(), 3, "{files:?}");
    let (batch, _) = files[0].split_once('/').unwrap();
    let (t, e) = parse_batch_name(batch).unwrap();
    assert!(before <= t && t <= after, "{t} not within {before}..{after}");
    assert_eq!(e - t, 86_400_000);
    assert_eq!(
        files,
        [
            format!("{batch}/d/a.log"),
            format!("{batch}/d/b.log.zst"),
            format!("archive:{batch}/c.log")
        ]
    );
    assert_eq!(
        std::fs::read(fx.archive.join(TRASH_DIR).join(batch).join("c.log")).unwrap(),
        b"archived"
    );
    let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o777;
    assert_eq!(mode(&fx.root.join(TRASH_DIR)), 0o700);

    let entries = store.list().await.unwrap();
    let zsize = zst(b"compressed").len() as u64;
    assert_eq!(
        entries,
        [
            TrashEntry {
                name: "c.log".into(),
                tier: Tier::Archived,
                bytes: 8,
                trashed_at_ms: t,
                expires_at_ms: e,
                locator: format!("{TRASH_DIR}/{batch}/c.log"),
                labels: Vec::new(),
            },
            TrashEntry {
                name: "d/a.log".into(),
                tier: Tier::Hot,
                bytes: 3,
                trashed_at_ms: t,
                expires_at_ms: e,
                locator: format!("{TRASH_DIR}/{batch}/d/a.log"),
                labels: Vec::new(),
            },
            TrashEntry {
                name: "d/b.log".into(),
                tier: Tier::Compressed,
                bytes: zsize,
                trashed_at_ms: t,
                expires_at_ms: e,
                locator: format!("{TRASH_DIR}/{batch}/d/b.log.zst"),
                labels: Vec::new(),
            },
        ]
    );
}

#[tokio::test]
async fn the_trash_is_never_scanned_whatever_the_globs_say() {
    let fx = Fx::new();
    fx.write("a.log", b"a");
    fx.write(".retention-trash/1-2/b.log", b"trashed");
    fx.write(".retention-trash/1-2/.b.log.zst.retention-tmp", b"not ours to remove");
    fx.write("sub/.retention-trash/c.log", b"only the root's trash is special");
    let mut cfg = fx.cfg();
    cfg.include = globs(&["**", ".retention-trash/**", "**/*.log"]);
    let store = DirectoryStore::open(cfg).await.unwrap();
    let (s, _) = scan(&store).await;
    assert_eq!(names(&s), ["a.log", "sub/.retention-trash/c.log"]);
    assert!(s.skipped.is_empty(), "{:?}", s.skipped);
    assert!(store.recover(true).await.unwrap().is_empty());
    assert!(fx.exists(".retention-trash/1-2/.b.log.zst.retention-tmp"));
    assert_eq!(store.list().await.unwrap()[0].name, "b.log");
}

#[tokio::test]
async fn a_purge_deletes_only_the_entries_whose_grace_has_ended() {
    let fx = Fx::new();
    fx.write("a.log", b"first");
    let store = fx.store().await;
    let (s, _) = scan(&store).await;
    apply1(&store, seg(&s, "a.log"), Action::Drop).await.unwrap();
    let hour = fx.store_with_grace(Duration::from_secs(3600)).await;
    fx.write("b.log", b"second");
    let (s, _) = scan(&hour).await;
    apply1(&hour, seg(&s, "b.log"), Action::Drop).await.unwrap();
    let entries = store.list().await.unwrap();
    let expiry = |name: &str| entries.iter().find(|e| e.name == name).unwrap().expires_at_ms;
    // Each entry keeps the grace it was dropped with.
    for e in &entries {
        let grace = if e.name == "a.log" { 86_400_000 } else { 3_600_000 };
        assert_eq!(e.expires_at_ms - e.trashed_at_ms, grace, "{e:?}");
    }

    assert!(purge_expired(&store, expiry("b.log") - 1).await.unwrap().is_empty());
    assert_eq!(store.list().await.unwrap().len(), 2);
    let purged = purge_expired(&store, expiry("b.log")).await.unwrap();
    assert_eq!(purged.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["b.log"]);
    assert_eq!(store.list().await.unwrap().len(), 1);
    let purged = purge_expired(&store, expiry("a.log")).await.unwrap();
    assert_eq!(purged.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["a.log"]);
    assert!(fx.trash_files().is_empty());
    assert_eq!(
        std::fs::read_dir(fx.root.join(TRASH_DIR)).unwrap().count(),
        0,
        "expired batches are removed once empty"
    );
}

#[tokio::test]
async fn a_restore_puts_the_segment_back_exactly_in_its_tier() {
    let fx = Fx::new();
    let hot = fx.write_at("d/e/a.log", b"hot bytes", 1_234_567);
    std::fs::set_permissions(&hot, Permissions::from_mode(0o640)).unwrap();
    let z = zst(b"compressed bytes");
    fx.write_at("b.log.zst", &z, 7_654_321);
    let store = fx.store().await;
    let (s, _) = scan(&store).await;
    apply(
        &store,
        &[(seg(&s, "d/e/a.log"), Action::Drop), (seg(&s, "b.log"), Action::Drop)],
    )
    .await;
    // Directories emptied by the drop may be gone by the time of the restore.
    std::fs::remove_dir(fx.root.join("d/e")).unwrap();
    std::fs::remove_dir(fx.root.join("d")).unwrap();

    let e = store.restore("d/e/a.log").await.unwrap();
    assert_eq!((e.name.as_str(), e.tier, e.bytes), ("d/e/a.log", Tier::Hot, 9));
    let e = store.restore("b.log").await.unwrap();
    assert_eq!((e.name.as_str(), e.tier), ("b.log", Tier::Compressed));
    assert_eq!(std::fs::read(fx.root.join("d/e/a.log")).unwrap(), b"hot bytes");
    assert_eq!(std::fs::read(fx.root.join("b.log.zst")).unwrap(), z);
    let md = std::fs::metadata(fx.root.join("d/e/a.log")).unwrap();
    assert_eq!((md.mtime(), md.mode() & 0o777), (1_234_567, 0o640));
    assert_eq!(std::fs::metadata(fx.root.join("b.log.zst")).unwrap().mtime(), 7_654_321);
    let (s, _) = scan(&store).await;
    assert_eq!(names(&s), ["b.log", "d/e/a.log"]);
    assert_eq!(seg(&s, "b.log").tier, Tier::Compressed);
    assert!(store.list().await.unwrap().is_empty());
    assert!(fx.trash_files().is_empty());
}

#[tokio::test]
async fn a_restore_is_refused_while_the_segment_exists_in_any_tier() {
    let fx = Fx::new();
    for name in ["a.log", "b.log", "c.log"] {
        fx.write(name, name.as_bytes());
    }
    let store = fx.store().await;
    let (s, _) = scan(&store).await;
    let plan: Vec<_> = s.segments.iter().map(|s| (s, Action::Drop)).collect();
    apply(&store, &plan).await;
    fx.write("a.log", b"a new a.log");
    fx.write("b.log.zst", &zst(b"b.log"));
    write_file(&fx.archive.join("c.log"), b"c.log");
    for (name, taken) in [
        ("a.log", fx.root.join("a.log").display().to_string()),
        ("b.log", fx.root.join("b.log.zst").display().to_string()),
        ("c.log", "/c.log".to_string()),
    ] {
        let e = store.restore(name).await.unwrap_err();
        assert!(matches!(e, StoreError::Taken { .. }), "{e}");
        let msg = e.to_string();
        assert!(msg.contains(name) && msg.contains(&taken), "{msg}");
    }
    assert_eq!(
        store.list().await.unwrap().len(),
        3,
        "refused restores leave the trash as it was"
    );
    assert_eq!(std::fs::read(fx.root.join("a.log")).unwrap(), b"a new a.log");
    let e = store.restore("nothing.log").await.unwrap_err();
    assert!(
        matches!(e, StoreError::NotInTrash { .. }) && e.to_string().contains("nothing.log"),
        "{e}"
    );
    let e = store.restore("../a.log").await.unwrap_err();
    assert!(e.to_string().contains("not a segment name"), "{e}");
}

#[tokio::test]
async fn a_name_dropped_twice_restores_the_most_recently_trashed_copy() {
    let fx = Fx::new();
    let store = fx.store().await;
    for content in [&b"first"[..], b"second"] {
        fx.write("a.log", content);
        let (s, _) = scan(&store).await;
        apply1(&store, seg(&s, "a.log"), Action::Drop).await.unwrap();
    }
    let entries = store.list().await.unwrap();
    assert_eq!(entries.len(), 2);
    assert!(entries[0].trashed_at_ms < entries[1].trashed_at_ms, "{entries:?}");
    assert_eq!(store.restore("a.log").await.unwrap(), entries[1]);
    assert_eq!(std::fs::read(fx.root.join("a.log")).unwrap(), b"second");
    assert_eq!(store.list().await.unwrap(), [entries[0].clone()]);
}

#[tokio::test]
async fn an_archived_segment_comes_back_from_the_archives_trash_exactly_and_only_while_its_key_is_free() {
    let fx = Fx::new();
    write_file(&fx.archive.join("d/c.log.zst"), &zst(b"archived bytes"));
    let store = fx.store().await;
    let (s, _) = scan(&store).await;
    assert_eq!(seg(&s, "d/c.log").tier, Tier::Archived);
    assert!(apply1(&store, seg(&s, "d/c.log"), Action::Drop).await.unwrap().trashed);
    assert!(
        scan(&store).await.0.segments.is_empty(),
        "a trashed object is no segment"
    );

    // Its key taken by a new object: refused, and the trash keeps it.
    write_file(&fx.archive.join("d/c.log.zst"), b"another object");
    let e = store.restore("d/c.log").await.unwrap_err();
    assert!(matches!(e, StoreError::Taken { .. }), "{e}");
    assert_eq!(store.list().await.unwrap().len(), 1);
    std::fs::remove_file(fx.archive.join("d/c.log.zst")).unwrap();

    let e = store.restore("d/c.log").await.unwrap();
    assert_eq!((e.name.as_str(), e.tier), ("d/c.log", Tier::Archived));
    assert_eq!(
        std::fs::read(fx.archive.join("d/c.log.zst")).unwrap(),
        zst(b"archived bytes")
    );
    let (s, _) = scan(&store).await;
    assert_eq!(names(&s), ["d/c.log"]);
    assert!(store.list().await.unwrap().is_empty());
    assert!(fx.trash_files().is_empty(), "{:?}", fx.trash_files());
}

#[tokio::test]
async fn a_restore_takes_the_latest_drop_whether_it_was_archived_or_local() {
    let fx = Fx::new();
    write_file(&fx.archive.join("a.log"), b"archived first");
    let store = fx.store().await;
    let (s, _) = scan(&store).await;
    apply1(&store, seg(&s, "a.log"), Action::Drop).await.unwrap();
    fx.write("a.log", b"hot later");
    let (s, _) = scan(&store).await;
    apply1(&store, seg(&s, "a.log"), Action::Drop).await.unwrap();
    let entries = store.list().await.unwrap();
    let tiers: Vec<Tier> = entries.iter().map(|e| e.tier).collect();
    assert_eq!(tiers, [Tier::Archived, Tier::Hot]);
    assert_eq!(store.restore("a.log").await.unwrap(), entries[1]);
    assert_eq!(std::fs::read(fx.root.join("a.log")).unwrap(), b"hot later");
    std::fs::remove_file(fx.root.join("a.log")).unwrap();
    assert_eq!(store.restore("a.log").await.unwrap(), entries[0]);
    assert_eq!(std::fs::read(fx.archive.join("a.log")).unwrap(), b"archived first");
}

#[tokio::test]
async fn a_purge_deletes_exactly_the_objects_of_the_archives_trash_it_is_given() {
    let fx = Fx::new();
    write_file(&fx.archive.join("x/a.log"), b"a");
    write_file(&fx.archive.join("x/b.log"), b"b");
    let store = fx.store().await;
    let (s, _) = scan(&store).await;
    let plan: Vec<_> = s.segments.iter().map(|s| (s, Action::Drop)).collect();
    assert!(apply(&store, &plan).await.iter().all(|r| r.as_ref().unwrap().trashed));
    let entries = store.list().await.unwrap();
    assert!(store.purge(&[]).await.unwrap().is_empty());
    // The caller chooses (a pass: expired, not held, recorded); the rest stays.
    let purged = store.purge(&entries[..1]).await.unwrap();
    assert_eq!(
        purged.iter().map(|e| (e.name.as_str(), e.tier)).collect::<Vec<_>>(),
        [("x/a.log", Tier::Archived)]
    );
    let files = fx.trash_files();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0].starts_with("archive:") && files[0].ends_with("/x/b.log"),
        "{files:?}"
    );
    // An entry purged already (or restored) is skipped, not an error.
    let purged = store.purge(&entries).await.unwrap();
    assert_eq!(purged, entries[1..]);
    assert!(fx.trash_files().is_empty());
    assert_eq!(
        std::fs::read_dir(fx.archive.join(TRASH_DIR)).unwrap().count(),
        0,
        "expired batches are removed once empty"
    );
}

#[tokio::test]
async fn an_object_both_in_place_and_in_the_archives_trash_keeps_the_placed_copy_when_equal() {
    let fx = Fx::new();
    let batch = batch_name(1_000, 2_000);
    // An interrupted move: the same bytes in place and in the trash.
    write_file(&fx.archive.join("a.log"), b"same");
    write_file(&fx.archive.join(TRASH_DIR).join(&batch).join("a.log"), b"same");
    // A name dropped, then archived anew: two contents, both kept.
    write_file(&fx.archive.join("b.log"), b"new b");
    write_file(&fx.archive.join(TRASH_DIR).join(&batch).join("b.log"), b"old b");
    let store = fx.store().await;

    let report_only = store.recover(false).await.unwrap();
    assert_eq!(report_only.trash_copies_removed, ["a.log"]);
    assert_eq!(fx.trash_files().len(), 2, "a dry run removes nothing");
    let rec = store.recover(true).await.unwrap();
    assert_eq!(rec.trash_copies_removed, ["a.log"]);
    assert!(rec.conflicts.is_empty(), "{:?}", rec.conflicts);
    assert_eq!(fx.trash_files(), [format!("archive:{batch}/b.log")]);
    assert_eq!(std::fs::read(fx.archive.join("a.log")).unwrap(), b"same");
    let (s, _) = scan(&store).await;
    assert_eq!(names(&s), ["a.log", "b.log"]);
    assert!(store.recover(true).await.unwrap().is_empty());
}

#[tokio::test]
async fn datasets_sharing_a_root_list_purge_and_restore_only_their_own_trash() {
    let fx = Fx::new();
    fx.write("a.log", b"log");
    fx.write("a.json", b"json");
    let mut logs = fx.cfg();
    logs.include = globs(&["*.log"]);
    let logs = DirectoryStore::open(logs).await.unwrap();
    let all = fx.store().await;
    let (s, _) = scan(&all).await;
    let plan: Vec<_> = s.segments.iter().map(|s| (s, Action::Drop)).collect();
    apply(&all, &plan).await;
    let names = |t: Vec<TrashEntry>| t.into_iter().map(|e| e.name).collect::<Vec<_>>();
    assert_eq!(names(logs.list().await.unwrap()), ["a.log"]);
    assert!(logs.restore("a.json").await.is_err());
    assert_eq!(names(purge_expired(&logs, i64::MAX).await.unwrap()), ["a.log"]);
    assert_eq!(names(all.list().await.unwrap()), ["a.json"]);
}
