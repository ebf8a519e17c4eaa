//! Compress, archive and drop: each crash-safe, each refusing a changed source.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use super::*;
use crate::segment::{Action, Tier};
use crate::store::dir::WHOLE_FILE;
use std::fs::Permissions;

// actions ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_compressed_file_replaces_the_hot_one_after_the_pass() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fx::new();
    let content = b"a log line that repeats\n".repeat(500);
    let p = fx.write_at("app/a.log", &content, 1_700_000_000);
    std::fs::set_permissions(&p, Permissions::from_mode(0o640)).unwrap();
    let store = fx.store().await;
    let (scan1, _) = scan(&store).await;
    let applied = apply1(&store, seg(&scan1, "app/a.log"), Action::Compress)
        .await
        .unwrap();
    assert!(!fx.exists("app/a.log"));
    let z = std::fs::read(fx.root.join("app/a.log.zst")).unwrap();
    assert_eq!(unzst(&z), content);
    assert_eq!(
        applied,
        Applied {
            bytes_before: content.len() as u64,
            bytes_after: z.len() as u64,
            trashed: false,
        }
    );
    let md = std::fs::metadata(fx.root.join("app/a.log.zst")).unwrap();
    assert_eq!(md.mode() & 0o777, 0o640, "permissions are kept");
    let (scan2, _) = scan(&store).await;
    let s = seg(&scan2, "app/a.log");
    assert_eq!(s.tier, Tier::Compressed);
    assert_eq!(
        s.start_ms, 1_700_000_000_000,
        "compressing does not make a file look new"
    );
    assert_eq!(
        std::fs::read_dir(fx.root.join("app")).unwrap().count(),
        1,
        "no temporaries left"
    );
}

#[tokio::test]
async fn a_compressed_file_is_a_standard_zstd_frame_with_size_and_checksum() {
    let fx = Fx::new();
    fx.write("a.log", &b"x".repeat(10_000));
    let store = fx.store().await;
    let (s, _) = scan(&store).await;
    apply1(&store, seg(&s, "a.log"), Action::Compress).await.unwrap();
    let z = std::fs::read(fx.root.join("a.log.zst")).unwrap();
    // Frame header descriptor: bit 2 = content checksum; content size is present (single segment or size flag).
    assert_eq!(&z[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
    assert_ne!(z[4] & 0b100, 0, "content checksum flag");
    assert_eq!(zstd::zstd_safe::get_frame_content_size(&z).ok(), Some(Some(10_000)));
}

#[tokio::test]
async fn a_file_larger_than_memory_buffers_is_compressed_as_a_stream() {
    let fx = Fx::new();
    let content: Vec<u8> = (0..(WHOLE_FILE + 300_000))
        .map(|i| (i % 253) as u8 ^ (i / 4096) as u8)
        .collect();
    fx.write("big.log", &content);
    let store = fx.store().await;
    let (s, _) = scan(&store).await;
    apply1(&store, seg(&s, "big.log"), Action::Compress).await.unwrap();
    let z = std::fs::read(fx.root.join("big.log.zst")).unwrap();
    assert_eq!(unzst(&z), content);
    assert_eq!(
        zstd::zstd_safe::get_frame_content_size(&z).ok(),
        Some(Some(content.len() as u64))
    );
    assert!(!fx.exists("big.log"));
}

#[tokio::test]
async fn a_file_changed_since_the_scan_is_refused_and_left_as_it_was() {
    let fx = Fx::new();
    fx.write_at("a.log", b"first line\n", 1_700_000_000);
    fx.write_at("b.log", b"first line\n", 1_700_000_000);
    fx.write_at("c.log", b"first line\n", 1_700_000_000);
    let store = fx.store().await;
    let (s, _) = scan(&store).await;
    for n in ["a.log", "b.log", "c.log"] {
        let mut f = File::options().append(true).open(fx.root.join(n)).unwrap();
        f.write_all(b"second line\n").unwrap();
    }
    let results = apply(
        &store,
        &[
            (seg(&s, "a.log"), Action::Compress),
            (seg(&s, "b.log"), Action::Archive),
            (seg(&s, "c.log"), Action::Drop),
        ],
    )
    .await;
    for r in results {
        let e = r.unwrap_err().to_string();
        assert!(e.contains("changed since the scan"), "{e}");
    }
    for n in ["a.log", "b.log", "c.log"] {
        assert_eq!(std::fs::read(fx.root.join(n)).unwrap(), b"first line\nsecond line\n");
    }
    assert_eq!(
        std::fs::read_dir(&fx.root).unwrap().count(),
        3,
        "nothing else was created"
    );
    assert_eq!(std::fs::read_dir(&fx.archive).unwrap().count(), 0);
}

#[tokio::test]
async fn an_existing_zst_is_never_overwritten() {
    let fx = Fx::new();
    fx.write("a.log", b"hot");
    let store = fx.store().await;
    let (s, _) = scan(&store).await;
    fx.write("a.log.zst", &zst(b"someone else's"));
    let e = apply1(&store, seg(&s, "a.log"), Action::Compress)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("already exists"), "{e}");
    assert_eq!(
        unzst(&std::fs::read(fx.root.join("a.log.zst")).unwrap()),
        b"someone else's"
    );
    assert_eq!(std::fs::read(fx.root.join("a.log")).unwrap(), b"hot");
    assert!(!fx.exists(".a.log.zst.retention-tmp"));
}

#[tokio::test]
async fn an_archived_file_is_stored_as_it_was_and_removed_locally() {
    let fx = Fx::new();
    fx.write("app/a.log", b"plain");
    let z = zst(b"compressed");
    fx.write("app/b.log.zst", &z);
    let store = fx.store().await;
    let (s, _) = scan(&store).await;
    let results = apply(
        &store,
        &[
            (seg(&s, "app/a.log"), Action::Archive),
            (seg(&s, "app/b.log"), Action::Archive),
        ],
    )
    .await;
    for r in &results {
        assert_eq!(r.as_ref().unwrap().bytes_after, 0);
    }
    assert_eq!(fx.archived("app/a.log").as_deref(), Some(&b"plain"[..]));
    assert_eq!(fx.archived("app/b.log.zst"), Some(z.clone()));
    assert!(!fx.exists("app/a.log") && !fx.exists("app/b.log.zst"));
    let (s2, _) = scan(&store).await;
    assert_eq!(names(&s2), ["app/a.log", "app/b.log"]);
    let b = seg(&s2, "app/b.log");
    assert_eq!((b.tier, b.bytes), (Tier::Archived, z.len() as u64));
}

#[tokio::test]
async fn archiving_without_an_archive_url_is_refused() {
    let fx = Fx::new();
    fx.write("a.log", b"x");
    let mut cfg = fx.cfg();
    cfg.archive_url = None;
    let store = DirectoryStore::open(cfg).await.unwrap();
    let (s, _) = scan(&store).await;
    let e = apply1(&store, seg(&s, "a.log"), Action::Archive)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("no archive_url"), "{e}");
    assert!(fx.exists("a.log"));
}

#[tokio::test]
async fn actions_the_tier_does_not_allow_are_refused() {
    let fx = Fx::new();
    fx.write("a.log.zst", &zst(b"x"));
    let store = fx.store().await;
    let (s, _) = scan(&store).await;
    let e = apply1(&store, seg(&s, "a.log"), Action::Compress)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot compress segment a.log from tier compressed"), "{e}");
    let mut forged = seg(&s, "a.log").clone();
    forged.locator = "../../etc/passwd".into();
    let e = apply1(&store, &forged, Action::Drop).await.unwrap_err().to_string();
    assert!(e.contains("locator"), "{e}");
    assert!(fx.exists("a.log.zst"));
}

#[tokio::test]
async fn a_drop_without_grace_removes_the_segment_in_any_tier_at_once() {
    let fx = Fx::new();
    fx.write("a.log", b"hot");
    fx.write("b.log.zst", &zst(b"compressed"));
    write_file(&fx.archive.join("c.log"), b"archived");
    let store = fx.store_with_grace(Duration::ZERO).await;
    let (s, _) = scan(&store).await;
    let results = apply(
        &store,
        &[
            (seg(&s, "a.log"), Action::Drop),
            (seg(&s, "b.log"), Action::Drop),
            (seg(&s, "c.log"), Action::Drop),
        ],
    )
    .await;
    assert_eq!(
        results.iter().map(|r| r.as_ref().unwrap().bytes_before).sum::<u64>(),
        s.segments.iter().map(|s| s.bytes).sum::<u64>()
    );
    assert!(results.iter().all(|r| !r.as_ref().unwrap().trashed));
    let (s2, _) = scan(&store).await;
    assert!(s2.segments.is_empty());
    assert_eq!(std::fs::read_dir(&fx.root).unwrap().count(), 0, "no trash either");
    assert_eq!(std::fs::read_dir(&fx.archive).unwrap().count(), 0);
}
