//! The training loop shared by `train`, `finetune` and `train-tokenizer`: progress bar with
//! loss, steps/s and ETA; a JSONL log; atomic checkpoints and model files; sample grids.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use bitdance::io::WeightFile;
use bitdance::studio::duration_text;
use bitdance::train::{
    log_entry, mib, step_flops, step_seconds, time_throughput_probe, DataOptions, MemoryPlan,
    StepStats, Task, TrainSettings, Trainer,
};
use bitdance_files::run_dir::RunDir;
use indicatif::{ProgressBar, ProgressStyle};

/// Options of the loop shared by every training command.
#[derive(clap::Args, Clone)]
pub struct LoopArgs {
    /// Run directory: checkpoint, model, log, caches, sample grids.
    #[arg(long)]
    pub out: std::path::PathBuf,
    /// Continue the run in --out from its last checkpoint. Give the options the run was started
    /// with (a differing one is refused, naming both values); the weights, the tokenizer and
    /// the config come from the checkpoint; --stop-after, --checkpoint-every, --sample-every and
    /// the sample options apply as given.
    #[arg(long)]
    pub resume: bool,
    /// Start a new run in an --out folder that already holds one, replacing its checkpoint,
    /// model and log (without it such a folder is refused).
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// Total optimizer steps.
    #[arg(long, default_value_t = 1000)]
    pub steps: u64,
    /// Images per step.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 6e-4)]
    pub lr: f32,
    /// Final learning rate of the cosine decay.
    #[arg(long, default_value_t = 1e-5)]
    pub min_lr: f32,
    /// Linear warmup steps.
    #[arg(long, default_value_t = 100)]
    pub warmup: u64,
    /// First step of the cosine decay (default: after the warmup).
    #[arg(long)]
    pub decay_start: Option<u64>,
    /// EMA decay per step.
    #[arg(long, default_value_t = 0.999)]
    pub ema: f32,
    /// Seed of every random draw.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Steps between checkpoints.
    #[arg(long, default_value_t = 200)]
    pub checkpoint_every: u64,
    /// Stop after this step (checkpoint written), leaving the run to be continued by --resume.
    #[arg(long)]
    pub stop_after: Option<u64>,
    /// Steps between sample grids (0: none).
    #[arg(long, default_value_t = 500)]
    pub sample_every: u64,
    /// GPU memory the run may hold, in GiB (default: BITDANCE_MEMORY_BUDGET_GIB, else 16): a
    /// run whose memory plan exceeds it is refused before anything is allocated, with the
    /// options that would fit.
    #[arg(long)]
    pub memory_budget: Option<f64>,
    /// Never mirror the training images (the official recipe flips half of them at random;
    /// turn that off where a mirror image is a different thing, e.g. digits).
    #[arg(long)]
    pub no_flip: bool,
    /// Gradient checkpointing (AR runs): the transformer and head blocks keep only their
    /// inputs and recompute their activations in the backward; the same steps with less
    /// memory and about a third more compute. Free to change on --resume.
    #[arg(long)]
    pub checkpointing: bool,
}

impl LoopArgs {
    /// Refuses, naming the option and its value, what no run can train with: a non-finite or
    /// non-positive learning rate (or one above 1, which only diverges), a final rate outside
    /// [0, --lr], an EMA decay outside [0, 1), and zero steps, batch or checkpoint interval;
    /// and a new run in a folder that holds one, unless --overwrite.
    pub fn validate(&self) -> anyhow::Result<()> {
        let lr = self.lr;
        anyhow::ensure!(
            lr.is_finite() && lr > 0.0 && lr <= 1.0,
            "--lr {lr}: the learning rate must be a number in (0, 1]"
        );
        let min = self.min_lr;
        anyhow::ensure!(
            min.is_finite() && (0.0..=lr).contains(&min),
            "--min-lr {min}: the final learning rate must be a number in [0, --lr {lr}]"
        );
        let ema = self.ema;
        anyhow::ensure!(
            ema.is_finite() && (0.0..1.0).contains(&ema),
            "--ema {ema}: the EMA decay must be a number in [0, 1)"
        );
        for (name, value) in [
            ("--steps", self.steps),
            ("--batch", self.batch as u64),
            ("--checkpoint-every", self.checkpoint_every),
        ] {
            anyhow::ensure!(value >= 1, "{name} {value}: must be at least 1");
        }
        if let Some(stop) = self.stop_after {
            anyhow::ensure!(
                stop >= 1,
                "--stop-after {stop}: must be at least 1 (leave the run out to train nothing)"
            );
        }
        if !self.resume && !self.overwrite {
            if let Some(found) = RunDir::new(&self.out).existing_run() {
                anyhow::bail!(
                    "{} already holds a run ({} exists): continue it with --resume, or start over with --overwrite",
                    self.out.display(),
                    found.display()
                );
            }
        }
        Ok(())
    }

    /// The learning-rate schedule these options describe.
    pub fn schedule(&self) -> bitdance::optim::LrSchedule {
        bitdance::optim::LrSchedule {
            peak: self.lr,
            min_lr: self.min_lr,
            warmup: self.warmup,
            decay_start: self.decay_start.unwrap_or(self.warmup),
            total: self.steps,
        }
    }
}

/// Runs `trainer` from its current step to the schedule's end: `step(trainer, step)` trains
/// one batch, `sample(trainer)` renders a grid of images.
pub fn run(
    trainer: &mut Trainer,
    args: &LoopArgs,
    mut step: impl FnMut(&mut Trainer, u64) -> anyhow::Result<StepStats>,
    sample: impl Fn(&Trainer) -> anyhow::Result<image::RgbImage>,
) -> anyhow::Result<()> {
    check_run_options(trainer, args)?;
    let start_step = trainer.step_count();
    let total = trainer.settings.schedule.total;
    if start_step >= total {
        println!(
            "the run in {} is complete ({total} steps)",
            args.out.display()
        );
        return Ok(());
    }
    if let Some(stop) = args.stop_after.filter(|&stop| stop <= start_step) {
        anyhow::bail!(
            "--stop-after {stop}: the run in {} is already at step {start_step}; give a later step or leave the option out",
            args.out.display()
        );
    }
    let dir = RunDir::new(&args.out);
    let mut log = dir.open_log(start_step)?;
    let bar = ProgressBar::new(total).with_style(ProgressStyle::with_template(
        "[{bar:30}] {pos}/{len} {msg} (eta {eta})",
    )?);
    bar.set_position(start_step);
    let timer = Instant::now();
    for s in start_step..total {
        let stats = step(trainer, s)?;
        let rate = (s + 1 - start_step) as f64 / timer.elapsed().as_secs_f64();
        bar.set_position(stats.step);
        bar.set_message(format!("loss {:.4}, {rate:.2} steps/s", stats.loss));
        log.append(&log_entry(&stats, rate, args.batch))?;
        let done = stats.step == total;
        let pause = args.stop_after == Some(stats.step);
        if stats.step % args.checkpoint_every.max(1) == 0 || done || pause {
            dir.save(trainer)?;
        }
        if args.sample_every > 0 && (stats.step % args.sample_every == 0 || done) {
            dir.write_sample(stats.step, &sample(trainer)?)?;
        }
        if pause {
            bar.finish();
            println!("stopped after step {}; continue with --resume", stats.step);
            return Ok(());
        }
    }
    bar.finish();
    let peak = trainer
        .params
        .gpu()
        .map(|g| g.stats().peak_bytes)
        .unwrap_or(0);
    println!(
        "done: {} steps in {:.1} s; peak GPU memory {}; model (EMA) in {}",
        total - start_step,
        timer.elapsed().as_secs_f64(),
        mib(peak),
        dir.model_path().display()
    );
    Ok(())
}

/// Records the batch options (images per step, flips) in the run's metadata; on `--resume`
/// first refuses batch options other than those the run was started with (they decide which
/// batches are drawn; older checkpoints without the record are taken as they are).
fn check_run_options(trainer: &mut Trainer, args: &LoopArgs) -> anyhow::Result<()> {
    let data = DataOptions {
        batch: args.batch,
        flips: !args.no_flip,
    };
    Ok(data.record(trainer, args.resume, &args.out.display().to_string())?)
}

/// The run in `--out`: with `--resume` the one its checkpoint holds, after refusing a run of
/// another task and any option that differs from what the run was started with (both values
/// named: a resumed run takes exactly the steps it would have taken); otherwise `start()`.
/// The memory a run of `--batch` images per step needs is checked first either way, before
/// anything is allocated; a new LoRA or class-table run training `class_rows` rows of the
/// class table is planned with those rows (a resumed one with the rows its checkpoint names).
pub fn open_run(
    gpu: &bitdance::Gpu,
    args: &LoopArgs,
    wanted: &TrainSettings,
    config: Option<&bitdance::model::ModelConfig>,
    class_rows: Option<usize>,
    start: impl FnOnce() -> anyhow::Result<Trainer>,
) -> anyhow::Result<Trainer> {
    let trainer = if args.resume {
        let dir = RunDir::new(&args.out);
        let bytes = dir
            .read_checkpoint()
            .context("--resume needs a checkpoint")?;
        let label = dir.checkpoint_path().display().to_string();
        let file = WeightFile::parse_named(&label, &bytes)?;
        let stored = Trainer::stored_settings(&file)?;
        check_resumed_settings(&args.out, &stored, wanted)?;
        let rows = file
            .metadata()
            .get(bitdance::train::CLASS_ROWS_KEY)
            .and_then(|ids| serde_json::from_str::<Vec<u32>>(ids).ok())
            .map(|ids| ids.len());
        if let Some(c) = bitdance::model::stored_config(&file)? {
            check_plan(gpu, &stored.task, &c, args, rows)?;
        }
        Trainer::resume(gpu, &file, config)?
    } else {
        let c = config.context("a new run needs a config")?;
        check_plan(gpu, &wanted.task, c, args, class_rows)?;
        start()?
    };
    let mut trainer = trainer;
    trainer.checkpointing = args.checkpointing;
    Ok(trainer)
}

/// The expected seconds per step of `task` on this adapter, and the throughput its probe
/// showed (GFLOP/s); None for a task without an estimate (the tokenizer's).
pub fn step_estimate(
    gpu: &bitdance::Gpu,
    task: &Task,
    c: &bitdance::model::ModelConfig,
    batch: usize,
    checkpointing: bool,
) -> anyhow::Result<Option<(f64, f64)>> {
    let Some(flops) = step_flops(task, c, batch, checkpointing) else {
        return Ok(None);
    };
    let origin = Instant::now();
    let now = || origin.elapsed().as_secs_f64();
    let (probe, secs) = pollster::block_on(time_throughput_probe(gpu, c.dim, &now))?;
    Ok(Some((step_seconds(flops, probe, secs), probe / secs / 1e9)))
}

/// Prints the run's memory plan next to the budget and the adapter's buffer limits, and
/// refuses a plan over the budget, naming the options that would fit.
fn check_plan(
    gpu: &bitdance::Gpu,
    task: &Task,
    c: &bitdance::model::ModelConfig,
    args: &LoopArgs,
    class_rows: Option<usize>,
) -> anyhow::Result<()> {
    let (batch, checkpointing) = (args.batch, args.checkpointing);
    let plan = MemoryPlan::with_class_rows(task, c, batch, checkpointing, class_rows);
    let budget = gpu.memory_budget();
    let l = gpu.limits();
    println!(
        "memory plan: {} (budget {}; adapter: buffers up to {}, bindings up to {})",
        plan.describe(),
        mib(budget),
        mib(l.max_buffer_size),
        mib(l.max_storage_buffer_binding_size)
    );
    if let Some((secs, gflops)) = step_estimate(gpu, task, c, batch, checkpointing)? {
        println!(
            "step time: about {} per step, {} for {} steps (estimated from the model's work and \
             this adapter's matmul probe, {gflops:.1} GFLOP/s)",
            duration_text(secs),
            duration_text(secs * args.steps as f64),
            args.steps
        );
    }
    if plan.total() > budget {
        let options = MemoryPlan::options_within(task, c, batch, checkpointing, budget);
        let fits = match options.is_empty() {
            true => "neither a smaller batch, checkpointing nor the class table alone fits: a \
                     larger budget or a smaller model"
                .to_string(),
            false => format!("these fit: {}", options.join(", ")),
        };
        anyhow::bail!(
            "the run needs {} of GPU memory, over the budget of {} (--memory-budget GiB, or \
             BITDANCE_MEMORY_BUDGET_GIB); {fits}",
            mib(plan.total()),
            mib(budget)
        );
    }
    Ok(())
}

/// Refuses a resume whose task or options differ from the stored run's, naming each option
/// with the value the run was started with and the value given.
fn check_resumed_settings(
    out: &Path,
    stored: &TrainSettings,
    wanted: &TrainSettings,
) -> anyhow::Result<()> {
    let (was, now) = (stored.task.command(), wanted.task.command());
    anyhow::ensure!(
        was == now,
        "{} holds a run of `{was}`; continue it with `{was} --resume`, or start a `{now}` run \
         in another folder",
        out.display()
    );
    let (old, new) = (settings_options(stored), settings_options(wanted));
    let differing: Vec<String> = old
        .iter()
        .zip(&new)
        .filter(|(a, b)| a.1 != b.1)
        .map(|(a, b)| format!("{} {} (given: {})", a.0, a.1, b.1))
        .collect();
    anyhow::ensure!(
        differing.is_empty(),
        "{}: the run was started with {}; resume it with the same options (a resumed run takes \
         exactly the steps it would have taken)",
        out.display(),
        differing.join(", ")
    );
    Ok(())
}

/// Every setting of a run as (option, value), in a fixed order for a given task; settings the
/// command line cannot change are named by their field.
fn settings_options(s: &TrainSettings) -> Vec<(&'static str, String)> {
    let l = &s.schedule;
    let mut options = vec![
        ("--steps", l.total.to_string()),
        ("--lr", l.peak.to_string()),
        ("--min-lr", l.min_lr.to_string()),
        ("--warmup", l.warmup.to_string()),
        ("--decay-start", l.decay_start.to_string()),
        ("--ema", s.ema_decay.to_string()),
        ("--seed", s.seed.to_string()),
        ("adamw", format!("{:?}", s.adamw)),
    ];
    match s.task {
        Task::Ar(r) => options.extend([
            ("--train", format!("{:?}", r.trains).to_lowercase()),
            ("--half-base", r.half_base.to_string()),
            ("--perturb-rate", r.perturb_rate.to_string()),
            ("--diff-batch-mul", r.diff_batch_mul.to_string()),
            ("class_dropout", r.class_dropout.to_string()),
            ("p_mean", r.p_mean.to_string()),
            ("p_std", r.p_std.to_string()),
        ]),
        Task::Tokenizer(r) => options.extend([
            ("--l1", r.l1.to_string()),
            ("--mse", r.mse.to_string()),
            ("--commitment", r.commitment.to_string()),
            ("--entropy", r.entropy.to_string()),
            ("temperature", r.temperature.to_string()),
        ]),
    }
    options
}
