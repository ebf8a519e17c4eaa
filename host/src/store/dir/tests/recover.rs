//! Recovery: temporaries, duplicates, copies in the archive's trash.

use super::*;
use crate::segment::{Action, Tier};
use crate::store::Store;
use crate::store::dir::COMPRESS_GROUP;

// recover ------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressing_more_than_two_groups_leaves_every_file_compressed_once() {
    let fx = Fx::new();
    let n = 2 * COMPRESS_GROUP + 3;
    for i in 0..n {
        fx.write(
            &format!("d{}/f{i:05}.log", i % 3),
            format!("file {i}\n").repeat(4).as_bytes(),
        );
    }
    let store = fx.store().await;
    let (scan, _) = scan(&store).await;
    assert_eq!(scan.segments.len(), n);
    let plan: Vec<(&Segment, Action)> = scan.segments.iter().map(|s| (s, Action::Compress)).collect();
    let results = apply(&store, &plan).await;
    assert_eq!(results.len(), n);
    for (r, s) in results.iter().zip(&scan.segments) {
        let a = r.as_ref().unwrap_or_else(|e| panic!("{}: {e}", s.name));
        assert_eq!(a.bytes_before, s.bytes);
        assert!(!fx.exists(&s.name), "{} still hot", s.name);
        let z = std::fs::read(fx.root.join(format!("{}.zst", s.name))).unwrap();
        let i: usize = s.name[s.name.len() - 9..s.name.len() - 4].parse().unwrap();
        assert_eq!(
            zstd::decode_all(&z[..]).unwrap(),
            format!("file {i}\n").repeat(4).as_bytes()
        );
    }
}

#[tokio::test]
async fn recover_removes_temporaries_and_staging_leftovers_only_when_repairing() {
    let fx = Fx::new();
    fx.write("a.log", b"x");
    let store = fx.store().await;
    let tmp = fx.temp(&store, "d/a.log.zst", b"partial");
    write_file(&fx.archive.join("d/b.log#1"), b"partial upload");
    let dry = store.recover(false).await.unwrap();
    let mut removed = dry.temp_removed.clone();
    removed.sort();
    assert_eq!(removed.len(), 2);
    assert_eq!(removed[0], tmp);
    assert!(
        removed[1].starts_with("file://") && removed[1].ends_with("/d/b.log#1"),
        "{}",
        removed[1]
    );
    assert!(fx.exists(&tmp) && fx.archive.join("d/b.log#1").exists());
    let done = store.recover(true).await.unwrap();
    assert_eq!(done.temp_removed.len(), 2);
    assert!(!fx.exists(&tmp) && !fx.archive.join("d/b.log#1").exists());
    assert!(fx.exists("a.log"));
    assert!(store.recover(true).await.unwrap().is_empty());
}

#[tokio::test]
async fn recover_leaves_the_temporaries_of_other_datasets_alone() {
    let fx = Fx::new();
    let mut cfg = fx.cfg();
    cfg.include = globs(&["*.log"]);
    let store = DirectoryStore::open(cfg).await.unwrap();
    let ours = fx.temp(&store, "a.log.zst", b"ours");
    let theirs = fx.temp(&store, "b.json.zst", b"another dataset's, maybe in flight");
    write_file(&fx.archive.join("c.json#1"), b"another dataset's upload");
    let rec = store.recover(true).await.unwrap();
    assert_eq!(rec.temp_removed, [ours]);
    assert!(fx.exists(&theirs) && fx.archive.join("c.json#1").exists());
}

#[tokio::test]
async fn a_file_named_like_a_temporary_but_not_written_by_the_store_is_left_alone_and_reported() {
    let fx = Fx::new();
    let store = fx.store().await;
    // One of ours, so that the key exists; then look-alikes: the old untagged name, a wrong tag, a user's file.
    let ours = fx.temp(&store, "d/a.log.zst", b"partial");
    let untagged = fx.write("d/.b.log.zst.retention-tmp", b"a complete file of the user's");
    let forged = fx.write("d/.c.log.zst.0123456789abcdef.retention-tmp", b"another one");
    let rec = store.recover(true).await.unwrap();
    assert_eq!(rec.temp_removed, std::slice::from_ref(&ours));
    assert!(!fx.exists(&ours));
    assert_eq!(std::fs::read(&untagged).unwrap(), b"a complete file of the user's");
    assert_eq!(std::fs::read(&forged).unwrap(), b"another one");
    let mut left: Vec<&str> = rec.left_alone.iter().map(|l| l.name.as_str()).collect();
    left.sort();
    assert_eq!(
        left,
        [
            "d/.b.log.zst.retention-tmp",
            "d/.c.log.zst.0123456789abcdef.retention-tmp"
        ]
    );
    assert!(rec.left_alone[0].reason.contains("left alone"), "{:?}", rec.left_alone);
    let (s, _) = scan(&store).await;
    assert!(s.segments.is_empty(), "look-alikes are never segments either");
}

#[tokio::test]
async fn archiving_is_supported_only_with_an_archive_destination() {
    let fx = Fx::new();
    let caps = fx.store().await.capabilities();
    assert!(caps.check(Tier::Hot, Action::Archive).is_ok() && caps.check(Tier::Compressed, Action::Archive).is_ok());
    let mut cfg = fx.cfg();
    cfg.archive_url = None;
    let caps = DirectoryStore::open(cfg).await.unwrap().capabilities();
    for tier in [Tier::Hot, Tier::Compressed] {
        let why = caps.check(tier, Action::Archive).unwrap_err();
        assert!(why.contains("archive_url"), "{why}");
        assert!(caps.check(tier, Action::Drop).is_ok());
    }
    assert!(caps.check(Tier::Hot, Action::Compress).is_ok());
    assert!(caps.check(Tier::Archived, Action::Drop).is_ok());
    assert!(
        caps.check(Tier::Compressed, Action::Compress).is_err(),
        "the contract's table still holds"
    );
}

#[tokio::test]
async fn a_duplicate_with_equal_copies_is_scanned_once_and_resolved_to_the_later_tier() {
    let fx = Fx::new();
    let content = b"same content\n".repeat(100);
    fx.write("a.log", &content);
    fx.write("a.log.zst", &zst(&content));
    let store = fx.store().await;
    let (s, _) = scan(&store).await;
    assert_eq!(names(&s), ["a.log"]);
    assert_eq!(seg(&s, "a.log").tier, Tier::Compressed);
    let dry = store.recover(false).await.unwrap();
    assert_eq!(
        dry.duplicates_resolved,
        [("a.log".to_string(), Tier::Compressed, Tier::Hot)]
    );
    assert!(fx.exists("a.log"), "a dry run touches nothing");
    let done = store.recover(true).await.unwrap();
    assert_eq!(done.duplicates_resolved, dry.duplicates_resolved);
    assert!(!fx.exists("a.log") && fx.exists("a.log.zst"));
}

#[tokio::test]
async fn a_duplicate_with_different_copies_is_a_conflict_left_alone() {
    let fx = Fx::new();
    fx.write("a.log", b"grew after it was compressed");
    fx.write("a.log.zst", &zst(b"grew after"));
    let store = fx.store().await;
    let (s, _) = scan(&store).await;
    assert!(s.segments.is_empty());
    let r = skipped(&s, "a.log");
    assert!(
        r.contains("conflicting") && r.contains("hot copy a.log differs from the compressed copy a.log.zst"),
        "{r}"
    );
    let rec = store.recover(true).await.unwrap();
    assert_eq!(rec.conflicts.len(), 1);
    assert!(rec.duplicates_resolved.is_empty());
    assert!(fx.exists("a.log") && fx.exists("a.log.zst"));
}

#[tokio::test]
async fn a_truncated_zst_beside_its_hot_file_is_a_conflict_not_a_copy() {
    let fx = Fx::new();
    let content: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    fx.write("a.log", &content);
    let z = zst(&content);
    fx.write("a.log.zst", &z[..z.len() - 10]);
    let store = fx.store().await;
    let rec = store.recover(true).await.unwrap();
    assert!(
        rec.conflicts[0].reason.contains("incomplete or corrupt"),
        "{:?}",
        rec.conflicts
    );
    assert!(fx.exists("a.log") && fx.exists("a.log.zst"));
}

#[tokio::test]
async fn a_local_copy_equal_to_its_archived_copy_is_removed_by_recover() {
    let fx = Fx::new();
    // Same form (hot and plain object; .zst and .zst object) and cross form (hot and .zst object).
    fx.write("a.log", b"plain");
    write_file(&fx.archive.join("a.log"), b"plain");
    let zb = zst(b"compressed");
    fx.write("b.log.zst", &zb);
    write_file(&fx.archive.join("b.log.zst"), &zb);
    fx.write("c.log", b"crossed");
    write_file(&fx.archive.join("c.log.zst"), &zst(b"crossed"));
    let store = fx.store().await;
    let (s, _) = scan(&store).await;
    assert_eq!(names(&s), ["a.log", "b.log", "c.log"]);
    assert!(s.segments.iter().all(|s| s.tier == Tier::Archived));
    let rec = store.recover(true).await.unwrap();
    let mut resolved = rec.duplicates_resolved.clone();
    resolved.sort();
    assert_eq!(
        resolved,
        [
            ("a.log".to_string(), Tier::Archived, Tier::Hot),
            ("b.log".to_string(), Tier::Archived, Tier::Compressed),
            ("c.log".to_string(), Tier::Archived, Tier::Hot),
        ]
    );
    assert_eq!(std::fs::read_dir(&fx.root).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(&fx.archive).unwrap().count(), 3);
}

#[tokio::test]
async fn a_local_copy_differing_from_its_archived_copy_is_a_conflict() {
    let fx = Fx::new();
    fx.write("a.log", b"today's a.log");
    write_file(&fx.archive.join("a.log"), b"last year's a.log");
    write_file(&fx.archive.join("b.log"), b"archived plain");
    write_file(&fx.archive.join("b.log.zst"), &zst(b"archived plain"));
    let store = fx.store().await;
    let (s, _) = scan(&store).await;
    assert!(s.segments.is_empty(), "{:?}", names(&s));
    assert!(skipped(&s, "a.log").contains("differs from the archived copy"));
    assert!(skipped(&s, "b.log").contains("archived twice"));
    let rec = store.recover(true).await.unwrap();
    assert_eq!(rec.conflicts.len(), 2);
    assert!(fx.exists("a.log"));
    assert_eq!(std::fs::read_dir(&fx.archive).unwrap().count(), 3);
}
