//! `bitdance`: check a GPU, benchmark the kernels, and (with the model issues) generate and train.

mod bench;
mod bench_generate;
mod classes;
mod doctor;
mod files;
mod generate;
mod grid;

use clap::{Parser, Subcommand};

/// BitDance on WebGPU: binary-token image generation on any GPU.
#[derive(Parser)]
#[command(name = "bitdance", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the adapter, its limits and features, then check every kernel against its CPU reference.
    Doctor(doctor::DoctorArgs),
    /// Measure kernel throughput next to a CPU reference measured in the same run.
    Bench(bench::BenchArgs),
    /// Generate images of the given classes with a BitDance model.
    Generate(generate::GenerateArgs),
}

fn main() -> std::process::ExitCode {
    // Piping into `head` must end quietly, not panic on a broken pipe.
    #[cfg(unix)]
    // SAFETY: restoring the default SIGPIPE action before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Doctor(args) => doctor::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Generate(args) => generate::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Opens the GPU chosen by `WGPU_BACKEND` / `BITDANCE_ADAPTER`.
fn open_gpu() -> anyhow::Result<bitdance::Gpu> {
    Ok(pollster::block_on(bitdance::Gpu::from_env())?)
}
