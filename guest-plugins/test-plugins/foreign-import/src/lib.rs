//! `foreign-import`: a hostile plugin for the host's tests that imports `wasi:keyvalue`, a WASI interface the host does not
//! provide. The host must refuse to load it, naming the import and what to do. Never point a real dataset at it.

wit_bindgen::generate!({ world: "plugin", path: "wit", generate_all });

use exports::retention::policy::policy::Guest;
use retention::policy::types::{PassContext, PassOptions, PluginInfo, SegmentBatch, Verdicts};

struct ForeignImport;

impl Guest for ForeignImport {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "foreign-import".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Imports wasi:keyvalue, for the host's tests.".into(),
        }
    }

    fn begin(_ctx: PassContext) -> Result<PassOptions, String> {
        // The call that makes the import real (an unused import is dropped from the component).
        wasi::keyvalue::store::get("key");
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

export!(ForeignImport);
