//! `bitdance train-tokenizer`: the binary autoencoder (encoder, sign quantizer, decoder) on an
//! image folder: L1 + MSE reconstruction, commitment and group-wise entropy losses; sample
//! grids show held-in originals above their reconstructions.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bitdance::io::WeightFile;
use bitdance::model::{encode, quantize, to_rgb8, ParamStore};
use bitdance::optim::AdamWConfig;
use bitdance::rng::Rng;
use bitdance::train::{Task, TokenizerRecipe, TrainSettings, Trainer};
use bitdance::Tensor;

use crate::dataset::ImageFolder;
use crate::files::{load_config, read_bytes};
use crate::run_loop::{self, LoopArgs};

/// Arguments of `bitdance train-tokenizer`.
#[derive(clap::Args)]
pub struct TokenizerArgs {
    /// Image folder: one sub-folder per class (PNG or JPEG); labels are not used.
    #[arg(long)]
    data: PathBuf,
    /// Model config whose `vae` and `resolution` define the tokenizer (built-in name or JSON;
    /// default `tiny` for a new run, the checkpoint's on --resume).
    #[arg(long)]
    config: Option<String>,
    /// Start from these autoencoder weights (`vae.*` or unprefixed) instead of a fresh init.
    #[arg(long)]
    init: Option<PathBuf>,
    /// Weight of the L1 reconstruction loss.
    #[arg(long, default_value_t = 1.0)]
    l1: f32,
    /// Weight of the MSE reconstruction loss.
    #[arg(long, default_value_t = 1.0)]
    mse: f32,
    /// Weight of the commitment loss.
    #[arg(long, default_value_t = 0.25)]
    commitment: f32,
    /// Weight of the entropy loss.
    #[arg(long, default_value_t = 0.05)]
    entropy: f32,
    #[command(flatten)]
    run: LoopArgs,
}

impl TokenizerArgs {
    /// Refuses bad values of the loop's options and of the loss weights, naming each.
    fn validate(&self) -> anyhow::Result<()> {
        self.run.validate()?;
        anyhow::ensure!(
            !self.run.checkpointing,
            "--checkpointing recomputes the AR model's blocks; the tokenizer keeps its activations"
        );
        for (name, weight) in [
            ("--l1", self.l1),
            ("--mse", self.mse),
            ("--commitment", self.commitment),
            ("--entropy", self.entropy),
        ] {
            anyhow::ensure!(
                weight.is_finite() && weight >= 0.0,
                "{name} {weight}: a loss weight must be a finite number >= 0"
            );
        }
        Ok(())
    }
}

/// Runs `bitdance train-tokenizer`.
pub fn run(args: TokenizerArgs) -> anyhow::Result<ExitCode> {
    args.validate()?;
    let out = &args.run.out;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let gpu = crate::open_gpu_with_budget(args.run.memory_budget)?;
    let given = args.config.as_deref().map(load_config).transpose()?;
    let c = match &given {
        Some(c) => c.clone(),
        None => load_config("tiny")?,
    };
    let settings = TrainSettings {
        task: Task::Tokenizer(TokenizerRecipe {
            l1: args.l1,
            mse: args.mse,
            commitment: args.commitment,
            entropy: args.entropy,
            ..TokenizerRecipe::default()
        }),
        adamw: AdamWConfig::default(),
        schedule: args.run.schedule(),
        ema_decay: args.run.ema,
        seed: args.run.seed,
    };
    // A new run trains `c`; a resumed one its checkpoint's config (checked against --config).
    let config = if args.run.resume {
        given.as_ref()
    } else {
        Some(&c)
    };
    let mut trainer = run_loop::open_run(&gpu, &args.run, &settings, config, None, || {
        let params = match &args.init {
            Some(path) => {
                let bytes = read_bytes(path)?;
                let file = WeightFile::parse_named(&path.display().to_string(), &bytes)?;
                bitdance::model::load_autoencoder(&gpu, &c.vae, &file)?
            }
            None => bitdance::model::init_autoencoder(&gpu, &c.vae, &mut Rng::new(args.run.seed))?,
        };
        Ok(Trainer::new(
            c.clone(),
            params,
            ParamStore::new(),
            settings,
        )?)
    })?;
    let c = trainer.config.clone();
    let data = ImageFolder::load(&args.data, c.resolution)?;
    let a = gpu.adapter();
    println!(
        "training the tokenizer in {} ({} images) on {} ({}), batch {}",
        out.display(),
        data.len(),
        a.name,
        a.backend,
        args.run.batch
    );
    let (batch, seed, n) = (args.run.batch, trainer.settings.seed, data.len());
    let no_flip = args.run.no_flip;
    run_loop::run(
        &mut trainer,
        &args.run,
        |t, step| {
            let mut rng = Rng::new(seed ^ 0x70c3_11e5 ^ step.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let idx: Vec<usize> = (0..batch).map(|_| rng.below(n as u64) as usize).collect();
            let flip: Vec<bool> = (0..batch).map(|_| rng.below(2) == 1 && !no_flip).collect();
            let (pixels, _) = data.batch(&idx, &flip);
            Ok(pollster::block_on(t.step_tokenizer(&pixels))?)
        },
        |t| reconstructions(t, &data),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// The first 8 images of the folder (one per class where possible) above their
/// reconstructions by the EMA weights, as a grid.
fn reconstructions(t: &Trainer, data: &ImageFolder) -> anyhow::Result<image::RgbImage> {
    let c = &t.config;
    let per_class = data.len() / data.classes.len().max(1);
    let idx: Vec<usize> = (0..8)
        .map(|i| (i * per_class.max(1)) % data.len())
        .collect();
    let (pixels, _) = data.batch(&idx, &vec![false; idx.len()]);
    let store = t.sampling_store(true)?;
    let gpu = store.gpu()?;
    let r = c.resolution;
    let images = Tensor::from_f32(&gpu, &[idx.len(), 3, r, r], &pixels)?;
    let codes = quantize(&encode(&c.vae, &store, &images)?)?.codes;
    let z = codes.read_f32()?;
    let recon = bitdance::model::decode(&gpu, &c.vae, &store, &z, codes.shape().try_into()?)?;
    let mut all = pixels;
    all.extend(recon.read_f32()?);
    let n = 2 * idx.len();
    Ok(bitdance::studio::tile_grid(&to_rgb8(&all, n, r, r), n, r))
}
