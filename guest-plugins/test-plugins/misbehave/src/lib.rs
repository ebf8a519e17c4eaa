//! `misbehave`: a plugin that breaks the rules on purpose, so that the host's tests can prove that a bad plugin costs
//! one pass and never the service or the data. Not an example; never point a real dataset at it.
//!
//! The parameter `mode` picks the misbehaviour, in `decide` unless the name says otherwise:
//! - `loop`, `loop-begin`: an endless loop (the host's deadline must stop it);
//! - `oom`: grows memory without bound (the host's memory cap must stop it);
//! - `trap`: panics (a trap);
//! - `wrong-count`: one action fewer than segments;
//! - `compress-all`: compresses every segment, whatever its tier (invalid for compressed and archived ones);
//! - `bad-reason`: a reason index past the reason texts;
//! - `slow`: busy for `slow_ms` milliseconds per batch, then keeps everything (must succeed within the deadline);
//! - `log-flood`: logs 100,000 lines per batch, then keeps everything (the host must bound what it keeps);
//! - `huge-reason`: keeps everything with a 1 MiB reason (the host must cut it);
//! - `refuse`: returns an error from `decide`;
//! - `snoop`: tries to read a host file, the environment, its arguments and to open a socket, and keeps everything
//!   with a reason saying what it got (the host's empty WASI context must deny all of it);
//! - `keep`: behaves.
//!
//! With `good_batches = N`, the first N `decide` calls behave (compress every hot segment, a valid plan) before the
//! misbehaviour starts: the host must then apply none of those earlier, valid decisions.

use std::cell::RefCell;

wit_bindgen::generate!({ world: "plugin", path: "../../../wit" });

use exports::retention::policy::policy::Guest;
use retention::policy::host::{LogLevel, log};
use retention::policy::types::{Action, PassContext, PassOptions, PluginInfo, SegmentBatch, Tier, Verdicts};

thread_local! {
    static MODE: RefCell<(String, u64, u64)> = const { RefCell::new((String::new(), 0, 0)) };
}

struct Misbehave;

fn keep_all(n: usize, reason: Option<String>) -> Verdicts {
    Verdicts {
        actions: vec![Action::Keep as u8; n],
        reasons: if reason.is_some() { vec![1; n] } else { Vec::new() },
        reason_texts: reason.into_iter().collect(),
    }
}

impl Guest for Misbehave {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "misbehave".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Breaks the plugin contract on purpose, for the host's sandbox tests.".into(),
        }
    }

    fn begin(ctx: PassContext) -> Result<PassOptions, String> {
        let get = |k: &str| ctx.params.iter().find(|p| p.key == k).map(|p| p.value.clone());
        let mode = get("mode").ok_or("parameter `mode` is required")?;
        let number = |k: &str| {
            get(k)
                .map_or(Ok(0), |v| v.parse::<u64>())
                .map_err(|e| format!("{k}: {e}"))
        };
        let slow_ms = number("slow_ms")?;
        let good_batches = number("good_batches")?;
        if mode == "loop-begin" {
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        MODE.with(|m| *m.borrow_mut() = (mode, slow_ms, good_batches));
        Ok(PassOptions { observe_first: false })
    }

    fn observe(_batch: SegmentBatch) -> Result<(), String> {
        Ok(())
    }

    fn decide(batch: SegmentBatch) -> Result<Verdicts, String> {
        let n = batch.end_ms.len();
        let (mode, slow_ms, good_batches) = MODE.with(|m| {
            let mut m = m.borrow_mut();
            let current = m.clone();
            m.2 = m.2.saturating_sub(1);
            current
        });
        if good_batches > 0 {
            let actions = batch
                .tiers
                .iter()
                .map(|&t| {
                    if t == Tier::Hot as u8 {
                        Action::Compress as u8
                    } else {
                        Action::Keep as u8
                    }
                })
                .collect();
            return Ok(Verdicts {
                actions,
                reasons: Vec::new(),
                reason_texts: Vec::new(),
            });
        }
        match mode.as_str() {
            "loop" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "oom" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "trap" => panic!("misbehave: deliberate panic in decide"),
            "wrong-count" => Ok(Verdicts {
                actions: vec![Action::Keep as u8; n.saturating_sub(1)],
                reasons: Vec::new(),
                reason_texts: Vec::new(),
            }),
            "compress-all" => Ok(Verdicts {
                actions: vec![Action::Compress as u8; n],
                reasons: Vec::new(),
                reason_texts: Vec::new(),
            }),
            "bad-reason" => Ok(Verdicts {
                actions: vec![Action::Keep as u8; n],
                reasons: vec![7; n],
                reason_texts: vec!["only one".into()],
            }),
            "slow" => {
                let start = std::time::Instant::now();
                while start.elapsed().as_millis() < u128::from(slow_ms) {
                    std::hint::black_box(());
                }
                Ok(keep_all(n, Some("slow but in time".into())))
            }
            "log-flood" => {
                for i in 0..100_000 {
                    log(LogLevel::Info, &format!("flood line {i}"));
                }
                Ok(keep_all(n, None))
            }
            "huge-reason" => Ok(keep_all(n, Some("x".repeat(1 << 20)))),
            "refuse" => Err("misbehave refuses to decide".into()),
            "snoop" => {
                let file = std::fs::read_to_string("/etc/passwd")
                    .map(|s| s.len())
                    .map_err(|e| e.to_string());
                let env = std::env::vars().count();
                let args = std::env::args().count();
                let socket = std::net::TcpStream::connect("127.0.0.1:22")
                    .map(|_| ())
                    .map_err(|e| e.to_string());
                Ok(keep_all(
                    n,
                    Some(format!("file={file:?} env={env} args={args} socket={socket:?}")),
                ))
            }
            "keep" => Ok(keep_all(n, None)),
            other => Err(format!("unknown mode {other:?}")),
        }
    }
}

export!(Misbehave);
