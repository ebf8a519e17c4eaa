//! A test plugin for the service's hot swap; the source is shared: see `test-plugins/swap.rs`.

include!("../../swap.rs");
