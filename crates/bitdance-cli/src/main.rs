//! `bitdance`: check a GPU, benchmark the kernels, and (with the model issues) generate and train.

mod bench;
mod convert;
mod doctor;
mod generate;
mod grid;
mod latent_cache;
mod quality;
mod run_loop;
mod train;
mod train_tokenizer;

use bitdance_files::{dataset, files};
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
    /// Time kernels, generation and training as the real commands run them, next to a reference.
    Bench(bench::BenchArgs),
    /// Convert an official PyTorch checkpoint (.pt) to safetensors without executing it.
    Convert(convert::ConvertArgs),
    /// Generate images of the given classes with a BitDance model.
    Generate(generate::GenerateArgs),
    /// Train an AR model on an image folder (official recipe; the tokenizer frozen).
    Train(train::TrainArgs),
    /// Fine-tune given weights (official or ours) on an image folder.
    Finetune(train::FinetuneArgs),
    /// Check a model: a classifier trained here labels its samples; tokenizer PSNR.
    Quality(quality::QualityArgs),
    /// Train the binary tokenizer (autoencoder) on an image folder.
    TrainTokenizer(train_tokenizer::TokenizerArgs),
}

fn main() -> std::process::ExitCode {
    // Piping into `head` must end quietly, not panic on a broken pipe.
    #[cfg(unix)]
    // SAFETY: restoring the default SIGPIPE action before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    #[cfg(unix)]
    quiet_wayland_probe();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Doctor(args) => doctor::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Convert(args) => convert::run(args),
        Command::Train(args) => train::run_train(args),
        Command::Finetune(args) => train::run_finetune(args),
        Command::TrainTokenizer(args) => train_tokenizer::run(args),
        Command::Quality(args) => quality::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Points `XDG_RUNTIME_DIR` at a private folder when it is unset or not a folder. wgpu always
/// enables the Vulkan Wayland surface extension on Linux, Mesa's drivers then probe for a
/// Wayland socket, and libwayland prints "error: XDG_RUNTIME_DIR is invalid or not set" on
/// headless machines. The CLI never opens a window; the folder (owned by this user, mode 0700,
/// never a symlink) only gives that probe a quiet place to find no socket.
#[cfg(unix)]
fn quiet_wayland_probe() {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    if std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| std::path::Path::new(&d).is_dir()) {
        return;
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let dir = std::env::temp_dir().join(format!("bitdance-xdg-{uid}"));
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    let private = std::fs::symlink_metadata(&dir)
        .is_ok_and(|m| m.is_dir() && m.uid() == uid && m.permissions().mode() & 0o077 == 0);
    if private {
        // Still single-threaded: nothing else reads the environment yet.
        std::env::set_var("XDG_RUNTIME_DIR", &dir);
    }
}

/// Opens the GPU chosen by `WGPU_BACKEND` / `BITDANCE_ADAPTER`.
fn open_gpu() -> anyhow::Result<bitdance::Gpu> {
    Ok(pollster::block_on(bitdance::Gpu::from_env())?)
}

/// The GPU of `open_gpu` with a memory budget of `budget_gib` GiB when given (else
/// `BITDANCE_MEMORY_BUDGET_GIB`, else the default), a positive number or an error naming it.
fn open_gpu_with_budget(budget_gib: Option<f64>) -> anyhow::Result<bitdance::Gpu> {
    let mut options = bitdance::gpu::GpuOptions::from_env()?;
    if let Some(gib) = budget_gib {
        anyhow::ensure!(
            gib.is_finite() && gib > 0.0,
            "--memory-budget {gib}: expected a positive number of GiB"
        );
        options.memory_budget = Some((gib * (1u64 << 30) as f64) as u64);
    }
    Ok(pollster::block_on(bitdance::Gpu::new(&options))?)
}
