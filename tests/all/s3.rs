//! S3 archives against a real S3-compatible server: the real `retention` binary and the `age_tiering` plugin archive
//! real files to `s3://` URLs served by `moto_server` (PyPI's `moto[server]`), reached the way a user would reach an
//! S3-compatible store (`AWS_ENDPOINT`, `AWS_ALLOW_HTTP=true`, path-style requests, credentials and region from the
//! environment).
//!
//! The server is `RETENTION_TEST_S3_ENDPOINT` (e.g. `http://127.0.0.1:5000`, which `.ci/run` starts) when set;
//! otherwise these tests start `moto_server` themselves on a free loopback port, and fail, saying what to install,
//! when it is not on `PATH`. Each test makes its own bucket, with an unauthenticated `PUT /<bucket>` (which moto
//! accepts), and reads objects back with `object_store`'s own S3 client.

use crate::common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use retention::store::dir::CRASH_POINTS;
use serde_json::Value;

const NOW: &str = "2026-03-01T12:00:00Z";

/// Key prefix of the archive under each bucket: archived objects are `<PREFIX>/<name>`.
const PREFIX: &str = "retention/logs";

/// Credentials and region handed to both the binary and the checking client; moto accepts any.
const KEY_ID: &str = "retention-test";
const SECRET: &str = "retention-test-secret";
const REGION: &str = "us-east-1";

// ---------------------------------------------------------------------------------------------------------------------
// The server.

/// The endpoint of the S3 server for this test process, found or started once.
fn endpoint() -> &'static str {
    // Tests start in parallel: the first initialises it while the others wait.
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| match std::env::var("RETENTION_TEST_S3_ENDPOINT") {
        Ok(e) if !e.is_empty() => {
            let e = e.trim_end_matches('/').to_string();
            if let Err(why) = wait_until_answering(&e, Duration::from_secs(10), || None) {
                panic!("RETENTION_TEST_S3_ENDPOINT={e} does not answer: {why}");
            }
            e
        }
        _ => start_moto_server(),
    })
}

/// Starts `moto_server` on a free loopback port for the rest of this process and waits until it answers.
///
/// It runs under a small shell that kills it when its standard input, a pipe held by this process until it exits,
/// reaches end of file: the server goes away with the tests, however they end.
fn start_moto_server() -> String {
    static SERVER: OnceLock<(Child, ChildStdin)> = OnceLock::new();
    if !on_path("moto_server") {
        panic!(
            "the S3 tests need an S3-compatible server: set RETENTION_TEST_S3_ENDPOINT to one, or install moto's \
             (`pip install \"moto[server]\"`, as .ci/run does) so that `moto_server` is on PATH and the tests start it"
        );
    }
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let log = common::repo_root().join("target").join("moto_server.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    let mut child = Command::new("sh")
        .args([
            "-c",
            r#"exec 3<&0
moto_server -H 127.0.0.1 -p "$1" </dev/null >"$2" 2>&1 &
pid=$!
{ read -r _ <&3; kill "$pid"; } &
wait "$pid""#,
            "sh",
        ])
        .arg(port.to_string())
        .arg(&log)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("run sh to start moto_server");
    let stdin = child.stdin.take().unwrap();
    let ready = wait_until_answering(&endpoint, Duration::from_secs(60), || {
        child
            .try_wait()
            .ok()
            .flatten()
            .map(|s| format!("moto_server exited ({s})"))
    });
    if let Err(why) = ready {
        let _ = child.kill();
        panic!(
            "moto_server on {endpoint} did not start: {why}\n--- {} ---\n{}",
            log.display(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    // Kept until the process exits, when closing the pipe stops the server.
    let _ = SERVER.set((child, stdin));
    endpoint
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// A loopback port that nothing listens on (the OS gave it out and it was closed again).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Polls `endpoint` until it answers HTTP, `gave_up` says why to stop, or `deadline` passes.
fn wait_until_answering(
    endpoint: &str,
    deadline: Duration,
    mut gave_up: impl FnMut() -> Option<String>,
) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let why = match http(endpoint, "GET", "/") {
            Ok(_) => return Ok(()),
            Err(e) => e.to_string(),
        };
        if let Some(stop) = gave_up() {
            return Err(stop);
        }
        if start.elapsed() > deadline {
            return Err(format!("no answer within {deadline:?} (last: {why})"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One unauthenticated HTTP/1.0 request without a body to a `http://host:port` endpoint; returns the status code.
fn http(endpoint: &str, method: &str, path: &str) -> std::io::Result<u16> {
    let addr = endpoint
        .strip_prefix("http://")
        .expect("RETENTION_TEST_S3_ENDPOINT is an http://host:port URL");
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response);
    response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {response:?}")))
}

/// Runs a future to completion on a runtime of its own.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A fresh bucket of the server, and a client that reads it.
struct Bucket {
    name: String,
    store: AmazonS3,
}

impl Bucket {
    fn new() -> Bucket {
        static N: AtomicUsize = AtomicUsize::new(0);
        let endpoint = endpoint();
        // Unique across tests, test processes and runs against a long-lived server.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "retention-test-{}-{nanos}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let status = http(endpoint, "PUT", &format!("/{name}")).unwrap();
        assert_eq!(status, 200, "creating bucket {name} on {endpoint}");
        let store = AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_allow_http(true)
            .with_bucket_name(&name)
            .with_region(REGION)
            .with_access_key_id(KEY_ID)
            .with_secret_access_key(SECRET)
            .build()
            .unwrap();
        Bucket { name, store }
    }

    fn url(&self) -> String {
        format!("s3://{}/{PREFIX}", self.name)
    }

    /// Every object of the bucket: key -> bytes.
    fn objects(&self) -> BTreeMap<String, Vec<u8>> {
        block_on(async {
            let listed: Vec<_> = self.store.list(None).try_collect().await.unwrap();
            let mut out = BTreeMap::new();
            for meta in listed {
                let bytes = self.store.get(&meta.location).await.unwrap().bytes().await.unwrap();
                assert_eq!(bytes.len() as u64, meta.size, "listed size of {}", meta.location);
                out.insert(meta.location.to_string(), bytes.to_vec());
            }
            out
        })
    }

    /// Writes the object `<PREFIX>/<rel>` (someone else's, for the tests that it is never overwritten).
    fn put(&self, rel: &str, bytes: &[u8]) {
        let location = ObjectPath::from(format!("{PREFIX}/{rel}"));
        block_on(async { self.store.put(&location, bytes.to_vec().into()).await.unwrap() });
    }

    /// The bytes of the object `<PREFIX>/<rel>`, if there is one.
    fn object(&self, rel: &str) -> Option<Vec<u8>> {
        let location = ObjectPath::from(format!("{PREFIX}/{rel}"));
        block_on(async {
            match self.store.get(&location).await {
                Ok(got) => Some(got.bytes().await.unwrap().to_vec()),
                Err(object_store::Error::NotFound { .. }) => None,
                Err(e) => panic!("get {location}: {e}"),
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------------------------------
// Datasets.

/// A log tree `logs/<service>/<level>-<date>.log` in a temp dir, archived to a bucket.
struct Tree {
    dir: tempfile::TempDir,
    /// The content of every file written, by path relative to `logs/` (`.zst` files as stored).
    originals: BTreeMap<String, Vec<u8>>,
}

/// `size` bytes of numbered log lines mentioning `name`, so that no two files or parts of one are alike.
fn log_body(name: &str, size: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(size + 100);
    let mut i = 0u64;
    while body.len() < size {
        writeln!(body, "{i:>10} {name} some log line with a little entropy").unwrap();
        i += 1;
    }
    body.truncate(size);
    body
}

impl Tree {
    fn new(files: &[(&str, usize)]) -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let mut originals = BTreeMap::new();
        for (name, size) in files {
            let body = log_body(name, *size);
            let stored = match name.strip_suffix(".zst") {
                Some(_) => zstd::encode_all(&body[..], 3).unwrap(),
                None => body,
            };
            let p = dir.path().join("logs").join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, &stored).unwrap();
            originals.insert(name.to_string(), stored);
        }
        Tree { dir, originals }
    }

    fn logs(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    /// Writes a config archiving to `bucket` (`age_tiering`: compress after 1 day, archive after 10, drop after 30) and
    /// returns its path.
    fn config(&self, bucket: &Bucket) -> PathBuf {
        let text = format!(
            r#"plugin_dir = "{plugins}"
[[dataset]]
name = "logs"
plugin = "age_tiering"
params = {{ compress_after_days = 1, archive_after_days = 10, drop_after_days = 30 }}
[dataset.guard]
max_drop_bytes_fraction = 1.0
[dataset.directory]
root = "logs"
labels = '^(?P<service>[^/]+)/(?P<level>\w+)-(?P<date>\d{{4}}-\d{{2}}-\d{{2}})\.log$'
time = "label:date"
archive_url = "{url}"
# These tests are about the archive: a dropped local file is deleted at once rather than kept in the trash.
trash_grace_secs = 0
"#,
            plugins = common::plugin_dir().display(),
            url = bucket.url(),
        );
        let p = self.dir.path().join("retention.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Every file left under `logs/`, by relative path.
    /// The dataset's files (the engine area's own files left out).
    fn local(&self) -> BTreeMap<String, Vec<u8>> {
        let mut files = common::files_under(&self.logs());
        files.retain(|rel, _| !common::is_engine_file(rel));
        files
    }
}

/// The real binary, with the AWS environment of a user of an S3-compatible store at `endpoint` (and none of the
/// caller's own AWS settings).
fn retention_on(endpoint: &str) -> Command {
    let mut c = common::retention();
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("AWS_") {
            c.env_remove(key);
        }
    }
    c.env("AWS_ENDPOINT", endpoint)
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_REGION", REGION);
    c
}

/// A pass (`--json`) at `now`, with `extra` arguments; returns the exit code (-1 when killed by a signal), the
/// report and stderr.
fn pass(config: &Path, now: &str, extra: &[&str]) -> (i32, Value, String) {
    let (out, stdout, stderr) = common::run(
        retention_on(endpoint())
            .args(["run", "--json", "--now", now, "--config"])
            .arg(config)
            .args(extra),
    );
    let report = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), report, stderr)
}

/// The segments of a report: name -> (tier, action, outcome).
fn rows(report: &Value) -> BTreeMap<String, (String, String, String)> {
    report[0]["segments"]
        .as_array()
        .unwrap_or_else(|| panic!("no segments in {report:#}"))
        .iter()
        .map(|s| {
            let field = |k: &str| s[k].as_str().unwrap().to_string();
            (field("name"), (field("tier"), field("action"), field("outcome")))
        })
        .collect()
}

fn row(tier: &str, action: &str, outcome: &str) -> (String, String, String) {
    (tier.into(), action.into(), outcome.into())
}

fn key(rel: &str) -> String {
    format!("{PREFIX}/{rel}")
}

// ---------------------------------------------------------------------------------------------------------------------
// Tests.

/// Ages at NOW (2026-03-01): 0, 5, 15 and 40 days: keep, compress, archive, drop.
const FILES: [&str; 4] = [
    "api/info-2026-03-01.log",
    "api/info-2026-02-24.log",
    "api/info-2026-02-14.log",
    "api/info-2026-01-20.log",
];

fn tree_of(names: &[&str]) -> Tree {
    let files: Vec<(&str, usize)> = names.iter().map(|n| (*n, 20_000)).collect();
    Tree::new(&files)
}

#[test]
fn a_real_pass_archives_files_to_s3_with_identical_bytes_and_removes_the_local_copies() {
    let bucket = Bucket::new();
    // Besides the four ages: a name with a space (the request signature covers the encoded key) and a file larger
    // than the 8 MiB part size (a multipart upload of two parts).
    let big = "api/debug-2026-02-12.log";
    let spaced = "web app/info-2026-02-13.log";
    let mut files: Vec<(&str, usize)> = FILES.iter().map(|n| (*n, 20_000)).collect();
    files.push((big, 12 << 20));
    files.push((spaced, 30_000));
    let tree = Tree::new(&files);
    let config = tree.config(&bucket);

    let (code, report, stderr) = pass(&config, NOW, &[]);
    assert_eq!(code, 0, "{stderr}\n{report:#}");
    assert_eq!(report[0]["status"], "ok");
    let stats = &report[0]["stats"];
    assert_eq!(stats["archived"]["segments"], 3, "{stats}");
    assert_eq!(stats["archived"]["bytes"], 20_000 + (12 << 20) + 30_000, "{stats}");
    assert_eq!(stats["failed"], 0, "{stats}");
    assert!(
        report[0]["store"].as_str().unwrap().contains(&bucket.url()),
        "{}",
        report[0]["store"]
    );

    // The bucket holds exactly the archived files, byte for byte, under the prefix.
    let objects = bucket.objects();
    let want: BTreeMap<String, Vec<u8>> = ["api/info-2026-02-14.log", big, spaced]
        .iter()
        .map(|n| (key(n), tree.originals[*n].clone()))
        .collect();
    assert_eq!(objects.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
    for (k, bytes) in &want {
        assert!(objects[k] == *bytes, "the object {k} differs from its source");
    }
    // Locally: the kept file as it was, the compressed one, and nothing else.
    let local = tree.local();
    assert_eq!(
        local.keys().map(String::as_str).collect::<Vec<_>>(),
        ["api/info-2026-02-24.log.zst", "api/info-2026-03-01.log"]
    );
    assert_eq!(
        local["api/info-2026-03-01.log"],
        tree.originals["api/info-2026-03-01.log"]
    );
}

#[test]
fn an_object_that_appears_at_the_key_after_the_scan_is_never_overwritten_by_an_upload_small_or_in_parts() {
    let bucket = Bucket::new();
    // Two files 15 days old (archived at NOW): one up to a single PUT, one above the 8 MiB part size (staged, then
    // copied to its key without replacing anything); and one 5 days old, compressed first, slowly (level 19): the
    // window between the scan and the uploads in which another writer puts objects at both keys.
    let small = "api/info-2026-02-14.log";
    let big = "api/debug-2026-02-14.log";
    let slow = "api/info-2026-02-24.log";
    let tree = Tree::new(&[(small, 20_000), (big, 10 << 20), (slow, 2 << 20)]);
    let config = tree.config(&bucket);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("trash_grace_secs = 0", "trash_grace_secs = 0\ncompression_level = 19"),
    )
    .unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("[[dataset]]", "[[dataset]]\napply_parallelism = 1"),
    )
    .unwrap();
    let out = tree.dir.path().join("report.json");
    let mut child = retention_on(endpoint())
        .args(["run", "--json", "--now", NOW, "--config"])
        .arg(&config)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !std::fs::read_dir(tree.logs().join("api"))
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().ends_with(".retention-tmp"))
    {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the pass ended before the objects could be put"
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the compression never started"
        );
        std::thread::yield_now();
    }
    bucket.put(small, b"another writer's object");
    bucket.put(big, b"another writer's large object");
    assert!(
        child.try_wait().unwrap().is_none(),
        "too late: the pass was past its compression"
    );
    let status = child.wait().unwrap();
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(status.code(), Some(1), "{report:#}");
    for name in [small, big] {
        let r = report[0]["segments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap();
        assert_eq!(r["outcome"], "failed", "{report:#}");
        assert!(r["error"].as_str().unwrap().contains("already exists"), "{report:#}");
    }
    assert_eq!(bucket.object(small).unwrap(), b"another writer's object");
    assert_eq!(bucket.object(big).unwrap(), b"another writer's large object");
    assert_eq!(tree.local()[small], tree.originals[small], "the source stays");
    assert_eq!(tree.local()[big], tree.originals[big], "the source stays");
    assert_eq!(
        bucket.objects().len(),
        2,
        "no staged upload is left: {:?}",
        bucket.objects().keys()
    );
}

#[test]
fn archived_objects_are_scanned_back_as_archived_and_a_later_pass_drops_them() {
    let bucket = Bucket::new();
    let tree = tree_of(&FILES);
    let config = tree.config(&bucket);
    let (code, report, stderr) = pass(&config, NOW, &[]);
    assert_eq!(code, 0, "{stderr}\n{report:#}");
    assert!(bucket.object("api/info-2026-02-14.log").is_some());

    // The next scan lists the object as the archived tier of its segment; it is 15 days old: kept.
    let (code, report, stderr) = pass(&config, NOW, &["--dry-run"]);
    assert_eq!(code, 0, "{stderr}\n{report:#}");
    let r = rows(&report);
    assert_eq!(
        r["api/info-2026-02-14.log"],
        row("archived", "keep", "planned"),
        "{report:#}"
    );
    let archived = report[0]["segments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "api/info-2026-02-14.log")
        .unwrap();
    assert_eq!(archived["bytes"], 20_000);
    assert_eq!(report[0]["totals_before"]["archived"]["segments"], 1, "{report:#}");

    // 19 days later it is 34 days old, past drop_after_days: the pass deletes the object. The other two files reach
    // archive_after_days: the compressed one is archived as its .zst.
    let later = "2026-03-20T12:00:00Z";
    let (code, report, stderr) = pass(&config, later, &[]);
    assert_eq!(code, 0, "{stderr}\n{report:#}");
    let r = rows(&report);
    assert_eq!(
        r["api/info-2026-02-14.log"],
        row("archived", "drop", "done"),
        "{report:#}"
    );
    assert_eq!(r["api/info-2026-02-24.log"], row("compressed", "archive", "done"));
    assert_eq!(r["api/info-2026-03-01.log"], row("hot", "archive", "done"));
    assert_eq!(report[0]["stats"]["dropped"]["bytes"], 20_000);
    assert_eq!(bucket.object("api/info-2026-02-14.log"), None);
    assert_eq!(
        bucket.objects().into_keys().collect::<Vec<_>>(),
        [key("api/info-2026-02-24.log.zst"), key("api/info-2026-03-01.log")]
    );
    assert!(tree.local().is_empty(), "{:?}", tree.local().keys());
}

#[test]
fn a_dropped_s3_object_waits_in_the_archives_trash_is_restored_exactly_and_purged_after_its_grace() {
    let bucket = Bucket::new();
    let tree = tree_of(&FILES);
    let config = tree.config(&bucket);
    // The default grace (a day), and guards that let the last pass drop everything.
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace("trash_grace_secs = 0\n", "").replace(
        "max_drop_bytes_fraction = 1.0",
        "max_drop_bytes_fraction = 1.0\nmax_drop_segments_fraction = 1.0\nkeep_newest = 0",
    );
    std::fs::write(&config, text).unwrap();
    let name = "api/info-2026-02-14.log";
    let (code, report, stderr) = pass(&config, NOW, &[]);
    assert_eq!(code, 0, "{stderr}\n{report:#}");
    let archived = bucket.object(name).expect("archived");

    // 34 days old: dropped, which copies the object into the archive's trash and deletes it from its key.
    let later = "2026-03-20T12:00:00Z";
    let (code, report, stderr) = pass(&config, later, &[]);
    assert_eq!(code, 0, "{stderr}\n{report:#}");
    assert_eq!(rows(&report)[name], row("archived", "drop", "done"), "{report:#}");
    assert_eq!(report[0]["stats"]["trashed"]["segments"], 1, "{report:#}");
    assert_eq!(bucket.object(name), None);
    let trash_prefix = format!("{PREFIX}/.retention-trash/");
    let trashed: Vec<(String, Vec<u8>)> = bucket
        .objects()
        .into_iter()
        .filter(|(k, _)| k.starts_with(&trash_prefix))
        .collect();
    assert_eq!(
        trashed.len(),
        1,
        "{:?}",
        trashed.iter().map(|t| &t.0).collect::<Vec<_>>()
    );
    assert!(trashed[0].0.ends_with(&format!("/{name}")), "{}", trashed[0].0);
    assert_eq!(trashed[0].1, archived, "the trash holds the object's bytes");
    // A scan never shows the trash as segments.
    let (_, report, _) = pass(&config, later, &["--dry-run"]);
    assert!(
        !rows(&report).keys().any(|n| n.contains(".retention-trash")),
        "{report:#}"
    );

    let trash = |args: &[&str]| {
        common::run(
            retention_on(endpoint())
                .arg("trash")
                .args(args)
                .args(["--dataset", "logs", "--config"])
                .arg(&config),
        )
    };
    let (out, stdout, stderr) = trash(&["list", "--json"]);
    assert!(out.status.success(), "{stderr}");
    let listed: Value = serde_json::from_str(&stdout).unwrap();
    // (The first pass dropped a hot file into the dataset's own trash.)
    let entry = listed["trash"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("{listed:#}"));
    assert_eq!(entry["tier"], "archived", "{listed:#}");
    assert_eq!(entry["bytes"], archived.len(), "{listed:#}");
    let (out, _, stderr) = trash(&["restore", name]);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(bucket.object(name), Some(archived.clone()), "restored exactly");
    assert!(!bucket.objects().keys().any(|k| k.starts_with(&trash_prefix)));

    // Dropped again, then purged by a pass after the grace: gone for good, and counted.
    let (code, report, stderr) = pass(&config, later, &[]);
    assert_eq!(code, 0, "{stderr}\n{report:#}");
    assert_eq!(report[0]["stats"]["trashed"]["segments"], 1, "{report:#}");
    // (That now is far ahead of the clock: the purge by it has to be asked for.)
    let (code, report, stderr) = pass(&config, "2100-01-01T00:00:00Z", &["--purge-by-now"]);
    assert_eq!(code, 0, "{stderr}\n{report:#}");
    assert!(
        report[0]["stats"]["purged"]["segments"].as_u64() >= Some(1),
        "{report:#}"
    );
    assert_eq!(bucket.object(name), None);
    assert!(
        !bucket.objects().keys().any(|k| k.contains(name)),
        "{:?}",
        bucket.objects().keys()
    );
}

#[test]
fn a_compressed_file_is_archived_to_s3_under_its_zst_name() {
    let bucket = Bucket::new();
    // 15 days old and already compressed.
    let tree = tree_of(&["api/info-2026-02-14.log.zst", "api/info-2026-03-01.log"]);
    let zst = tree.originals["api/info-2026-02-14.log.zst"].clone();
    let config = tree.config(&bucket);

    let (code, report, stderr) = pass(&config, NOW, &[]);
    assert_eq!(code, 0, "{stderr}\n{report:#}");
    assert_eq!(
        rows(&report)["api/info-2026-02-14.log"],
        row("compressed", "archive", "done")
    );
    assert_eq!(
        bucket.objects().into_keys().collect::<Vec<_>>(),
        [key("api/info-2026-02-14.log.zst")]
    );
    let object = bucket.object("api/info-2026-02-14.log.zst").unwrap();
    assert!(object == zst, "the object differs from the .zst it was archived from");
    assert_eq!(
        zstd::decode_all(&object[..]).unwrap(),
        log_body("api/info-2026-02-14.log.zst", 20_000)
    );
    assert!(!tree.logs().join("api/info-2026-02-14.log.zst").exists());

    // Scanned back, it is the archived tier of the segment named without .zst, with the compressed size.
    let (code, report, stderr) = pass(&config, NOW, &["--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    let seg = report[0]["segments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "api/info-2026-02-14.log")
        .unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(seg["tier"], "archived");
    assert_eq!(seg["bytes"], zst.len() as u64);
}

/// Runs a pass over a one-file tree archiving to `url` on `endpoint`, which must be refused as a config error (exit
/// code 2) naming the dataset and the URL, with nothing touched; returns stderr.
fn refused_archive(endpoint: &str, url: &str) -> String {
    let tree = tree_of(&FILES[..1]);
    let config = tree.dir.path().join("retention.toml");
    std::fs::write(
        &config,
        format!(
            "plugin_dir = \"{}\"\n[[dataset]]\nname = \"logs\"\nplugin = \"age_tiering\"\n\
             [dataset.directory]\nroot = \"logs\"\narchive_url = \"{url}\"\n",
            common::plugin_dir().display()
        ),
    )
    .unwrap();
    let before = tree.local();
    let (out, stdout, stderr) = common::run(retention_on(endpoint).args(["run", "--config"]).arg(&config));
    assert_eq!(out.status.code(), Some(2), "{stderr}\n{stdout}");
    assert!(
        stderr.contains("dataset logs") && stderr.contains(url),
        "the error names the dataset and the archive URL: {stderr}"
    );
    assert!(stdout.is_empty(), "no pass ran: {stdout}");
    assert_eq!(tree.local(), before);
    stderr
}

#[test]
fn an_unreachable_s3_endpoint_is_a_config_error_naming_the_archive_url() {
    let nowhere = format!("127.0.0.1:{}", free_port());
    let stderr = refused_archive(&format!("http://{nowhere}"), "s3://retention-nowhere/retention/logs");
    assert!(stderr.contains(&nowhere), "the error says where it tried: {stderr}");
}

#[test]
fn a_missing_bucket_is_a_config_error_naming_the_archive_url() {
    let stderr = refused_archive(endpoint(), "s3://retention-test-no-such-bucket/retention/logs");
    assert!(stderr.contains("NoSuchBucket"), "{stderr}");
}

#[test]
fn a_crash_between_upload_and_source_removal_leaves_the_file_and_the_next_pass_keeps_one_archived_copy() {
    let name = "api/info-2026-02-14.log";
    let points: Vec<&str> = CRASH_POINTS
        .iter()
        .copied()
        .filter(|p| p.starts_with("archive:"))
        .collect();
    assert!(points.contains(&"archive:uploaded") && points.contains(&"archive:verified"));
    for point in points {
        let bucket = Bucket::new();
        let tree = tree_of(&[name, "api/info-2026-03-01.log"]);
        let original = tree.originals[name].clone();
        let config = tree.config(&bucket);

        let (out, _, stderr) = common::run(
            retention_on(endpoint())
                .env("RETENTION_CRASH_AT", point)
                .args(["run", "--json", "--now", NOW, "--config"])
                .arg(&config),
        );
        assert_eq!(
            out.status.signal(),
            Some(6),
            "{point}: expected an abort at the crash point, got {}; stderr:\n{stderr}",
            out.status
        );
        assert!(
            stderr.contains(&format!("crash point {point} reached")),
            "{point}: {stderr}"
        );
        // The object is complete as soon as the upload returns; the source is still there until its removal.
        assert!(
            bucket.object(name).as_ref() == Some(&original),
            "{point}: the uploaded object is missing or differs from its source"
        );
        let local = tree.local();
        if point == "archive:source-removed" {
            assert!(!local.contains_key(name), "{point}");
        } else {
            assert!(
                local.get(name) == Some(&original),
                "{point}: the source must be left in place, unchanged"
            );
        }

        // The next pass recovers first: the local copy equals the archived one and is removed.
        let (code, report, stderr) = pass(&config, NOW, &[]);
        assert_eq!(
            code, 0,
            "{point}: the pass after the crash failed: {stderr}\n{report:#}"
        );
        let resolved = &report[0]["recovery"]["duplicates_resolved"];
        if point == "archive:source-removed" {
            assert_eq!(resolved, &serde_json::json!([]), "{point}");
        } else {
            assert_eq!(resolved, &serde_json::json!([[name, "archived", "hot"]]), "{point}");
        }
        assert_eq!(rows(&report)[name], row("archived", "keep", "done"), "{point}");
        assert_eq!(report[0]["recovery"]["conflicts"], serde_json::json!([]), "{point}");
        let objects = bucket.objects();
        assert_eq!(
            objects.keys().collect::<Vec<_>>(),
            [&key(name)],
            "{point}: one archived copy"
        );
        assert!(
            objects[&key(name)] == original,
            "{point}: the archived copy is the original"
        );
        assert_eq!(
            tree.local().into_keys().collect::<Vec<_>>(),
            ["api/info-2026-03-01.log"],
            "{point}: no local copy left"
        );
    }
}
