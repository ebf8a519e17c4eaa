//! The guest side's own tests, run by the README's test command: the SDK's unit tests (its `testing` module among
//! them) and the example plugins' native tests, with the command `guest-plugins/README.md` gives a plugin author.

use std::process::Command;

use crate::common;

#[test]
fn the_sdk_and_the_example_plugins_pass_their_native_tests() {
    let guest = common::repo_root().join("guest-plugins");
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(common::repo_root())
        .args(["test", "--manifest-path"])
        .arg(guest.join("Cargo.toml"))
        .args(["--target", "host-tuple", "--workspace", "--target-dir"])
        .arg(guest.join("target"))
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .output()
        .expect("run cargo test for the guest workspace");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the guest tests failed:\n{stdout}\n{stderr}");
    let passed: usize = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .filter_map(|l| l.split(' ').next()?.parse::<usize>().ok())
        .sum();
    assert!(passed >= 50, "the guest tests ran only {passed} tests:\n{stdout}");
}
