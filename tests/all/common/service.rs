//! Helpers for tests of `retention serve`: a temp setup (data tree, plugin directory, config), the real binary as a
//! service, and a minimal HTTP client over std.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::{plugin, retention};
use serde_json::Value;

pub const TOKEN: &str = "test-token-0123456789abcdef";

/// A minimal HTTP/1.1 client over std: one request per connection.
pub fn http(port: u16, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    request(port, method, path, token, None)
}

/// Like [`http`], with a JSON body.
pub fn request(port: u16, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the service");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let body = body.unwrap_or("");
    let kind = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/json\r\n"
    };
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}{kind}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

pub fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").unwrap();
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
}

pub fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// Polls `f` until it returns `Some`, for at most 60 s.
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A data tree, a plugin directory and a config, in a temp dir.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl Setup {
    /// `files` small log files under `logs/`; `policy.wasm` is a copy of the plugin `stem`.
    pub fn new(stem: &str, files: usize) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        for i in 0..files {
            std::fs::write(logs.join(format!("app-{i:03}.log")), format!("line {i}\n").repeat(200)).unwrap();
        }
        std::fs::create_dir(dir.path().join("plugins")).unwrap();
        let s = Setup { dir, port: free_port() };
        s.put_plugin("policy", std::fs::read(plugin(stem)).unwrap());
        s
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn plugins(&self) -> PathBuf {
        self.path().join("plugins")
    }

    /// Writes a plugin the documented way: to a temporary name in the directory, then renamed into place.
    pub fn put_plugin(&self, name: &str, bytes: Vec<u8>) {
        let tmp = self.plugins().join(format!(".{name}.wasm.tmp"));
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, self.plugins().join(format!("{name}.wasm"))).unwrap();
    }

    /// Writes the config; `dataset_extra` goes into the dataset table, `service_extra` into `[service]`.
    pub fn config(&self, dataset_extra: &str, service_extra: &str) -> PathBuf {
        let text = format!(
            r#"plugin_dir = "plugins"
[service]
listen = "127.0.0.1:{port}"
state_dir = "state"
shutdown_timeout_ms = 20000
{service_extra}
[[dataset]]
name = "logs"
plugin = "policy"
{dataset_extra}
[dataset.directory]
root = "logs"
"#,
            port = self.port
        );
        let p = self.path().join("retention.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn start(&self, config: &Path, token: Option<&str>) -> Service {
        let log = self
            .path()
            .join(format!("service-{}.log", Instant::now().elapsed().as_nanos()));
        let mut cmd = retention();
        cmd.arg("serve")
            .arg("--config")
            .arg(config)
            .env("RETENTION_LOG", "info")
            .env_remove("RETENTION_API_TOKEN")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        if let Some(t) = token {
            cmd.env("RETENTION_API_TOKEN", t);
        }
        let child = cmd.spawn().expect("start retention serve");
        let mut svc = Service {
            child,
            port: self.port,
            log,
        };
        wait_for("the service to be ready", || {
            if let Ok(Some(status)) = svc.child.try_wait() {
                panic!("the service exited with {status}:\n{}", svc.log());
            }
            TcpStream::connect(("127.0.0.1", svc.port)).ok()?;
            (http(svc.port, "GET", "/readyz", None).0 == 200).then_some(())
        });
        svc
    }
}

pub struct Service {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Service {
    pub fn get(&self, path: &str) -> (u16, Value) {
        let (s, b) = http(self.port, "GET", path, None);
        (s, json(&b))
    }

    pub fn post_json(&self, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
        let (s, b) = request(self.port, "POST", path, token, Some(body));
        (s, json(&b))
    }

    pub fn post(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let (s, b) = http(self.port, "POST", path, token);
        (s, json(&b))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn plugin(&self, name: &str) -> Value {
        let (s, v) = self.get(&format!("/v1/plugins/{name}"));
        assert_eq!(s, 200, "{v}");
        v
    }

    pub fn active_version(&self, name: &str) -> Option<String> {
        self.plugin(name)["plugin"]["active"]["version"]
            .as_str()
            .map(String::from)
    }

    pub fn events(&self, name: &str) -> Vec<Value> {
        self.plugin(name)["events"].as_array().unwrap().clone()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    /// SIGTERM, then the exit status.
    pub fn stop(mut self) -> (ExitStatus, String) {
        self.signal("-TERM");
        let status = wait_for("the service to exit", || self.child.try_wait().unwrap());
        (status, self.log())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
