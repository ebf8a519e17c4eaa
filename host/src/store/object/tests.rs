//! The archive destination's tests, on a local directory (the S3 ones are in tests/all/s3.rs, against moto).

use super::*;

async fn local() -> (tempfile::TempDir, Archive) {
    let dir = tempfile::tempdir().unwrap();
    let url = Url::from_directory_path(dir.path()).unwrap();
    let a = Archive::open(&url).await.unwrap();
    (dir, a)
}

fn sha(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

#[tokio::test]
async fn an_unreachable_destination_is_reported_with_its_url() {
    let url = Url::parse("file:///nonexistent/retention-archive").unwrap();
    let e = Archive::open(&url).await.unwrap_err().to_string();
    assert!(e.contains("file:///nonexistent/retention-archive"), "{e}");
}

#[tokio::test]
async fn keys_mirror_relative_paths_and_list_back_to_them() {
    let (dir, a) = local().await;
    let src = dir.path().join("src");
    std::fs::write(&src, b"hello").unwrap();
    for rel in [
        "a.log",
        "x/y/z.log.zst",
        "with space.log",
        "per%cent#1.log",
        "ünï/cödé.log",
        "star*?.log",
    ] {
        let key = a.key(rel);
        a.upload(std::fs::File::open(&src).unwrap(), &src, &key).await.unwrap();
        assert_eq!(a.rel_of(&key).as_deref(), Some(rel));
    }
    let mut listed: Vec<_> = a
        .list_with_trash()
        .await
        .unwrap()
        .0
        .into_iter()
        .map(|o| o.rel)
        .collect();
    listed.sort();
    let mut want = vec![
        "a.log",
        "per%cent#1.log",
        "src",
        "star*?.log",
        "with space.log",
        "x/y/z.log.zst",
        "ünï/cödé.log",
    ];
    want.sort();
    assert_eq!(listed, want);
}

#[tokio::test]
async fn an_upload_streams_the_file_and_reads_back_equal() {
    let (dir, a) = local().await;
    let a = a.with_part_size(64 << 10);
    // Large enough for several parts and several read chunks.
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let src = dir.path().join("big.bin");
    std::fs::write(&src, &data).unwrap();
    let key = a.key("archived/big.bin");
    let content = a.upload(std::fs::File::open(&src).unwrap(), &src, &key).await.unwrap();
    assert_eq!(
        content,
        Content {
            size: data.len() as u64,
            sha256: sha(&data)
        }
    );
    a.verify(&key, &content).await.unwrap();
    assert_eq!(std::fs::read(dir.path().join("archived/big.bin")).unwrap(), data);
    assert!(a.staging_leftovers().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_existing_object_is_never_overwritten() {
    let (dir, a) = local().await;
    std::fs::write(dir.path().join("a.log"), b"older file of the same name").unwrap();
    let src = dir.path().join("src");
    std::fs::write(&src, b"new").unwrap();
    let e = a
        .upload(std::fs::File::open(&src).unwrap(), &src, &a.key("a.log"))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("already exists"), "{e}");
    assert_eq!(
        std::fs::read(dir.path().join("a.log")).unwrap(),
        b"older file of the same name"
    );
}

#[tokio::test]
async fn a_copy_that_differs_fails_verification() {
    let (dir, a) = local().await;
    std::fs::write(dir.path().join("a.log"), b"abc").unwrap();
    let key = a.key("a.log");
    let same_size = Content {
        size: 3,
        sha256: sha(b"abd"),
    };
    let e = a.verify(&key, &same_size).await.unwrap_err().to_string();
    assert!(e.contains("reads back different"), "{e}");
    let other_size = Content {
        size: 4,
        sha256: sha(b"abcd"),
    };
    let e = a.verify(&key, &other_size).await.unwrap_err().to_string();
    assert!(e.contains("has 3 bytes"), "{e}");
}

#[tokio::test]
async fn staging_files_are_found_but_never_listed() {
    let (dir, a) = local().await;
    std::fs::create_dir_all(dir.path().join("d")).unwrap();
    std::fs::write(dir.path().join("d/a.log#1"), b"partial").unwrap();
    std::fs::write(dir.path().join("b.log#23"), b"partial").unwrap();
    std::fs::write(dir.path().join("c#d.log"), b"an object").unwrap();
    let found = a.staging_leftovers().await.unwrap();
    assert_eq!(found, [dir.path().join("b.log#23"), dir.path().join("d/a.log#1")]);
    let listed: Vec<_> = a
        .list_with_trash()
        .await
        .unwrap()
        .0
        .into_iter()
        .map(|o| o.rel)
        .collect();
    assert_eq!(listed, ["c#d.log"]);
}

#[tokio::test]
async fn a_digest_can_see_through_compression_and_tells_a_truncated_stream() {
    let (dir, a) = local().await;
    let data = b"some log line\n".repeat(1000);
    let z = zstd::encode_all(&data[..], 3).unwrap();
    std::fs::write(dir.path().join("a.log.zst"), &z).unwrap();
    std::fs::write(dir.path().join("cut.log.zst"), &z[..z.len() / 2]).unwrap();
    let got = a.digest(&a.key("a.log.zst"), true).await.unwrap();
    assert_eq!(
        got,
        Content {
            size: data.len() as u64,
            sha256: sha(&data)
        }
    );
    assert_eq!(a.digest(&a.key("a.log.zst"), false).await.unwrap().sha256, sha(&z));
    let e = a.digest(&a.key("cut.log.zst"), true).await.unwrap_err();
    let StoreError::Backend { source, .. } = &e else {
        panic!("{e}")
    };
    let source = source.downcast_ref::<io::Error>().unwrap();
    assert!(
        matches!(source.kind(), io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData),
        "{source}"
    );
}

#[test]
fn percent_escapes_decode_and_stray_percents_survive() {
    assert_eq!(percent_decode("a%23b%25").as_deref(), Some("a#b%"));
    assert_eq!(percent_decode("100%").as_deref(), Some("100%"));
    assert_eq!(percent_decode("%zz").as_deref(), Some("%zz"));
    assert_eq!(percent_decode("%C3%BC").as_deref(), Some("ü"));
}
