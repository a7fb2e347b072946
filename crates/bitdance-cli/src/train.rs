//! `bitdance train` and `bitdance finetune`: the AR model on an image folder with the
//! official recipe, the tokenizer frozen, the dataset's tokens encoded once and cached;
//! `--resume` continues exactly.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bitdance::io::WeightFile;
use bitdance::model::{ar_parameters, init_parameters_in, load_autoencoder_in, ModelConfig};
use bitdance::optim::AdamWConfig;
use bitdance::rng::Rng;
use bitdance::studio::ClassNames;
use bitdance::train::{
    classes_of, resumed_plan, sample_settings, ArBatch, ArRecipe, ClassPlan, ClassPolicy,
    FinetuneLoad, LoraSpec, LoraTargets, Task, TrainSettings, Trainer, Trains,
};
use bitdance_files::dataset::class_folders;

use crate::dataset::ImageFolder;
use crate::files::{load_config, read_bytes};
use crate::latent_cache;
use crate::run_loop::{self, LoopArgs};

/// File name of the token cache in the run directory.
const CACHE: &str = "latents.safetensors";

/// Arguments of `bitdance train`.
#[derive(clap::Args)]
pub struct TrainArgs {
    /// Image folder: one sub-folder per class (PNG or JPEG).
    #[arg(long)]
    data: PathBuf,
    /// Model config: a built-in name or a JSON file (default: the config stored in --init or
    /// --tokenizer, else the released config whose tensor shapes --init matches).
    #[arg(long)]
    config: Option<String>,
    /// Tokenizer weights (`vae.*` names, or unprefixed), e.g. the model.safetensors of a
    /// `train-tokenizer` run. Default: the `vae.*` tensors of --init.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Bit-flip rate of the input tokens (0.1 for B, 0.05 for L/H).
    #[arg(long, default_value_t = 0.1)]
    perturb_rate: f32,
    /// Head-loss repeats per token (official 4).
    #[arg(long, default_value_t = 4)]
    diff_batch_mul: usize,
    /// How the data's class folders map to the starting model's classes (finetune): by-name
    /// (a folder named like a class, by index, leading index or name, trains it; any other
    /// becomes a new class, the class table grown) or replace (folder i trains class i).
    #[arg(long, value_enum, default_value_t = ClassesArg::ByName)]
    classes: ClassesArg,
    /// What trains: full (every parameter), lora (low-rank adapters on the frozen model, and
    /// the class table; the model is saved with them merged into its weights) or embeddings
    /// (the class table alone: gradients, moments and EMA for its rows only; the rest of the
    /// model stays as it is).
    #[arg(long, value_enum, default_value_t = TrainsArg::Full)]
    train: TrainsArg,
    /// `--train lora` or `embeddings`: hold the frozen base's linear weights and its
    /// autoencoder's convolutions in 16 bits (half their memory; what trains stays f32). A
    /// resumed run must be given the same choice.
    #[arg(long)]
    half_base: bool,
    /// `--train lora`: the adapters' rank r.
    #[arg(long, default_value_t = 16)]
    lora_rank: usize,
    /// `--train lora`: the adapters' product is scaled by alpha / r.
    #[arg(long, default_value_t = 16.0)]
    lora_alpha: f32,
    /// `--train lora`: the linear layers that get adapters, comma-separated: attention, mlp
    /// (the transformer's), head (the diffusion head's blocks), or all.
    #[arg(long, default_value = "attention,mlp")]
    lora_targets: String,
    /// Head steps of the sample grids.
    #[arg(long, default_value_t = 25)]
    sample_steps: usize,
    /// Guidance scale of the sample grids.
    #[arg(long, default_value_t = 3.0)]
    sample_cfg: f32,
    #[command(flatten)]
    run: LoopArgs,
}

impl TrainArgs {
    /// Refuses bad values of the loop's options and of this command's own, naming each.
    fn validate(&self) -> anyhow::Result<()> {
        self.run.validate()?;
        let rate = self.perturb_rate;
        anyhow::ensure!(
            rate.is_finite() && (0.0..1.0).contains(&rate),
            "--perturb-rate {rate}: the bit-flip rate must be a number in [0, 1)"
        );
        anyhow::ensure!(
            self.diff_batch_mul >= 1,
            "--diff-batch-mul {}: must be at least 1",
            self.diff_batch_mul
        );
        self.train.check_half_base(self.half_base)?;
        let (cfg, steps) = (self.sample_cfg, self.sample_steps);
        sample_settings(steps, cfg)
            .validate()
            .with_context(|| format!("--sample-cfg {cfg} --sample-steps {steps}"))?;
        Ok(())
    }
}

/// `--train`: which parameters train.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum TrainsArg {
    /// Every parameter.
    Full,
    /// Low-rank adapters and the class table.
    Lora,
    /// The class table alone.
    Embeddings,
}

impl TrainsArg {
    /// Refuses `--half-base` where nothing is frozen (`--train full`), instead of ignoring it.
    pub(crate) fn check_half_base(self, half_base: bool) -> anyhow::Result<()> {
        anyhow::ensure!(
            !(half_base && self == TrainsArg::Full),
            "--half-base holds the frozen base's weights in 16 bits, but --train full freezes \
             nothing: use --train lora or --train embeddings, or leave --half-base out"
        );
        Ok(())
    }

    /// The choice, with `lora` as the spec of a LoRA run.
    pub(crate) fn trains(self, lora: LoraSpec) -> Trains {
        match self {
            TrainsArg::Full => Trains::Full,
            TrainsArg::Lora => Trains::Lora(lora),
            TrainsArg::Embeddings => Trains::Embeddings,
        }
    }
}

/// `--classes`: how class folders map to the model's classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ClassesArg {
    /// By name; other folders become new classes.
    ByName,
    /// Folder i trains class i.
    Replace,
}

impl ClassesArg {
    fn policy(self) -> ClassPolicy {
        match self {
            ClassesArg::ByName => ClassPolicy::ByName,
            ClassesArg::Replace => ClassPolicy::Replace,
        }
    }
}

/// Arguments of `bitdance finetune`: `train` starting from given weights.
#[derive(clap::Args)]
pub struct FinetuneArgs {
    /// Starting weights by official names (a converted official checkpoint or a
    /// model.safetensors of this tool); its `vae.*` tensors serve as the tokenizer unless
    /// --tokenizer is given.
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

/// A weight file's config as the apps find it (its stored config, else the released config its
/// tensors match: `studio::model_config_of`), or an error asking for --config.
pub fn config_from(file: &WeightFile, label: &str) -> anyhow::Result<ModelConfig> {
    bitdance::studio::model_config_of(file)
        .with_context(|| format!("{label}: give --config (a released name or a JSON file)"))
}

fn run(args: TrainArgs, init: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    args.validate()?;
    let out = &args.run.out;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let gpu = crate::open_gpu_with_budget(args.run.memory_budget)?;
    let init_bytes = init.as_ref().map(read_bytes).transpose()?;
    let init_label = init
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let init_file = init_bytes
        .as_ref()
        .map(|b| WeightFile::parse_named(&init_label, b))
        .transpose()?;
    let tokenizer_path = args
        .tokenizer
        .clone()
        .or(init.clone())
        .context("no tokenizer: give --tokenizer (the autoencoder's weights) or --init")?;
    let tokenizer_bytes = read_bytes(&tokenizer_path)?;
    let tokenizer_label = tokenizer_path.display().to_string();
    let tokenizer = WeightFile::parse_named(&tokenizer_label, &tokenizer_bytes)?;

    let settings = TrainSettings {
        task: Task::Ar(ArRecipe {
            perturb_rate: args.perturb_rate,
            diff_batch_mul: args.diff_batch_mul,
            trains: args.train.trains(LoraSpec {
                rank: args.lora_rank,
                alpha: args.lora_alpha,
                targets: LoraTargets::parse(&args.lora_targets)?,
            }),
            half_base: args.half_base,
            ..ArRecipe::default()
        }),
        adamw: AdamWConfig::default(),
        schedule: args.run.schedule(),
        ema_decay: args.run.ema,
        seed: args.run.seed,
    };
    let mut c = match (&args.config, &init_file) {
        (Some(name), _) => Some(load_config(name)?),
        (None, _) if args.run.resume => None,
        (None, Some(f)) => Some(config_from(f, &init_label)?),
        (None, None) => Some(config_from(&tokenizer, &tokenizer_label)?),
    };
    // Which class each folder trains: by name from a starting model (new folders grow its class
    // table), folder i -> class i for a model trained from scratch.
    let folders = class_folders(&args.data)?;
    let policy = match init_file {
        Some(_) => args.classes.policy(),
        None => ClassPolicy::Replace,
    };
    let mut plan = None;
    if let (false, Some(f), Some(config)) = (args.run.resume, &init_file, &mut c) {
        let p = ClassPlan::new(&classes_of(f)?, &folders, policy)?;
        config.num_classes = p.names.len();
        plan = Some(p);
    }
    // The class rows a LoRA or class-table run trains: its classes and the null row.
    let class_rows = plan.as_ref().map(|p| {
        let mut ids = p.trained();
        ids.sort_unstable();
        ids.dedup();
        ids.len() + 1
    });
    let mut trainer =
        run_loop::open_run(&gpu, &args.run, &settings, c.as_ref(), class_rows, || {
            let c = c.clone().context("a new run needs a config")?;
            let (Some(f), Some(bytes)) = (&init_file, &init_bytes) else {
                // From scratch: random weights, the tokenizer's autoencoder.
                let half = settings.task.half_weights(&c);
                let params = init_parameters_in(&gpu, &c, &mut Rng::new(args.run.seed), &half)?;
                let frozen = load_autoencoder_in(&gpu, &c.vae, &tokenizer, &half)?;
                return Ok(Trainer::new(c, params, frozen, settings)?);
            };
            // From a model, as the apps start a run (new classes grow its table as it loads;
            // a LoRA run's files name the model they adapt by SHA-256); --tokenizer, when
            // given, serves over the model's own autoencoder.
            let sha = bitdance::studio::sha256_hex(bytes);
            let vae = args.tokenizer.is_some().then_some(&tokenizer);
            let load = FinetuneLoad::new(&gpu, f, vae, &sha, &folders, policy, settings)?;
            let (_, mut trainer) = load.load_in_memory()?;
            // A --config of the same shapes rules the run, as it names it.
            anyhow::ensure!(
                ar_parameters(&trainer.config) == ar_parameters(&c),
                "{init_label}: its tensors are not those of the config given ({})",
                c.to_json()
            );
            trainer.config = c;
            Ok(trainer)
        })?;
    let plan = match plan {
        Some(p) => p,
        None if args.run.resume => resumed_plan(&trainer, &folders, policy)?,
        None => ClassPlan::new(
            &ClassNames::for_model(trainer.config.num_classes, None),
            &folders,
            ClassPolicy::Replace,
        )?,
    };
    println!("classes ({} new):", plan.added());
    for line in plan.describe() {
        println!("  {line}");
    }
    if let Some(note) = plan.forgetting_note(&trainer.settings.task.trains()) {
        println!("note: {note}");
    }
    plan.record(&mut trainer)?;
    trainer.train_class_rows(&plan.trained())?;
    let c = trainer.config.clone();
    let data = ImageFolder::load(&args.data, c.resolution)?;
    let print = latent_cache::fingerprint(&data, &c, &tokenizer_bytes);
    let mut cache =
        latent_cache::load_or_encode(&out.join(CACHE), &data, &c, &trainer.frozen, &print)?;
    plan.relabel(&mut cache)?;
    drop(tokenizer_bytes);
    let a = gpu.adapter();
    println!(
        "training the AR model in {} ({} images, {} classes) on {} ({}), batch {}",
        out.display(),
        data.len(),
        data.classes.len(),
        a.name,
        a.backend,
        args.run.batch
    );
    if let Task::Ar(recipe) = &trainer.settings.task {
        let recompute = if trainer.checkpointing {
            ", blocks recomputed in the backward"
        } else {
            ""
        };
        let rows = match trainer.class_rows() {
            Some(ids) => format!(
                " (its rows of {} classes and the null class)",
                ids.len() - 1
            ),
            None => String::new(),
        };
        let half = match recipe.half_base && recipe.trains != Trains::Full {
            true => ", the frozen base in 16 bits",
            false => "",
        };
        println!(
            "trains: {}{rows}{half}{recompute}",
            recipe.trains.describe()
        );
    }
    let batch = args.run.batch;
    let seed = trainer.settings.seed;
    let flips = !args.run.no_flip;
    let trained = plan.trained();
    let mut tokens = Vec::new();
    run_loop::run(
        &mut trainer,
        &args.run,
        |t, step| {
            let labels = cache.sample_batch(batch, seed, step, flips, &mut tokens);
            let b = ArBatch {
                tokens: &tokens,
                classes: &labels,
            };
            Ok(pollster::block_on(t.step(&b))?)
        },
        |t| sample_grid(t, &trained, args.sample_steps, args.sample_cfg),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// One image of each trained class (up to 16) from the EMA weights, as a grid.
fn sample_grid(
    t: &Trainer,
    classes: &[u32],
    steps: usize,
    cfg: f32,
) -> anyhow::Result<image::RgbImage> {
    let settings = sample_settings(steps, cfg);
    Ok(pollster::block_on(bitdance::train::sample_grid(
        t, classes, &settings,
    ))?)
}
