//! The end-to-end tests: the real `retention` binary, real compiled plugins, real files in temp dirs, real servers
//! (moto for S3). One test binary with a module per area, so that the tests link once rather than once per area
//! (each links wasmtime); `common` holds what they share (building the plugins, running the binary, configs, the
//! content census).

mod common;

mod boundary;
mod crash;
mod e2e;
mod faults;
mod guest;
mod hostile;
mod new;
mod output;
mod plugins;
mod postgres;
mod postgres_archive;
mod postgres_bucket_archive;
mod postgres_buckets;
mod postgres_drop;
mod s3;
mod sandbox;
mod service;
mod shadow;
mod timescaledb;
mod trash;
mod trust;
