//! `bitdance generate`: class ids to a PNG grid (and optionally the tokens and raw images).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use bitdance::io::{save_safetensors, WeightFile};
use bitdance::model::{
    builtin_name, decode_tokens, decoder_weights, descends_from_default_model, generate_tokens,
    load_generator, recommended_settings, stored_class_names, to_rgb8, CfgSchedule, GaussianSource,
    Precision, RecordedNoise, SampleSettings, DEFAULT_MODEL_BYTES, DEFAULT_MODEL_LABEL,
    DEFAULT_MODEL_NAME,
};
use bitdance::rng::Rng;
use bitdance::studio::{sha256_hex, ClassNames, Recipe, RecipeModel, RunRecord};
use bitdance::train::merge_adapter_file;
use indicatif::{ProgressBar, ProgressStyle};

use crate::files::{load_config, read_bytes, write_atomic};

/// Arguments of `bitdance generate`.
#[derive(clap::Args)]
pub struct GenerateArgs {
    /// Model config: a built-in name (B-1x, B-4x, B-16x, L-1x, H-1x) or a JSON file of the
    /// official constructor arguments. Default: the config stored in the weight file, else the
    /// released config whose tensor shapes it matches (a converted official checkpoint).
    #[arg(long)]
    config: Option<String>,
    /// Model weights (safetensors by official names, f32/f16/bf16; from `bitdance convert` or a
    /// training run). The autoencoder is read from the `vae.*` tensors unless --vae is given.
    /// Default: the embedded default model.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Separate autoencoder weights (names with or without the `vae.` prefix).
    #[arg(long)]
    vae: Option<PathBuf>,
    /// A LoRA run's adapters file (`adapters.safetensors` of `bitdance finetune --train lora`),
    /// merged into --weights (the model it was trained on; its SHA-256 is checked) before
    /// sampling.
    #[arg(long)]
    adapters: Option<PathBuf>,
    /// Class index, or a class name (ImageNet names for 1000-class models, the names stored in
    /// the weights otherwise); repeat for several. Default: every class of models with at most
    /// 16 classes.
    #[arg(long = "class", short = 'c')]
    classes: Vec<String>,
    /// Images per class.
    #[arg(long, default_value_t = 1)]
    per_class: usize,
    /// Guidance scale (1 turns guidance off). Default: the published value of a built-in
    /// model (named by --config or recognised from the weights' stored config), 3 for the
    /// default model, else 4.
    #[arg(long)]
    cfg: Option<f32>,
    /// How guidance grows over the AR steps.
    #[arg(long, value_enum, default_value = "linear")]
    cfg_schedule: Schedule,
    /// Euler-Maruyama steps of the diffusion head per AR step. Default: 100 (official), 50 for
    /// the default model.
    #[arg(long)]
    steps: Option<usize>,
    /// Seed of the sampler's Gaussian draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Images sampled together in one pass (default: all of them).
    #[arg(long)]
    batch: Option<usize>,
    /// Recorded Gaussian draws (safetensors: x0.{s} [R, p, latent], eps.{s} [steps, R, p,
    /// latent] per AR step s) instead of the seeded generator; needs a single pass.
    #[arg(long)]
    noise: Option<PathBuf>,
    /// Output image, .png or .jpg (a grid when there are several images).
    #[arg(short, long, default_value = "bitdance.png")]
    output: PathBuf,
    /// Also write `tokens` [B, latent, h, w] (±1) and `image` [B, 3, H, W] (before clamping).
    #[arg(long)]
    save_tensors: Option<PathBuf>,
    /// Precision of the linear weights on the GPU: f16 (half the memory and weight traffic,
    /// sums in f32) or f32 (as trained; the golden parity runs). f32 where the adapter cannot
    /// unpack 16-bit floats (GL).
    #[arg(long, default_value = "f16", value_parser = parse_precision)]
    precision: Precision,
    /// Re-run the images of a PNG that `bitdance generate`, the desktop app or the web page
    /// wrote: its recipe gives the classes, seed, batch and every sampling setting; --weights
    /// (or the default model) must be the model it names by SHA-256. Reports whether the same
    /// tokens came out (exit code 1 when they did not).
    #[arg(
        long,
        conflicts_with_all = ["classes", "per_class", "cfg", "cfg_schedule", "steps", "seed", "batch", "noise", "precision"]
    )]
    recipe: Option<PathBuf>,
}

/// `--precision` on the command line.
pub fn parse_precision(s: &str) -> Result<Precision, String> {
    Precision::parse(s).map_err(|e| e.to_string())
}

/// The guidance schedule names on the command line.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Schedule {
    /// cfg_i = 1 + (cfg - 1) * i / steps (official).
    Linear,
    /// cfg_i = cfg.
    Constant,
}

/// Host memory one `generate` run may hold for its images (tokens, float image, RGB, grid).
const MAX_HOST_BYTES: usize = 8 << 30;

/// Host bytes one image of model `c` takes until the grid is written.
fn host_bytes_per_image(c: &bitdance::model::ModelConfig) -> usize {
    let pixels = c.resolution * c.resolution;
    4 * c.token_dim() * c.grid() * c.grid() + 4 * 3 * pixels + 2 * 3 * pixels
}

/// Runs `bitdance generate`.
pub fn run(mut args: GenerateArgs) -> anyhow::Result<ExitCode> {
    let recipe = match &args.recipe {
        Some(path) => Some(Recipe::from_png(
            &path.display().to_string(),
            &read_bytes(path)?,
        )?),
        None => None,
    };
    let weights_bytes = match &args.weights {
        Some(path) => read_bytes(path)?,
        None => DEFAULT_MODEL_BYTES.to_vec(),
    };
    let weights_bytes = match &args.adapters {
        Some(path) => {
            let label = path.display().to_string();
            let adapters = read_bytes(path)?;
            let adapters = WeightFile::parse_named(&label, &adapters)?;
            let base_label = args
                .weights
                .as_ref()
                .map_or(DEFAULT_MODEL_LABEL.to_string(), |p| p.display().to_string());
            let base = WeightFile::parse_named(&base_label, &weights_bytes)?;
            merge_adapter_file(&base, &sha256_hex(&weights_bytes), &adapters)?
        }
        None => weights_bytes,
    };
    let model_sha256 = sha256_hex(&weights_bytes);
    if let Some(r) = &recipe {
        apply_recipe(&mut args, r, &model_sha256)?;
    }
    let label = match &args.weights {
        Some(path) => path.display().to_string(),
        None => DEFAULT_MODEL_LABEL.to_string(),
    };
    let weights = WeightFile::parse_named(&label, &weights_bytes)?;
    let c = match &args.config {
        Some(name) => load_config(name)?,
        None => crate::train::config_from(&weights, &label)?,
    };
    let model_name = match &args.weights {
        None => Some(DEFAULT_MODEL_NAME),
        // A copy of the default model, or a model fine-tuned from it, samples as it does.
        Some(_) if descends_from_default_model(&weights) => Some(DEFAULT_MODEL_NAME),
        Some(_) => args.config.as_deref().or(builtin_name(&c)),
    };
    let recommended = recommended_settings(model_name);
    let cfg = args.cfg.unwrap_or(recommended.cfg);
    let steps = args.steps.unwrap_or(recommended.head_steps);
    let settings = SampleSettings {
        cfg,
        schedule: match args.cfg_schedule {
            Schedule::Linear => CfgSchedule::Linear,
            Schedule::Constant => CfgSchedule::Constant,
        },
        head_steps: steps,
    };
    settings
        .validate()
        .with_context(|| format!("--cfg {cfg} --steps {steps}"))?;
    anyhow::ensure!(args.per_class >= 1, "--per-class must be at least 1");
    let names = ClassNames::for_model(c.num_classes, stored_class_names(&weights));
    let requested: Vec<String> = if args.classes.is_empty() {
        if c.num_classes > 16 {
            anyhow::bail!(
                "give the classes to draw with --class (the model has {} classes)",
                c.num_classes
            );
        }
        (0..c.num_classes).map(|k| k.to_string()).collect()
    } else {
        args.classes.clone()
    };
    let count = requested
        .len()
        .checked_mul(args.per_class)
        .filter(|&n| n.saturating_mul(host_bytes_per_image(&c)) <= MAX_HOST_BYTES)
        .with_context(|| {
            format!(
                "{} class(es) x --per-class {} images need more than the {} GiB of host memory this command allows ({} MiB per {}x{} image)",
                requested.len(),
                args.per_class,
                MAX_HOST_BYTES >> 30,
                host_bytes_per_image(&c) >> 20,
                c.resolution,
                c.resolution
            )
        })?;
    if args.batch == Some(0) {
        anyhow::bail!("--batch must be at least 1");
    }
    let format = crate::grid::format_of(&args.output)?;
    crate::files::check_writable(&args.output)?;
    if let Some(path) = &args.save_tensors {
        crate::files::check_writable(path)?;
    }
    let mut classes = Vec::with_capacity(count);
    for arg in &requested {
        let id = names.resolve(arg)?;
        classes.extend(std::iter::repeat_n(id, args.per_class));
    }
    let batch = args.batch.unwrap_or(count).min(count);
    if args.noise.is_some() && batch < count {
        anyhow::bail!("--noise replays one pass: use --batch {count} (or leave it out)");
    }
    let vae_bytes = args.vae.as_ref().map(read_bytes).transpose()?;
    let vae_label = args.vae.as_ref().map(|p| p.display().to_string());
    let vae = match (&vae_bytes, &vae_label) {
        (Some(b), Some(l)) => Some(WeightFile::parse_named(l, b)?),
        _ => None,
    };
    let gpu = crate::open_gpu()?;
    let adapter = gpu.adapter();
    let precision = args.precision.on(&gpu);
    gpu.check_memory(&c.generation_memory(batch, precision))?;
    let load_start = Instant::now();
    let params = load_generator(&gpu, &c, &weights, vae.as_ref(), precision)?;
    drop(weights_bytes);
    let load_s = load_start.elapsed().as_secs_f64();
    let noise_bytes = args.noise.as_ref().map(read_bytes).transpose()?;
    let noise_label = args.noise.as_ref().map(|p| p.display().to_string());
    let noise_file = match (&noise_bytes, &noise_label) {
        (Some(b), Some(l)) => Some(WeightFile::parse_named(l, b)?),
        _ => None,
    };
    let mut recorded = noise_file.as_ref().map(RecordedNoise::new);
    let mut rng = Rng::new(args.seed);
    let passes = count.div_ceil(batch);
    let bar = ProgressBar::new((passes * c.ar_steps()) as u64).with_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {pos}/{len} AR steps, {elapsed_precise} (eta {eta})",
        )?
        .progress_chars("=> "),
    );
    let mut tokens = Vec::new();
    let mut image = Vec::new();
    let start = Instant::now();
    let mut sampled = Vec::with_capacity(passes);
    for (pass, group) in classes.chunks(batch).enumerate() {
        bar.set_message(format!("pass {}/{passes}", pass + 1));
        let noise: &mut dyn GaussianSource = match recorded.as_mut() {
            Some(r) => r,
            None => &mut rng,
        };
        let done = (pass * c.ar_steps()) as u64;
        sampled.push(generate_tokens(
            &c,
            &params,
            group,
            &settings,
            noise,
            &mut |step, _| bar.set_position(done + step as u64),
        )?);
    }
    // Every pass sampled: the transformer's and the head's weights leave the GPU before the
    // decoder's feature maps arrive (the peak is the larger phase, not their sum).
    let params = decoder_weights(&c, params);
    bar.set_message("decoding");
    for pass in &sampled {
        let out = pollster::block_on(decode_tokens(&c, &params, pass))?;
        tokens.extend(out.tokens);
        image.extend(out.image);
    }
    drop(sampled);
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    let side = c.resolution;
    let bad = image.iter().filter(|v| !v.is_finite()).count();
    anyhow::ensure!(
        bad == 0,
        "the generated images hold {bad} non-finite value(s) of {}: the weights overflow f32 (nothing written)",
        image.len()
    );
    let rgb = to_rgb8(&image, count, side, side);
    let model = RecipeModel {
        name: match &args.weights {
            Some(path) => path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into(),
            ),
            None => DEFAULT_MODEL_NAME.into(),
        },
        sha256: model_sha256,
        vae_sha256: vae_bytes.as_deref().map(sha256_hex),
        config: model_name.unwrap_or("custom").to_string(),
    };
    let run = RunRecord {
        classes: &classes,
        batch,
        seed: args.seed,
        settings: &settings,
        precision,
        tokens: &tokens,
    };
    let made = Recipe::of_run(model, run, &gpu);
    let mut encoded = crate::grid::encode_grid(&rgb, count, side, format)?;
    // Replayed draws (--noise) are not a seed: such images carry no recipe.
    if format == image::ImageFormat::Png && args.noise.is_none() {
        encoded = made.into_png(&encoded)?;
    }
    write_atomic(&args.output, &encoded)?;
    if let Some(path) = &args.save_tensors {
        let g = c.grid();
        let bytes = save_safetensors(
            &[
                ("tokens", &[count, c.token_dim(), g, g], &tokens),
                ("image", &[count, 3, side, side], &image),
            ],
            None,
        )?;
        write_atomic(path, &bytes)?;
    }
    let names: Vec<String> = classes
        .iter()
        .map(|&k| match names.short_name(k as usize) {
            Some(n) if n != k.to_string() => format!("{k} ({n})"),
            _ => k.to_string(),
        })
        .collect();
    println!(
        "{count} image(s) of {side}x{side}, classes {}, cfg {cfg}, {} head steps -> {}",
        names.join(", "),
        steps,
        args.output.display()
    );
    println!(
        "adapter: {} ({}, {}); {precision} weights loaded in {load_s:.1} s; {:.2} s per image ({seconds:.1} s in {passes} pass(es) of up to {batch}); peak GPU memory {:.0} MiB",
        adapter.name,
        adapter.backend,
        adapter.device_type,
        seconds / count as f64,
        gpu.stats().peak_bytes as f64 / (1 << 20) as f64
    );
    if let Some(r) = &recipe {
        if r.token_hash == made.token_hash {
            println!(
                "reproduced: the tokens match the recipe's (hash {})",
                &r.token_hash[..16]
            );
        } else {
            println!(
                "NOT reproduced: the tokens differ from the recipe's (hash {} here, {} in the recipe; made on {}, run on {})",
                &made.token_hash[..16],
                &r.token_hash[..16],
                r.adapter,
                made.adapter
            );
            return Ok(ExitCode::from(1));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Takes the sampling settings of `recipe` into `args` after checking that the model is the
/// one it was made with.
fn apply_recipe(
    args: &mut GenerateArgs,
    recipe: &Recipe,
    model_sha256: &str,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        recipe.model_sha256 == model_sha256,
        "the recipe was made with model '{}' (SHA-256 {}); {} has SHA-256 {model_sha256}: give that model with --weights",
        recipe.model,
        recipe.model_sha256,
        match &args.weights {
            Some(p) => p.display().to_string(),
            None => "the default model".into(),
        }
    );
    args.cfg = Some(recipe.cfg);
    args.cfg_schedule = match recipe.schedule {
        CfgSchedule::Linear => Schedule::Linear,
        CfgSchedule::Constant => Schedule::Constant,
    };
    args.steps = Some(recipe.head_steps);
    args.seed = recipe.seed;
    args.batch = Some(recipe.batch);
    args.precision = recipe.precision;
    args.classes = recipe.classes.iter().map(|k| k.to_string()).collect();
    args.per_class = 1;
    Ok(())
}
