//! `printer`: a plugin that writes to stdout and stderr in every call (`info`, `begin`, `observe`, `decide`), as
//! Python's `print`, JavaScript's `console.log` or a Rust `println!` do, so that the host's tests can prove that a
//! plugin's output never crashes a command, never reaches the host's own stdout, and lands in the plugin's log.
//! Not an example; never point a real dataset at it.
//!
//! Parameters:
//! - `raise_in = begin|observe|decide`: in that call, write a traceback-like account to stderr and panic (the
//!   panic message goes to stderr too), the way an uncaught Python exception ends a componentize-py plugin;
//! - `flood_mib = N`: in every `decide`, write N MiB to stdout without a newline and N MiB of short lines to stderr
//!   (the host must bound what it keeps, and never block).
//!
//! Otherwise it keeps every segment, with the reason `printed`.

use std::cell::RefCell;
use std::io::Write;

wit_bindgen::generate!({ world: "plugin", path: "../../../wit" });

use exports::retention::policy::policy::Guest;
use retention::policy::types::{Action, PassContext, PassOptions, PluginInfo, SegmentBatch, Verdicts};

thread_local! {
    static PARAMS: RefCell<(String, u64)> = const { RefCell::new((String::new(), 0)) };
}

struct Printer;

fn raise_if(call: &str) {
    if PARAMS.with(|p| p.borrow().0 == call) {
        eprintln!("Traceback (most recent call last):");
        eprintln!("  File \"app.py\", line 12, in {call}");
        eprintln!("ValueError: printer raises in {call}");
        panic!("printer: deliberate failure in {call}");
    }
}

impl Guest for Printer {
    fn info() -> PluginInfo {
        println!("printer: info on stdout");
        eprintln!("printer: info on stderr");
        PluginInfo {
            name: "printer".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Writes to stdout and stderr in every call, for the host's tests.".into(),
        }
    }

    fn begin(ctx: PassContext) -> Result<PassOptions, String> {
        println!("printer: begin on stdout ({} params)", ctx.params.len());
        eprintln!("printer: begin on stderr");
        let get = |k: &str| ctx.params.iter().find(|p| p.key == k).map(|p| p.value.clone());
        let raise_in = get("raise_in").unwrap_or_default();
        let flood_mib = get("flood_mib")
            .map_or(Ok(0), |v| v.parse::<u64>())
            .map_err(|e| format!("flood_mib: {e}"))?;
        PARAMS.with(|p| *p.borrow_mut() = (raise_in, flood_mib));
        raise_if("begin");
        Ok(PassOptions { observe_first: true })
    }

    fn observe(batch: SegmentBatch) -> Result<(), String> {
        println!("printer: observe {} segments", batch.end_ms.len());
        raise_if("observe");
        Ok(())
    }

    fn decide(batch: SegmentBatch) -> Result<Verdicts, String> {
        let n = batch.end_ms.len();
        println!("printer: decide {n} segments");
        eprint!("printer: decide on stderr, ");
        eprintln!("in two writes");
        raise_if("decide");
        let flood = PARAMS.with(|p| p.borrow().1);
        if flood > 0 {
            let chunk = vec![b'x'; 1 << 20];
            let mut out = std::io::stdout().lock();
            let mut err = std::io::stderr().lock();
            for _ in 0..flood {
                let _ = out.write_all(&chunk);
                for _ in 0..(1 << 20) / 16 {
                    let _ = err.write_all(b"flood line 123\n");
                }
            }
            let _ = out.flush();
        }
        Ok(Verdicts {
            actions: vec![Action::Keep as u8; n],
            reasons: vec![1; n],
            reason_texts: vec!["printed".into()],
        })
    }
}

export!(Printer);
