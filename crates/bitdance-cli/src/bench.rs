//! `bitdance bench`: kernel throughput next to a CPU reference from the same run.

use std::process::ExitCode;

use clap::{Args, ValueEnum};

/// Options of `bitdance bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// What to measure.
    what: BenchKind,
    /// Print one JSON object per line.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum BenchKind {
    Matmul,
    Attention,
}

/// Runs the chosen benchmark.
pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let _ = (args.what, args.json);
    anyhow::bail!("bench: not wired yet")
}
