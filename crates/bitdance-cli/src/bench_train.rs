//! `bitdance bench train`: AR training steps per second (official recipe, random weights and
//! random tokens), forward + backward + AdamW + EMA, after warm-up steps.

use std::process::ExitCode;
use std::time::Instant;

use bitdance::model::{init_parameters, ParamStore};
use bitdance::optim::{AdamWConfig, LrSchedule};
use bitdance::rng::Rng;
use bitdance::train::{ArBatch, ArRecipe, Task, TrainSettings, Trainer};
use bitdance::Gpu;

use crate::files::load_config;

/// Runs the benchmark: `batch` images per step, `iters` timed steps.
pub fn run(
    gpu: &Gpu,
    config: &str,
    batch: usize,
    iters: usize,
    json: bool,
    profile: bool,
) -> anyhow::Result<ExitCode> {
    let c = load_config(config)?;
    let mut rng = Rng::new(0);
    let params = init_parameters(gpu, &c, &mut rng)?;
    let settings = TrainSettings {
        task: Task::Ar(ArRecipe::default()),
        adamw: AdamWConfig::default(),
        schedule: LrSchedule {
            peak: 1e-4,
            min_lr: 1e-5,
            warmup: 0,
            decay_start: 0,
            total: 1_000_000,
        },
        ema_decay: 0.999,
        seed: 0,
    };
    let mut trainer = Trainer::new(c.clone(), params, ParamStore::new(), settings)?;
    let n = c.image_tokens() * c.token_dim();
    let tokens: Vec<f32> = (0..batch * n)
        .map(|_| if rng.below(2) == 1 { 1.0 } else { -1.0 })
        .collect();
    let classes: Vec<u32> = (0..batch).map(|i| (i % c.num_classes) as u32).collect();
    let data = ArBatch {
        tokens: &tokens,
        classes: &classes,
    };
    for _ in 0..2 {
        pollster::block_on(trainer.step(&data))?;
    }
    gpu.reset_peak();
    let before = gpu.stats();
    let start = Instant::now();
    let iters = iters.max(1);
    let mut step_secs = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        pollster::block_on(trainer.step(&data))?;
        step_secs.push(t.elapsed().as_secs_f64());
    }
    let secs = start.elapsed().as_secs_f64() / iters as f64;
    // The median step resists a shared machine's stalls better than the mean.
    step_secs.sort_by(f64::total_cmp);
    let median = step_secs[iters / 2];
    let after = gpu.stats();
    let dispatches = (after.dispatches - before.dispatches) / iters as u64;
    let peak = after.peak_bytes as f64 / (1 << 20) as f64;
    if json {
        println!(
            "{}",
            serde_json::json!({"bench": "train", "config": config, "batch": batch,
                "steps_per_s": 1.0 / secs, "median_steps_per_s": 1.0 / median,
                "images_per_s": batch as f64 / secs,
                "dispatches_per_step": dispatches, "peak_gpu_mib": peak})
        );
    } else {
        println!(
            "train {config}, batch {batch}, diff_batch_mul {}: {:.3} steps/s (median step {:.3}; {:.1} images/s), {dispatches} dispatches and 1 submit per step, peak GPU memory {peak:.0} MiB",
            ArRecipe::default().diff_batch_mul,
            1.0 / secs,
            1.0 / median,
            batch as f64 / secs
        );
    }
    if profile {
        gpu.start_profiling();
        pollster::block_on(trainer.step(&data))?;
        crate::bench::print_profile(&gpu.stop_profiling(), "one training step");
    }
    Ok(ExitCode::SUCCESS)
}
