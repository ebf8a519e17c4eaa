#!/usr/bin/env bash
# The first command a new user runs: builds the example plugins, generates a sample log tree, and runs a dry run and
# then a real pass on it with the embedded default store (a directory, with a file:// archive), printing the reports.
# Usage: ./demo.sh [DIR]   (default: a fresh directory under /tmp)
set -euo pipefail
cd "$(dirname "$0")"
dir="${1:-$(mktemp -d "${TMPDIR:-/tmp}/retention-demo.XXXXXX")}"
# The pinned toolchain and its wasm32-wasip2 target, from rust-toolchain.toml (a no-op once installed).
rustup toolchain install >/dev/null
# The README's plugin build command.
cargo build --release --target wasm32-wasip2 --manifest-path guest-plugins/Cargo.toml
cargo run --release --bin retention -- demo --dir "$dir" --plugin-dir guest-plugins/target/wasm32-wasip2/release
