//! `bitdance train` and `bitdance finetune`: the AR model on an image folder with the
//! official recipe, the tokenizer frozen; checkpoints, a JSONL log and sample grids in the run
//! directory; `--resume` continues exactly.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use bitdance::io::WeightFile;
use bitdance::model::{
    ar_parameters, generate_images, init_parameters, load_autoencoder, to_rgb8, CfgSchedule,
    ModelConfig, ParamStore, SampleSettings,
};
use bitdance::optim::{AdamWConfig, LrSchedule};
use bitdance::rng::Rng;
use bitdance::train::{ArBatch, ArRecipe, ArTrainer, TrainSettings, CONFIG_KEY};
use indicatif::{ProgressBar, ProgressStyle};

use crate::dataset::ImageFolder;
use crate::files::{load_config, read_bytes, write_atomic};
use crate::latent_cache::{self, LatentCache};

/// File names inside the run directory.
const CHECKPOINT: &str = "checkpoint.safetensors";
const MODEL: &str = "model.safetensors";
const LOG: &str = "log.jsonl";
const CACHE: &str = "latents.safetensors";

/// Arguments shared by `train` and `finetune`.
#[derive(clap::Args)]
pub struct TrainArgs {
    /// Image folder: one sub-folder per class (PNG or JPEG).
    #[arg(long)]
    data: PathBuf,
    /// Run directory: checkpoint, model, log, latent cache, sample grids.
    #[arg(long)]
    out: PathBuf,
    /// Model config: a built-in name or a JSON file (default: the config stored in --init or
    /// --tokenizer).
    #[arg(long)]
    config: Option<String>,
    /// Tokenizer weights (`vae.*` names, or unprefixed): encoder for the latents, decoder for
    /// the sample grids. Default: the `vae.*` tensors of --init.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// Total optimizer steps.
    #[arg(long, default_value_t = 1000)]
    steps: u64,
    /// Images per step.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 6e-4)]
    lr: f32,
    /// Final learning rate of the cosine decay.
    #[arg(long, default_value_t = 1e-5)]
    min_lr: f32,
    /// Linear warmup steps.
    #[arg(long, default_value_t = 100)]
    warmup: u64,
    /// First step of the cosine decay (default: after the warmup).
    #[arg(long)]
    decay_start: Option<u64>,
    /// EMA decay per step.
    #[arg(long, default_value_t = 0.999)]
    ema: f32,
    /// Bit-flip rate of the input tokens (0.1 for B, 0.05 for L/H).
    #[arg(long, default_value_t = 0.1)]
    perturb_rate: f32,
    /// Head-loss repeats per token (official 4).
    #[arg(long, default_value_t = 4)]
    diff_batch_mul: usize,
    /// Seed of every random draw.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Steps between checkpoints.
    #[arg(long, default_value_t = 200)]
    checkpoint_every: u64,
    /// Steps between sample grids (0: none).
    #[arg(long, default_value_t = 500)]
    sample_every: u64,
    /// Head steps of the sample grids.
    #[arg(long, default_value_t = 25)]
    sample_steps: usize,
    /// Guidance scale of the sample grids.
    #[arg(long, default_value_t = 3.0)]
    sample_cfg: f32,
}

/// Arguments of `bitdance finetune`: `train` starting from given weights.
#[derive(clap::Args)]
pub struct FinetuneArgs {
    /// Starting weights (official names, e.g. a converted official checkpoint or a model.safetensors
    /// of this tool); its `vae.*` tensors serve as the tokenizer unless --tokenizer is given.
    #[arg(long)]
    init: PathBuf,
    #[command(flatten)]
    train: TrainArgs,
}

/// Runs `bitdance train`.
pub fn run_train(args: TrainArgs) -> anyhow::Result<ExitCode> {
    run(args, None)
}

/// Runs `bitdance finetune`.
pub fn run_finetune(args: FinetuneArgs) -> anyhow::Result<ExitCode> {
    run(args.train, Some(args.init))
}

fn config_from(file: &WeightFile, label: &str) -> anyhow::Result<ModelConfig> {
    let json = file
        .metadata()
        .remove(CONFIG_KEY)
        .with_context(|| format!("{label} holds no model config: give --config"))?;
    Ok(ModelConfig::from_json(label, &json)?)
}

fn run(args: TrainArgs, init: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let gpu = crate::open_gpu()?;
    let ckpt_path = args.out.join(CHECKPOINT);
    let init_bytes = init.as_ref().map(read_bytes).transpose()?;
    let init_label = init
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let init_file = init_bytes
        .as_ref()
        .map(|b| WeightFile::parse_named(&init_label, b))
        .transpose()?;
    let tokenizer_path = args.tokenizer.clone().or(init.clone()).with_context(|| {
        "no tokenizer: give --tokenizer (weights of the autoencoder) or --init".to_string()
    })?;
    let tokenizer_bytes = read_bytes(&tokenizer_path)?;
    let tokenizer_label = tokenizer_path.display().to_string();
    let tokenizer = WeightFile::parse_named(&tokenizer_label, &tokenizer_bytes)?;

    let ckpt_bytes;
    let mut trainer = if args.resume {
        ckpt_bytes = read_bytes(&ckpt_path).with_context(|| "--resume needs a checkpoint")?;
        let file = WeightFile::parse_named(&ckpt_path.display().to_string(), &ckpt_bytes)?;
        let want = args.config.as_deref().map(load_config).transpose()?;
        ArTrainer::resume(&gpu, &file, want.as_ref())?
    } else {
        let c = match (&args.config, &init_file) {
            (Some(name), _) => load_config(name)?,
            (None, Some(f)) => config_from(f, &init_label)?,
            (None, None) => config_from(&tokenizer, &tokenizer_label)?,
        };
        let params = match &init_file {
            Some(f) => ParamStore::from_weights(&gpu, f, &ar_parameters(&c))?,
            None => init_parameters(&gpu, &c, &mut Rng::new(args.seed))?,
        };
        let frozen = load_autoencoder(&gpu, &c.vae, &tokenizer)?;
        let settings = TrainSettings {
            recipe: ArRecipe {
                perturb_rate: args.perturb_rate,
                diff_batch_mul: args.diff_batch_mul,
                ..ArRecipe::default()
            },
            adamw: AdamWConfig::default(),
            schedule: LrSchedule {
                peak: args.lr,
                min_lr: args.min_lr,
                warmup: args.warmup,
                decay_start: args.decay_start.unwrap_or(args.warmup),
                total: args.steps,
            },
            ema_decay: args.ema,
            seed: args.seed,
        };
        ArTrainer::new(c, params, frozen, settings)?
    };
    let c = trainer.config.clone();
    let data = ImageFolder::load(&args.data, c.resolution)?;
    if data.classes.len() > c.num_classes {
        anyhow::bail!(
            "{} has {} class folders; the model has {} classes",
            args.data.display(),
            data.classes.len(),
            c.num_classes
        );
    }
    let print = latent_cache::fingerprint(&data, &c, &tokenizer_bytes);
    let cache =
        latent_cache::load_or_encode(&args.out.join(CACHE), &data, &c, &trainer.frozen, &print)?;
    drop(tokenizer_bytes);
    let start_step = trainer.step_count();
    let total = trainer.settings.schedule.total;
    if start_step >= total {
        println!(
            "the run in {} is complete ({total} steps)",
            args.out.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let log_path = args.out.join(LOG);
    truncate_log(&log_path, start_step)?;
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let a = gpu.adapter();
    println!(
        "training {} ({} images, {} classes) on {} ({}); steps {start_step}..{total}, batch {}",
        args.out.display(),
        data.len(),
        data.classes.len(),
        a.name,
        a.backend,
        args.batch
    );
    let bar = ProgressBar::new(total).with_style(ProgressStyle::with_template(
        "[{bar:30}] {pos}/{len} {msg} (eta {eta})",
    )?);
    bar.set_position(start_step);
    let timer = Instant::now();
    let mut tokens = Vec::with_capacity(args.batch * cache.per_image);
    for step in start_step..total {
        let classes = sample_batch(&cache, args.batch, trainer.settings.seed, step, &mut tokens);
        let batch = ArBatch {
            tokens: &tokens,
            classes: &classes,
        };
        let stats = pollster::block_on(trainer.step(&batch))?;
        let rate = (step + 1 - start_step) as f64 / timer.elapsed().as_secs_f64();
        bar.set_position(stats.step);
        bar.set_message(format!("loss {:.4}, {rate:.2} steps/s", stats.loss));
        writeln!(
            log,
            "{}",
            serde_json::json!({"step": stats.step, "loss": stats.loss, "lr": stats.lr,
                "grad_norm": stats.grad_norm, "steps_per_s": rate,
                "images_per_s": rate * args.batch as f64})
        )?;
        let done = stats.step == total;
        if stats.step % args.checkpoint_every == 0 || done {
            save(&trainer, &args.out)?;
        }
        if args.sample_every > 0 && (stats.step % args.sample_every == 0 || done) {
            let png = sample_grid(&trainer, &data, args.sample_steps, args.sample_cfg)?;
            let dir = args.out.join("samples");
            std::fs::create_dir_all(&dir)?;
            write_atomic(dir.join(format!("step-{:07}.png", stats.step)), &png)?;
        }
    }
    bar.finish();
    println!(
        "done: {} steps in {:.1} s; model (EMA) in {}",
        total - start_step,
        timer.elapsed().as_secs_f64(),
        args.out.join(MODEL).display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The batch of `step`: images drawn with replacement and coin-flip mirrored by an RNG seeded
/// from (seed, step), so a resumed run draws the same batches.
fn sample_batch(
    cache: &LatentCache,
    batch: usize,
    seed: u64,
    step: u64,
    tokens: &mut Vec<f32>,
) -> Vec<u32> {
    let mut rng = Rng::new(seed ^ 0x5eed_da7a ^ step.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    tokens.clear();
    (0..batch)
        .map(|_| {
            let i = rng.below(cache.len() as u64) as usize;
            let flipped = rng.below(2) == 1;
            tokens.extend_from_slice(cache.image(i, flipped));
            cache.labels[i]
        })
        .collect()
}

/// Writes the checkpoint and the model file, each atomically.
fn save(trainer: &ArTrainer, out: &Path) -> anyhow::Result<()> {
    let ckpt = pollster::block_on(trainer.checkpoint())?;
    write_atomic(out.join(CHECKPOINT), &ckpt)?;
    let model = pollster::block_on(trainer.export_model(true))?;
    write_atomic(out.join(MODEL), &model)
}

/// One image per class (up to 16) from the EMA weights, as a PNG grid.
fn sample_grid(
    trainer: &ArTrainer,
    data: &ImageFolder,
    steps: usize,
    cfg: f32,
) -> anyhow::Result<Vec<u8>> {
    let c = &trainer.config;
    let classes: Vec<u32> = (0..data.classes.len().min(16) as u32).collect();
    let store = trainer.sampling_store(true);
    let settings = SampleSettings {
        cfg,
        schedule: CfgSchedule::Linear,
        head_steps: steps,
    };
    let out = pollster::block_on(generate_images(
        c,
        &store,
        &classes,
        &settings,
        &mut Rng::new(0),
        &mut |_, _| {},
    ))?;
    let r = c.resolution;
    crate::grid::png_grid(&to_rgb8(&out.image, out.count, r, r), out.count, r)
}

/// Drops log lines past `step` (left by a run killed after its last checkpoint).
fn truncate_log(path: &Path, step: u64) -> anyhow::Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v["step"].as_u64())
                .is_some_and(|s| s <= step)
        })
        .collect();
    let mut body = kept.join("\n");
    if !body.is_empty() {
        body.push('\n');
    }
    write_atomic(path, body.as_bytes())
}
