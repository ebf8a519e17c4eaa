//! `big-start`: a plugin whose linear memory starts at more than 80 MiB (a zeroed static array: no bytes in the file,
//! all of it in the initial memory), as an interpreter's heap does (Python needs ~14 MiB to start, StarlingMonkey ~9).
//! Under the default cap of 64 MiB the host must say what it needs and which setting to raise, without compiling it;
//! with `memory_limit_mib = 128` it behaves (keeps everything). Never point a real dataset at it.

wit_bindgen::generate!({ world: "plugin", path: "../../../wit" });

use exports::retention::policy::policy::Guest;
use retention::policy::types::{PassContext, PassOptions, PluginInfo, SegmentBatch, Verdicts};

const HEAP: usize = 80 << 20;
static mut BIG: [u8; HEAP] = [0; HEAP];

struct BigStart;

impl Guest for BigStart {
    fn info() -> PluginInfo {
        // Touch the array so that it is kept (and with it the initial memory size).
        let first = unsafe { std::ptr::read_volatile(std::ptr::addr_of!(BIG).cast::<u8>()) };
        PluginInfo {
            name: "big-start".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: format!("Starts with {} MiB of memory (first byte {first}).", HEAP >> 20),
        }
    }

    fn begin(_ctx: PassContext) -> Result<PassOptions, String> {
        Ok(PassOptions { observe_first: false })
    }

    fn observe(_batch: SegmentBatch) -> Result<(), String> {
        Ok(())
    }

    fn decide(batch: SegmentBatch) -> Result<Verdicts, String> {
        Ok(Verdicts {
            actions: vec![0; batch.end_ms.len()],
            reasons: Vec::new(),
            reason_texts: Vec::new(),
        })
    }
}

export!(BigStart);
