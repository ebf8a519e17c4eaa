//! The only `bindgen!` of the host: Rust types and call stubs generated from `wit/retention.wit`.
//!
//! Everything else in the host uses these through `plugin::` re-exports, so a WIT change surfaces as compile errors in
//! one place.

wasmtime::component::bindgen!({
    world: "plugin",
    path: "../wit",
});

pub use retention::policy::host::{LogLevel, SegmentNames};
pub use retention::policy::types::{
    Action as WitAction, DatasetTotals, LabelColumn, Param, PassContext, PassOptions, SegmentBatch, Tier as WitTier,
    TierTotals, Verdicts,
};

/// The WIT package and world this host implements, as they appear in component import/export names.
pub const PACKAGE: &str = "retention:policy";
pub const POLICY_EXPORT: &str = "retention:policy/policy@0.1.0";
pub const HOST_IMPORT: &str = "retention:policy/host@0.1.0";
pub const TYPES_IMPORT: &str = "retention:policy/types@0.1.0";
pub const WORLD: &str = "retention:policy/plugin@0.1.0";
