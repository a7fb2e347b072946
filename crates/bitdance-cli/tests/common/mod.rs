//! What the CLI's integration tests share.

use std::process::Command;

/// Runs the `bitdance` binary under test with `args`: whether it succeeded, and its stdout
/// followed by its stderr.
pub fn run_bitdance(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bitdance"))
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}
