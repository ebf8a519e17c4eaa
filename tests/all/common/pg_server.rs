//! A real PostgreSQL server for the tests and the benches (`#[path]`-included by `benches/postgres.rs`):
//! `RETENTION_TEST_PG_URL` when set (a superuser URL), else a throwaway cluster of the Debian `postgresql-15` binaries
//! started once per process on a free loopback port (as the `postgres` user when running as root: PostgreSQL refuses
//! root), stopped and removed when the process ends, however it ends (a shell waits for the end of a pipe this process
//! holds).

use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const BIN: &str = "/usr/lib/postgresql/15/bin";

/// The server's superuser URL, without a database: append `/dbname`.
pub fn server() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| match std::env::var("RETENTION_TEST_PG_URL") {
        Ok(u) if !u.is_empty() => u.trim_end_matches('/').to_string(),
        _ => start(),
    })
    .clone()
}

fn start() -> String {
    static SERVER: OnceLock<(Child, ChildStdin)> = OnceLock::new();
    assert!(
        std::path::Path::new(BIN).join("initdb").is_file(),
        "the PostgreSQL tests need a server: set RETENTION_TEST_PG_URL to one, or install Debian's postgresql-15 \
         (as .ci/run does) so that {BIN}/initdb exists and the tests start their own"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::Builder::new()
        .prefix("retention-pg-")
        .tempdir()
        .unwrap()
        .keep();
    let root = unsafe { libc::geteuid() } == 0;
    let as_pg = if root { "runuser -u postgres --" } else { "" };
    if root {
        assert!(
            Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&dir)
                .status()
                .unwrap()
                .success()
        );
    }
    let script = format!(
        r#"set -e
exec 3<&0
{as_pg} {BIN}/initdb -D "$1/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >"$1/initdb.log" 2>&1
{as_pg} {BIN}/pg_ctl -D "$1/data" -l "$1/server.log" -w -t 60 -o "-c listen_addresses=127.0.0.1 -p $2 -c unix_socket_directories=$1 -c fsync=off" start >/dev/null
{{ read -r _ <&3 || true; {as_pg} {BIN}/pg_ctl -D "$1/data" -m immediate -w stop >/dev/null 2>&1; rm -rf "$1"; }} &
wait"#
    );
    let mut child = Command::new("sh")
        .args(["-c", &script, "sh"])
        .arg(&dir)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("run sh to start postgres");
    let stdin = child.stdin.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = Command::new(format!("{BIN}/pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "postgres did not start:\n{}\n{}",
            std::fs::read_to_string(dir.join("initdb.log")).unwrap_or_default(),
            std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = SERVER.set((child, stdin));
    format!("postgres://postgres@127.0.0.1:{port}")
}
