//! The retention host: scans a dataset's segments, asks a sandboxed WebAssembly plugin what to do with each, checks
//! the plan against guards, and applies it crash-safely.
//!
//! The modules follow the data's path: [`config`] -> [`store`] (scan) -> [`plugin`] (plan) -> [`guard`] -> [`apply`]
//! -> [`report`], tied together by [`pass`]; [`cli`] is the command line over all of it. The service
//! ([`service`]: schedules, plugin directory, reloads) records into [`state`] and [`metrics`], and [`api`] serves
//! them over HTTP.

pub mod api;
pub mod cli;
pub mod config;
pub mod crashpoint;
pub mod execute;
pub mod lock;
pub mod metrics;
pub mod pass;
pub mod plugin;
pub mod segment;
pub mod service;
pub mod state;
pub mod store;
