//! `bitdance bench`: what the runtime does, timed as the real commands run it (warm-up first,
//! then repeated runs, min and median), next to a reference measured in the same run.

mod generate;
mod head;
mod kernels;
mod timing;
mod train;

use std::process::ExitCode;

use clap::{Args, ValueEnum};

use timing::Timing;

/// Options of `bitdance bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// What to measure.
    what: BenchKind,
    /// Print one JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    /// `matmul`: skip the tile autotune (use the adapter's default configuration).
    #[arg(long)]
    no_autotune: bool,
    /// `matmul`: time every candidate kernel configuration, not only the chosen one.
    #[arg(long)]
    all_configs: bool,
    /// Model for `generate` / `train` / `train-tokenizer`: a built-in name or a JSON config
    /// (default: the weights' stored config, else B-4x, for generate; tiny for training).
    #[arg(long)]
    config: Option<String>,
    /// `generate` / `head`: weights to sample with (safetensors by official names, e.g. the file that
    /// scripts/reference/bench_generate_torch.py writes); default: random weights.
    #[arg(long)]
    weights: Option<std::path::PathBuf>,
    /// `generate`: guidance scale (default: the published one of a built-in model, else 4).
    #[arg(long)]
    cfg: Option<f32>,
    /// `generate` / `head`: head sampling steps per AR step.
    #[arg(long, default_value_t = 100)]
    steps: usize,
    /// Images per pass for `generate` (times are per image; default 1) or per step for `train`
    /// and `train-tokenizer` (default 16).
    #[arg(long)]
    batch: Option<usize>,
    /// Timed runs after the warm-up (default: 5 per kernel shape, 10 training steps, 1 full
    /// generation).
    #[arg(long)]
    repeats: Option<usize>,
    /// `generate` / `head`: precision of the linear weights (f16 or f32).
    #[arg(long, default_value = "f16", value_parser = crate::generate::parse_precision)]
    precision: bitdance::model::Precision,
    /// After `train`, `train-tokenizer` or `generate`: time every kernel alone (one step, or the
    /// AR loop at 1 head step and the decoder) and print where the time goes.
    #[arg(long)]
    profile: bool,
    /// `train`: what trains (lora: rank 16 on the transformer's attention and MLP).
    #[arg(long, value_enum, default_value_t = crate::train::TrainsArg::Full)]
    train: crate::train::TrainsArg,
    /// `train`: gradient checkpointing (blocks recomputed in the backward).
    #[arg(long)]
    checkpointing: bool,
    /// `train` with `--train lora` or `embeddings`: the frozen base's linear weights in 16 bits.
    #[arg(long)]
    half_base: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum BenchKind {
    /// Matmul at the BitDance-B linear-layer shapes (prefill and one head step) and 1024^3.
    Matmul,
    /// Attention: causal prefill over the 319-token BitDance sequence and a 4-query decode step.
    Attention,
    /// Convolutions at the B decoder's widths (3x3 and 1x1).
    Conv,
    /// AR training steps per second (`--config`, official recipe, random weights and tokens).
    Train,
    /// Tokenizer training steps per second (`--config`'s autoencoder, random weights and images).
    TrainTokenizer,
    /// The full sampler of `bitdance generate` (default B-4x, random weights unless
    /// `--weights`): seconds per image, split into AR loop and decoder, and peak GPU memory.
    Generate,
    /// The diffusion head's sampler for one AR step (`--config`, default B-4x, random weights
    /// unless `--weights`, `--steps` head steps with CFG rows): seconds per AR step and per
    /// evaluation.
    Head,
}

/// Runs the chosen benchmark.
pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let gpu = crate::open_gpu()?;
    let a = gpu.adapter();
    if !args.json {
        println!("adapter: {} ({}, {})", a.name, a.backend, a.device_type);
    }
    let mut report = Report::new(args.json);
    match args.what {
        BenchKind::Matmul => kernels::matmul(
            &gpu,
            args.repeats.unwrap_or(5),
            args.no_autotune,
            args.all_configs,
            &mut report,
        )?,
        BenchKind::Attention => kernels::attention(&gpu, args.repeats.unwrap_or(5), &mut report)?,
        BenchKind::Conv => kernels::conv(&gpu, args.repeats.unwrap_or(5), &mut report)?,
        BenchKind::Train | BenchKind::TrainTokenizer => {
            let model = match args.what {
                BenchKind::Train => train::Model::Ar,
                _ => train::Model::Tokenizer,
            };
            args.train.check_half_base(args.half_base)?;
            let run = train::TrainRun {
                batch: args.batch.unwrap_or(16),
                repeats: args.repeats.unwrap_or(10),
                trains: args.train.trains(bitdance::train::LoraSpec::default()),
                checkpointing: args.checkpointing,
                half_base: args.half_base,
            };
            let config = args.config.as_deref().unwrap_or("tiny");
            train::run(&gpu, model, config, run, args.json, args.profile)?
        }
        BenchKind::Generate | BenchKind::Head => {
            let head = matches!(args.what, BenchKind::Head);
            let opts = generate::GenerateBench {
                config: args.config,
                weights: args.weights,
                cfg: args.cfg,
                head_steps: args.steps,
                batch: args.batch.unwrap_or(1),
                repeats: args.repeats.unwrap_or(if head { 5 } else { 1 }),
                precision: args.precision,
                json: args.json,
                profile: args.profile,
            };
            if head {
                head::run(&gpu, &opts)?
            } else {
                generate::run(&gpu, &opts)?
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Kernel rows, printed as they come: GFLOP/s of the GPU and of the CPU reference (median and
/// best run), and the ratio of the medians.
pub struct Report {
    json: bool,
    header_done: bool,
}

impl Report {
    fn new(json: bool) -> Self {
        Self {
            json,
            header_done: false,
        }
    }

    /// A line of context (skipped in JSON output).
    fn note(&mut self, text: &str) {
        if !self.json {
            println!("{text}");
        }
    }

    /// One measured shape: `flop` per call, per-call timings of the GPU and the reference.
    fn row(&mut self, bench: &str, shape: &str, flop: f64, gpu: &Timing, reference: &Timing) {
        let rate = |s: f64| flop / s / 1e9;
        let ratio = reference.median() / gpu.median();
        if self.json {
            println!(
                "{}",
                serde_json::json!({"bench": bench, "shape": shape,
                    "gflops": rate(gpu.median()), "gflops_best": rate(gpu.min()),
                    "reference_gflops": rate(reference.median()),
                    "reference_gflops_best": rate(reference.min()),
                    "ratio": ratio, "repeats": gpu.runs().len()})
            );
            return;
        }
        if !self.header_done {
            self.header_done = true;
            println!(
                "{:<10} {:<36} {:>19} {:>19} {:>7}",
                "bench", "shape", "GFLOP/s med (best)", "CPU med (best)", "ratio"
            );
        }
        println!(
            "{:<10} {:<36} {:>9.2} ({:>7.2}) {:>9.2} ({:>7.2}) {:>7.3}",
            bench,
            shape,
            rate(gpu.median()),
            rate(gpu.min()),
            rate(reference.median()),
            rate(reference.min()),
            ratio
        );
    }
}

/// Prints the kernels of a profile (`Gpu::start_profiling`) with their share of the time:
/// every kernel above 1%, the rest summed.
pub fn print_profile(rows: &[bitdance::gpu::KernelTime], what: &str) {
    let total: f64 = rows.iter().map(|r| r.seconds).sum();
    let calls: u64 = rows.iter().map(|r| r.calls).sum();
    println!(
        "profile of {what}: {calls} dispatches, {total:.2} s with each dispatch waited for alone"
    );
    println!(
        "  {:>6} {:>9} {:>8} {:>9}  kernel",
        "share", "seconds", "calls", "us/call"
    );
    let mut rest = (0.0, 0u64);
    for r in rows {
        if r.seconds < 0.01 * total {
            rest = (rest.0 + r.seconds, rest.1 + r.calls);
            continue;
        }
        println!(
            "  {:>5.1}% {:>9.3} {:>8} {:>9.1}  {}",
            100.0 * r.seconds / total,
            r.seconds,
            r.calls,
            1e6 * r.seconds / r.calls as f64,
            r.kernel
        );
    }
    if rest.1 > 0 {
        println!(
            "  {:>5.1}% {:>9.3} {:>8} {:>9}  (kernels under 1% each)",
            100.0 * rest.0 / total,
            rest.0,
            rest.1,
            ""
        );
    }
}
