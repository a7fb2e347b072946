//! `bitdance bench train` / `bench train-tokenizer`: training steps per second of the AR model
//! (official recipe, random tokens) or of the tokenizer (random images), random weights,
//! forward + backward + AdamW + EMA, after warm-up steps.

use bitdance::model::{init_autoencoder, init_parameters_in, ParamStore};
use bitdance::optim::{AdamWConfig, LrSchedule};
use bitdance::rng::Rng;
use bitdance::train::{
    ArBatch, ArRecipe, MemoryPlan, Task, TokenizerRecipe, TrainSettings, Trainer, Trains,
};
use bitdance::Gpu;

use super::timing::measure;
use crate::files::load_config;

/// One training step on the benchmark's fixed batch.
type StepFn = dyn FnMut(&mut Trainer) -> bitdance::Result<()>;

/// What `run` trains.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// The AR transformer and its head (`bench train`).
    Ar,
    /// The binary tokenizer (`bench train-tokenizer`).
    Tokenizer,
}

/// What the benchmark times: `batch` images per step, `repeats` timed steps after two warm-up
/// steps; for an AR run, what trains (every weight, LoRA, the class table) and whether its
/// blocks recompute their activations.
#[derive(Clone, Copy)]
pub struct TrainRun {
    /// Images per step.
    pub batch: usize,
    /// Timed steps.
    pub repeats: usize,
    /// What trains.
    pub trains: Trains,
    /// Gradient checkpointing.
    pub checkpointing: bool,
    /// The frozen base in 16 bits (LoRA and class-table runs).
    pub half_base: bool,
}

/// Runs the benchmark; prints JSON with `json`, and with `profile` the time per kernel of one
/// more step.
pub fn run(
    gpu: &Gpu,
    model: Model,
    config: &str,
    run: TrainRun,
    json: bool,
    profile: bool,
) -> anyhow::Result<()> {
    let TrainRun { batch, repeats, .. } = run;
    let c = load_config(config)?;
    let task = match model {
        Model::Ar => Task::Ar(ArRecipe {
            trains: run.trains,
            half_base: run.half_base,
            ..ArRecipe::default()
        }),
        Model::Tokenizer => Task::Tokenizer(TokenizerRecipe::default()),
    };
    let checkpointing = run.checkpointing && model == Model::Ar;
    // The classes of the benchmark's batch, whose rows a LoRA or class-table run trains.
    let classes: Vec<u32> = (0..batch).map(|i| (i % c.num_classes) as u32).collect();
    let mut distinct = classes.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let rows = Some(distinct.len() + 1).filter(|_| model == Model::Ar);
    let plan = MemoryPlan::with_class_rows(&task, &c, batch, checkpointing, rows);
    gpu.check_memory(&task.memory(&c, batch, checkpointing))?;
    let mut rng = Rng::new(0);
    let params = match model {
        Model::Ar => init_parameters_in(gpu, &c, &mut rng, &task.half_weights(&c))?,
        Model::Tokenizer => init_autoencoder(gpu, &c.vae, &mut rng)?,
    };
    let settings = TrainSettings {
        task,
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
    let estimate = crate::run_loop::step_estimate(gpu, &task, &c, batch, checkpointing)?;
    let mut trainer = Trainer::new(c.clone(), params, ParamStore::new(), settings)?;
    trainer.checkpointing = checkpointing;
    if model == Model::Ar {
        trainer.train_class_rows(&classes)?;
    }
    let (what, mut step): (String, Box<StepFn>) = match model {
        Model::Ar => {
            let n = c.image_tokens() * c.token_dim();
            let tokens: Vec<f32> = (0..batch * n)
                .map(|_| if rng.below(2) == 1 { 1.0 } else { -1.0 })
                .collect();
            let classes = classes.clone();
            let mut recompute = if checkpointing { ", checkpointing" } else { "" }.to_string();
            if !task.half_weights(&c).is_empty() {
                recompute.push_str(", 16-bit frozen base");
            }
            let what = format!(
                "train {config}, batch {batch}, diff_batch_mul {}, trains {}{recompute}",
                ArRecipe::default().diff_batch_mul,
                run.trains.describe()
            );
            let step = move |t: &mut Trainer| {
                let data = ArBatch {
                    tokens: &tokens,
                    classes: &classes,
                };
                pollster::block_on(t.step(&data)).map(|_| ())
            };
            (what, Box::new(step))
        }
        Model::Tokenizer => {
            let r = c.resolution;
            let images = rng.uniform_vec(batch * 3 * r * r, -1.0, 1.0);
            let what = format!("train-tokenizer {config} ({r}x{r}), batch {batch}");
            let step =
                move |t: &mut Trainer| pollster::block_on(t.step_tokenizer(&images)).map(|_| ());
            (what, Box::new(step))
        }
    };
    // Two untimed steps compile the pipelines and fill the buffer pool (the peak counts them).
    gpu.reset_peak();
    for _ in 0..2 {
        step(&mut trainer)?;
    }
    let before = gpu.stats();
    let steps = repeats.max(1);
    let timing = measure(0, steps, || Ok(step(&mut trainer)?))?;
    let after = gpu.stats();
    let dispatches = (after.dispatches - before.dispatches) / steps as u64;
    let submits = (after.submits - before.submits) / steps as u64;
    let peak = after.peak_bytes as f64 / (1 << 20) as f64;
    let bench = match model {
        Model::Ar => "train",
        Model::Tokenizer => "train-tokenizer",
    };
    let mean = timing.runs().iter().sum::<f64>() / steps as f64;
    if json {
        println!(
            "{}",
            serde_json::json!({"bench": bench, "config": config, "batch": batch, "steps": steps,
                "steps_per_s": 1.0 / timing.median(), "steps_per_s_best": 1.0 / timing.min(),
                "steps_per_s_mean": 1.0 / mean,
                "images_per_s": batch as f64 / timing.median(),
                "dispatches_per_step": dispatches, "submits_per_step": submits,
                "peak_gpu_mib": peak, "planned_gpu_mib": plan.total() as f64 / (1 << 20) as f64,
                "checkpointing": checkpointing, "trains": run.trains.describe(),
                "half_base": run.half_base,
                "estimated_step_s": estimate.map(|e| e.0), "probe_gflops": estimate.map(|e| e.1)})
        );
    } else {
        println!("{what}, {steps} timed steps after 2 warm-up steps:");
        println!(
            "  {:.3} steps/s (median step {:.1} ms, best {:.1} ms, mean {:.1} ms; {:.1} images/s)",
            1.0 / timing.median(),
            1e3 * timing.median(),
            1e3 * timing.min(),
            1e3 * mean,
            batch as f64 / timing.median()
        );
        println!("  {dispatches} dispatches and {submits} submit(s) per step, peak GPU memory {peak:.0} MiB");
        println!("  memory plan: {}", plan.describe());
        if let Some((secs, gflops)) = estimate {
            println!(
                "  estimated before the start: {:.1} ms per step ({:.2} of the measured median; matmul probe {gflops:.1} GFLOP/s)",
                1e3 * secs,
                secs / timing.median()
            );
        }
    }
    if profile {
        gpu.start_profiling();
        step(&mut trainer)?;
        super::print_profile(&gpu.stop_profiling(), "one training step");
    }
    Ok(())
}
