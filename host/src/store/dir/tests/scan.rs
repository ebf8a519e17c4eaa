//! What a scan presents: names, tiers, labels, times, and what it skips.

use super::*;
use crate::segment::Tier;
use crate::store::Store;
use regex::Regex;

// scan ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn segments_are_named_by_relative_path_without_zst_and_sized_in_their_tier() {
    let fx = Fx::new();
    fx.write_at("app/a.log", b"hello", 1_700_000_000);
    fx.write_at("app/b.log.zst", &zst(b"compressed"), 1_700_000_100);
    let (scan, _) = scan(&fx.store().await).await;
    assert_eq!(names(&scan), ["app/a.log", "app/b.log"]);
    let a = seg(&scan, "app/a.log");
    assert_eq!(
        (a.tier, a.bytes, a.start_ms, a.end_ms),
        (Tier::Hot, 5, 1_700_000_000_000, 1_700_000_000_000)
    );
    assert_eq!(a.token.0[0], 1_700_000_000_000_000_000, "the token holds the mtime");
    assert_eq!(a.rows, None);
    let b = seg(&scan, "app/b.log");
    assert_eq!(b.tier, Tier::Compressed);
    assert_eq!(b.bytes, zst(b"compressed").len() as u64);
    assert_eq!(b.start_ms, 1_700_000_100_000);
    assert!(scan.skipped.is_empty(), "{:?}", scan.skipped);
}

#[tokio::test]
async fn include_and_exclude_globs_see_the_logical_name() {
    let fx = Fx::new();
    fx.write("a.log", b"1");
    fx.write("b.log.zst", &zst(b"2"));
    fx.write("c.txt", b"3");
    fx.write("old/d.log", b"4");
    fx.write("deep/er/e.log", b"5");
    let mut cfg = fx.cfg();
    cfg.include = globs(&["**/*.log"]);
    cfg.exclude = globs(&["old/**"]);
    let (scan, _) = scan(&DirectoryStore::open(cfg).await.unwrap()).await;
    assert_eq!(names(&scan), ["a.log", "b.log", "deep/er/e.log"]);
    assert!(
        scan.skipped.is_empty(),
        "files outside the globs are not reported: {:?}",
        scan.skipped
    );
}

#[tokio::test]
async fn labels_come_from_named_captures_sorted_by_key() {
    let fx = Fx::new();
    fx.write("web/2024-03-01/access.log", b"x");
    fx.write("db/2024-03-02/slow.log.zst", &zst(b"y"));
    fx.write("README", b"z");
    let mut cfg = fx.cfg();
    cfg.labels = Some(Regex::new(r"^(?P<service>[a-z]+)/(?P<day>[0-9-]+)/(?P<kind>[a-z]+)\.log$").unwrap());
    let (scan, symbols) = scan(&DirectoryStore::open(cfg).await.unwrap()).await;
    let s = seg(&scan, "db/2024-03-02/slow.log");
    assert_eq!(s.label(&symbols, "service"), Some("db"));
    assert_eq!(s.label(&symbols, "day"), Some("2024-03-02"));
    assert_eq!(s.label(&symbols, "kind"), Some("slow"));
    for s in &scan.segments {
        assert!(
            s.labels.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted, unique keys: {:?}",
            s.labels
        );
    }
    assert_eq!(
        seg(&scan, "web/2024-03-01/access.log").label(&symbols, "service"),
        Some("web")
    );
    assert!(seg(&scan, "README").labels.is_empty());
}

#[tokio::test]
async fn a_time_label_gives_the_segment_its_time_in_utc() {
    let fx = Fx::new();
    fx.write("app-2024-03-01.log", b"x");
    fx.write("app-2024-03-02T10:30.log.zst", &zst(b"y"));
    let mut cfg = fx.cfg();
    cfg.labels = Some(Regex::new(r"-(?P<date>[0-9T:-]+)\.log$").unwrap());
    cfg.time = TimeSource::Label {
        name: "date".into(),
        format: "%Y-%m-%d".into(),
    };
    let store = DirectoryStore::open(cfg.clone()).await.unwrap();
    let (scan1, _) = scan(&store).await;
    assert_eq!(seg(&scan1, "app-2024-03-01.log").start_ms, 1_709_251_200_000);
    assert!(skipped(&scan1, "app-2024-03-02T10:30.log").contains("not a time"));
    cfg.time = TimeSource::Label {
        name: "date".into(),
        format: "%Y-%m-%dT%H:%M".into(),
    };
    let (scan2, _) = scan(&DirectoryStore::open(cfg).await.unwrap()).await;
    let s = seg(&scan2, "app-2024-03-02T10:30.log");
    assert_eq!((s.start_ms, s.end_ms), (1_709_375_400_000, 1_709_375_400_000));
}

#[tokio::test]
async fn a_file_whose_age_cannot_be_told_is_skipped_with_the_reason() {
    let fx = Fx::new();
    fx.write("app-2024-13-45.log", b"bad month");
    fx.write("app.log", b"no date at all");
    let mut cfg = fx.cfg();
    cfg.labels = Some(Regex::new(r"-(?P<date>[0-9-]+)\.log$").unwrap());
    cfg.time = TimeSource::Label {
        name: "date".into(),
        format: "%Y-%m-%d".into(),
    };
    let (scan, _) = scan(&DirectoryStore::open(cfg).await.unwrap()).await;
    assert!(scan.segments.is_empty());
    let r = skipped(&scan, "app-2024-13-45.log");
    assert!(
        r.contains("date=\"2024-13-45\"") && r.contains("%Y-%m-%d") && r.contains("age is unknown"),
        "{r}"
    );
    let r = skipped(&scan, "app.log");
    assert!(r.contains("no \"date\" label"), "{r}");
}

#[tokio::test]
async fn temporaries_and_staging_files_are_never_segments() {
    let fx = Fx::new();
    fx.write("a.log", b"x");
    fx.write(".a.log.zst.retention-tmp", b"partial");
    fx.write("d/.b.log.zst.retention-tmp", b"partial");
    write_file(&fx.archive.join("c.log#1"), b"partial upload");
    let (scan, _) = scan(&fx.store().await).await;
    assert_eq!(names(&scan), ["a.log"]);
    assert!(scan.skipped.is_empty(), "{:?}", scan.skipped);
}

#[tokio::test]
async fn a_file_whose_name_is_not_utf8_is_skipped_with_the_reason() {
    use std::os::unix::ffi::OsStrExt;
    let fx = Fx::new();
    fx.write("ok.log", b"x");
    std::fs::write(fx.root.join(std::ffi::OsStr::from_bytes(b"bad-\xff.log")), b"y").unwrap();
    let (scan, _) = scan(&fx.store().await).await;
    assert_eq!(names(&scan), ["ok.log"]);
    assert!(skipped(&scan, "bad-\u{FFFD}.log").contains("not valid UTF-8"));
}

#[tokio::test]
async fn symlinks_are_skipped_never_followed() {
    let fx = Fx::new();
    let outside = write_file(&fx._tmp.path().join("outside.log"), b"not ours");
    std::os::unix::fs::symlink(&outside, fx.root.join("link.log")).unwrap();
    let (scan, _) = scan(&fx.store().await).await;
    assert!(scan.segments.is_empty());
    assert!(skipped(&scan, "link.log").contains("not a regular file"));
}

#[tokio::test]
async fn an_archive_inside_the_root_is_not_part_of_the_dataset() {
    let fx = Fx::new();
    fx.write("a.log", b"x");
    fx.write("archive/old.log", b"archived");
    let mut cfg = fx.cfg();
    cfg.archive_url = Some(url::Url::from_directory_path(fx.root.join("archive")).unwrap());
    let (scan, _) = scan(&DirectoryStore::open(cfg).await.unwrap()).await;
    assert_eq!(names(&scan), ["a.log", "old.log"]);
    assert_eq!(seg(&scan, "old.log").tier, Tier::Archived);
}

#[tokio::test]
async fn opening_a_store_checks_the_root_and_names_an_unreachable_archive() {
    let fx = Fx::new();
    let mut cfg = fx.cfg();
    cfg.archive_url = Some(url::Url::parse("file:///nonexistent/retention/archive").unwrap());
    let e = DirectoryStore::open(cfg).await.err().unwrap().to_string();
    assert!(e.contains("file:///nonexistent/retention/archive"), "{e}");
    let mut cfg = fx.cfg();
    cfg.root = fx.root.join("missing");
    let e = DirectoryStore::open(cfg).await.err().unwrap().to_string();
    assert!(e.contains("missing"), "{e}");
    assert!(fx.store().await.describe().contains("archive file://"));
}
