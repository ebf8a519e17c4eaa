//! TimescaleDB for the hypertable tests: `RETENTION_TEST_TSDB_URL` when set, else the pglite build of
//! `tests/timescaledb/` (PostgreSQL 17.5 compiled to WebAssembly with TimescaleDB 2.23, from npm, pinned by its
//! `package-lock.json`; installed with `npm ci` there by the first run, or by `.ci/run`) started once per process on a free loopback port, its
//! data in a temporary directory, gone with the process (it exits when its stdin, which this process holds, closes).
//! It serves one connection at a time and all connections share one session: [`lock`] serialises the tests.

use std::io::BufRead;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// The server's URL (any password; `sslmode=disable`), without a database: it has one, `postgres`.
pub fn server() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| match std::env::var("RETENTION_TEST_TSDB_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => start(),
    })
    .clone()
}

/// Held by each hypertable test for its whole run: the server has one session for everyone.
pub fn lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn start() -> String {
    static SERVER: OnceLock<(Child, ChildStdin)> = OnceLock::new();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/timescaledb");
    if !dir.join("node_modules/@electric-sql/pglite").is_dir() {
        // The first run installs the pinned server from the npm registry, as the SDK tests do their tools.
        let out = Command::new("npm")
            .args([
                "ci",
                "--no-audit",
                "--no-fund",
                "--legacy-peer-deps",
                "--loglevel=error",
            ])
            .current_dir(&dir)
            .output()
            .expect("run npm (Node.js 20+ with npm is needed, as for the TypeScript SDK's tests)");
        assert!(
            out.status.success(),
            "the hypertable tests need TimescaleDB: `npm ci` in {} failed (set RETENTION_TEST_TSDB_URL to a \
             TimescaleDB instead):\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let data = tempfile::Builder::new()
        .prefix("retention-tsdb-")
        .tempdir()
        .unwrap()
        .keep();
    let mut child = Command::new("node")
        .arg(dir.join("server.mjs"))
        .arg(&data)
        .arg(port.to_string())
        .arg("--until-stdin-closes")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run node to start TimescaleDB");
    let stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.starts_with("ready") => break,
            Some(Ok(_)) => continue,
            _ => panic!("TimescaleDB (node {}/server.mjs) did not start", dir.display()),
        }
    }
    // Its later output (the server's notices) is read and dropped, so that it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let _ = SERVER.set((child, stdin));
    format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode=disable")
}
