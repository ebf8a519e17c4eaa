//! `loop-in-info`: a hostile plugin for the host's tests. It loops forever in `info`, the first call the host makes
//! when loading a plugin, so the load itself must be bounded by the call deadline and the plugin rejected. Everything
//! else behaves. Never point a real dataset at it.

wit_bindgen::generate!({ world: "plugin", path: "../../../wit" });

use exports::retention::policy::policy::Guest;
use retention::policy::types::{Action, PassContext, PassOptions, PluginInfo, SegmentBatch, Verdicts};

struct LoopInInfo;

impl Guest for LoopInInfo {
    fn info() -> PluginInfo {
        let mut x: u64 = 0;
        loop {
            x = std::hint::black_box(x.wrapping_add(1));
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
            actions: vec![Action::Keep as u8; batch.end_ms.len()],
            reasons: Vec::new(),
            reason_texts: Vec::new(),
        })
    }
}

export!(LoopInInfo);
