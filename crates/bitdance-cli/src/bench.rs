//! `bitdance bench`: kernel throughput next to a CPU reference from the same run
//! (matrixmultiply's SGEMM on every core), with the ratio.

use std::process::ExitCode;
use std::time::Instant;

use bitdance::ops::{self, AttentionMask};
use clap::{Args, ValueEnum};

/// Options of `bitdance bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// What to measure.
    what: BenchKind,
    /// Print one JSON object per line (fields bench, shape, gflops, reference_gflops, ratio).
    #[arg(long)]
    json: bool,
    /// Skip the matmul tile autotune (use the adapter's default configuration).
    #[arg(long)]
    no_autotune: bool,
    /// Model for `bench generate` / `bench train` / `bench train-tokenizer`: a built-in name or
    /// a JSON config (default: B-4x for generate, tiny for training).
    #[arg(long)]
    config: Option<String>,
    /// Guidance scale for `bench generate`.
    #[arg(long, default_value_t = 3.9)]
    cfg: f32,
    /// Images per pass for `bench generate` (times are per image; default 1) or per step for
    /// `bench train` and `bench train-tokenizer` (default 16).
    #[arg(long)]
    batch: Option<usize>,
    /// Timed iterations per shape (after one warm-up).
    #[arg(long, default_value_t = 3)]
    iters: usize,
    /// After `train`, `train-tokenizer` or `generate`: time every kernel alone (one step, or the
    /// AR loop at 2 head steps and the decoder) and print where the time goes.
    #[arg(long)]
    profile: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum BenchKind {
    /// Matmul at the BitDance-B shapes (prefill and one head step) and 1024^3.
    Matmul,
    /// Attention: causal prefill over the 319-token BitDance sequence and a 4-query decode step.
    Attention,
    /// AR training steps per second (`--config`, official recipe, random weights and tokens).
    Train,
    /// Tokenizer training steps per second (`--config`'s autoencoder, random weights and images).
    TrainTokenizer,
    /// One 256x256 image with random weights (`--config`, default B-4x): seconds per image, split
    /// into transformer, head and decoder, and peak GPU memory.
    Generate,
}

/// One measured row.
struct Row {
    bench: &'static str,
    shape: String,
    gflops: f64,
    reference_gflops: f64,
}

/// Runs the chosen benchmark.
pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let gpu = crate::open_gpu()?;
    if !args.json && !matches!(args.what, BenchKind::Generate | BenchKind::Train) {
        let a = gpu.adapter();
        println!("adapter: {} ({}, {})", a.name, a.backend, a.device_type);
        println!(
            "{:<10} {:<28} {:>10} {:>16} {:>7}",
            "bench", "shape", "GFLOP/s", "CPU GFLOP/s", "ratio"
        );
    }
    let iters = args.iters.max(1);
    let emit = |row: Row| {
        let ratio = row.gflops / row.reference_gflops;
        if args.json {
            println!(
                "{}",
                serde_json::json!({"bench": row.bench, "shape": row.shape, "gflops": row.gflops,
                    "reference_gflops": row.reference_gflops, "ratio": ratio})
            );
        } else {
            println!(
                "{:<10} {:<28} {:>10.2} {:>16.2} {:>7.3}",
                row.bench, row.shape, row.gflops, row.reference_gflops, ratio
            );
        }
    };
    match args.what {
        BenchKind::Matmul => {
            if !args.no_autotune {
                let best = ops::autotune_matmul(&gpu)?;
                if !args.json {
                    println!("autotune   chose {best:?}");
                }
            }
            // The transformer's prefill shapes, a head linear at one sampling step (8 rows:
            // 4 tokens x cond/uncond) and a square reference.
            for (m, k, n) in [
                (256, 768, 2304),
                (8, 768, 2304),
                (256, 768, 4096),
                (256, 2048, 768),
                (1024, 1024, 1024),
            ] {
                let gflops = ops::bench_matmul(&gpu, m, k, n, iters)?;
                let reference_gflops = cpu_sgemm_gflops(m, k, n, iters);
                emit(Row {
                    bench: "matmul",
                    shape: format!("[{m}x{k}]x[{k}x{n}]"),
                    gflops,
                    reference_gflops,
                });
            }
        }
        BenchKind::Attention => {
            let (h, d) = (12, 64);
            for (tq, tk) in [(319usize, 319usize), (4, 319)] {
                let gflops =
                    ops::bench_attention(&gpu, 1, h, tq, tk, d, AttentionMask::Causal, iters)?;
                let reference_gflops = cpu_attention_gflops(h, tq, tk, d, iters);
                emit(Row {
                    bench: "attention",
                    shape: format!("B1 H{h} Tq{tq} Tk{tk} D{d}"),
                    gflops,
                    reference_gflops,
                });
            }
        }
        BenchKind::Train | BenchKind::TrainTokenizer => {
            let batch = args.batch.unwrap_or(16);
            let model = match args.what {
                BenchKind::Train => crate::bench_train::Model::Ar,
                _ => crate::bench_train::Model::Tokenizer,
            };
            return crate::bench_train::run(
                &gpu,
                model,
                args.config.as_deref().unwrap_or("tiny"),
                batch,
                iters,
                args.json,
                args.profile,
            );
        }
        BenchKind::Generate => {
            return crate::bench_generate::run(
                &gpu,
                args.config.as_deref().unwrap_or("B-4x"),
                args.cfg,
                args.batch.unwrap_or(1),
                args.json,
                args.profile,
            )
        }
    }
    Ok(ExitCode::SUCCESS)
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

/// C[m,n] = A[m,k] B[k,n] with matrixmultiply (row-major), in GFLOP/s (best of `iters`).
fn cpu_sgemm_gflops(m: usize, k: usize, n: usize, iters: usize) -> f64 {
    let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
    let mut c = vec![0f32; m * n];
    let mut best = f64::INFINITY;
    for _ in 0..=iters {
        let t = Instant::now();
        sgemm(m, k, n, &a, &b, &mut c, false);
        best = best.min(t.elapsed().as_secs_f64());
    }
    2.0 * (m * k * n) as f64 / best / 1e9
}

/// Row-major SGEMM, optionally with B given as [n, k] (transposed).
fn sgemm(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32], b_t: bool) {
    let (rsb, csb) = if b_t {
        (1, k as isize)
    } else {
        (n as isize, 1)
    };
    // SAFETY: the slices hold m*k, k*n and m*n elements, matching the strides given.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            rsb,
            csb,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// Causal attention per head on the CPU (SGEMM for QKᵀ and PV, softmax in between), GFLOP/s.
fn cpu_attention_gflops(h: usize, tq: usize, tk: usize, d: usize, iters: usize) -> f64 {
    let q: Vec<f32> = (0..tq * d)
        .map(|i| ((i % 11) as f32 - 5.0) * 0.05)
        .collect();
    let k: Vec<f32> = (0..tk * d)
        .map(|i| ((i % 13) as f32 - 6.0) * 0.05)
        .collect();
    let v = k.clone();
    let mut s = vec![0f32; tq * tk];
    let mut o = vec![0f32; tq * d];
    let scale = 1.0 / (d as f32).sqrt();
    let mut best = f64::INFINITY;
    for _ in 0..=iters {
        let t = Instant::now();
        for _ in 0..h {
            sgemm(tq, d, tk, &q, &k, &mut s, true);
            for (i, row) in s.chunks_mut(tk).enumerate() {
                let visible = tk - tq + i + 1;
                let max = row[..visible]
                    .iter()
                    .fold(f32::MIN, |a, &b| a.max(b * scale));
                let mut sum = 0.0;
                for x in row[..visible].iter_mut() {
                    *x = (*x * scale - max).exp();
                    sum += *x;
                }
                row[..visible].iter_mut().for_each(|x| *x /= sum);
                row[visible..].iter_mut().for_each(|x| *x = 0.0);
            }
            sgemm(tq, tk, d, &s, &v, &mut o, false);
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    4.0 * (h * tq * tk * d) as f64 / best / 1e9
}
