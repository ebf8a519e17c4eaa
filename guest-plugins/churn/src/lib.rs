//! A test plugin for the service's hot swap; the source is shared: see `testing/swap.rs`.

include!("../../testing/swap.rs");
