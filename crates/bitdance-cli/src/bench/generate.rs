//! `bitdance bench generate`: the full sampler of `bitdance generate` (AR loop with every head
//! step, token readback, the sampler's weights dropped, decoder, image readback) on random or
//! given weights, timed after a warm-up run, repeated (each run from a fresh, untimed load); the AR loop's split into transformer and head comes from one more
//! warm run at a single head step.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;

use bitdance::io::WeightFile;
use bitdance::model::{
    builtin_name, decode, decoder_weights, generate_tokens, generation_parameters, half_weights,
    load_generator, recommended_settings, tokens_to_latents, CfgSchedule, ModelConfig, ParamStore,
    Precision, SampleSettings,
};
use bitdance::rng::Rng;
use bitdance::Gpu;

use super::timing::Timing;
use crate::files::{load_config, read_bytes};

/// Options of `bench generate` and `bench head`.
pub struct GenerateBench {
    /// Built-in name or JSON config; `None`: the weights' stored config, else B-4x.
    pub config: Option<String>,
    /// Weight file (official names); `None`: random weights.
    pub weights: Option<PathBuf>,
    /// Guidance scale; `None`: the published one of a built-in model, else 4.
    pub cfg: Option<f32>,
    /// Head sampling steps per AR step.
    pub head_steps: usize,
    /// Images sampled together.
    pub batch: usize,
    /// Timed full runs.
    pub repeats: usize,
    /// Precision of the linear weights.
    pub precision: Precision,
    /// One JSON line instead of the table.
    pub json: bool,
    /// Also time every kernel of the AR loop (1 head step) and of the decoder.
    pub profile: bool,
}

/// Seconds of one full run: the AR loop up to the token readback, then the decoder up to the
/// image readback; and the peak bytes the device held for tensors in each phase.
struct RunTimes {
    ar: f64,
    decoder: f64,
    ar_peak: u64,
    decoder_peak: u64,
    /// The largest storage binding and buffer of either phase.
    largest_binding: u64,
    largest_buffer: u64,
}

/// Runs the benchmark and prints its figures.
pub fn run(gpu: &Gpu, opts: &GenerateBench) -> anyhow::Result<()> {
    let (name, c, store) = load_model(gpu, opts)?;
    let cfg = opts.cfg.unwrap_or(recommended_settings(Some(&name)).cfg);
    anyhow::ensure!(opts.batch > 0, "bench generate: --batch must be at least 1");
    let settings = |head_steps| SampleSettings {
        cfg,
        schedule: CfgSchedule::Linear,
        head_steps,
    };
    settings(opts.head_steps)
        .validate()
        .context("bench generate: --cfg or --steps")?;
    let classes: Vec<u32> = (0..opts.batch)
        .map(|i| (i * 7 % c.num_classes) as u32)
        .collect();
    gpu.synchronize()?;
    let weights_mib = mib(gpu.stats().live_bytes);
    // Every run starts from the loaded model and drops the transformer's and the head's weights
    // before it decodes, as `bitdance generate` does; the load is not timed.
    let mut loaded = Some(store);
    let mut full_run = |head_steps: usize| -> anyhow::Result<RunTimes> {
        let store = match loaded.take() {
            Some(store) => store,
            None => load_model(gpu, opts)?.2,
        };
        gpu.synchronize()?;
        gpu.reset_peak();
        let start = Instant::now();
        let tokens = generate_tokens(
            &c,
            &store,
            &classes,
            &settings(head_steps),
            &mut Rng::new(1),
            &mut |_, _| {},
        )?;
        let host = tokens.read_f32()?;
        let ar = start.elapsed().as_secs_f64();
        let store = decoder_weights(&c, store);
        let ar_stats = gpu.stats();
        gpu.reset_peak();
        let z = tokens_to_latents(&c, &host)?;
        let g = c.grid();
        let image = decode(
            gpu,
            &c.vae,
            &store,
            &z,
            [classes.len(), c.token_dim(), g, g],
        )?;
        let pixels = image.read_f32()?;
        anyhow::ensure!(
            pixels.iter().all(|v| v.is_finite()),
            "bench generate: the image holds non-finite values"
        );
        let decoder_stats = gpu.stats();
        Ok(RunTimes {
            ar,
            decoder: start.elapsed().as_secs_f64() - ar,
            ar_peak: ar_stats.peak_bytes,
            decoder_peak: decoder_stats.peak_bytes,
            largest_binding: (ar_stats.largest_binding_bytes)
                .max(decoder_stats.largest_binding_bytes),
            largest_buffer: (ar_stats.largest_buffer_bytes).max(decoder_stats.largest_buffer_bytes),
        })
    };
    let first = full_run(1)?;
    let one_step = full_run(1)?;
    let runs: Vec<RunTimes> = (0..opts.repeats.max(1))
        .map(|_| full_run(opts.head_steps))
        .collect::<anyhow::Result<_>>()?;
    // The timed runs' phases: the device's peak after the warm runs pooled their buffers.
    let ar_peak_mib = mib(runs.iter().map(|r| r.ar_peak).max().unwrap_or(0));
    let decoder_peak_mib = mib(runs.iter().map(|r| r.decoder_peak).max().unwrap_or(0));
    let peak_mib = ar_peak_mib.max(decoder_peak_mib);
    let binding_mib = mib(runs.iter().map(|r| r.largest_binding).max().unwrap_or(0));
    let buffer_mib = mib(runs.iter().map(|r| r.largest_buffer).max().unwrap_or(0));
    let limits = gpu.limits();
    let (binding_limit, buffer_limit) = (
        mib(limits.max_storage_buffer_binding_size),
        mib(limits.max_buffer_size),
    );
    let per = opts.batch as f64;
    let total = Timing::from_runs(runs.iter().map(|r| r.ar + r.decoder).collect()).per(per);
    let ar = Timing::from_runs(runs.iter().map(|r| r.ar).collect()).per(per);
    let decoder = Timing::from_runs(runs.iter().map(|r| r.decoder).collect()).per(per);
    // t_ar(s) = rest + (s + 1) x head evaluation, where the rest is the transformer steps, the
    // embeddings and the token readback; the warm 1-step run gives the second point.
    let split = (opts.head_steps > 1).then(|| {
        let t1 = one_step.ar / per;
        let per_eval = ((ar.median() - t1) / (opts.head_steps - 1) as f64).max(0.0);
        let head = (per_eval * (opts.head_steps + 1) as f64).min(ar.median());
        (ar.median() - head, head)
    });
    let first_s = (first.ar + first.decoder) / per;
    let source = match &opts.weights {
        Some(p) => p.display().to_string(),
        None => "random".into(),
    };
    if opts.json {
        let (transformer, head) = split.map_or((None, None), |(t, h)| (Some(t), Some(h)));
        println!(
            "{}",
            serde_json::json!({"bench": "generate", "config": name, "weights": source,
                "precision": opts.precision.on(gpu).name(), "f16_form": gpu.f16_form().to_string(),
                "batch": opts.batch, "cfg": cfg, "head_steps": opts.head_steps,
                "repeats": total.runs().len(),
                "seconds_per_image": total.median(), "seconds_per_image_min": total.min(),
                "ar_loop_s": ar.median(), "transformer_s": transformer, "head_s": head,
                "decoder_s": decoder.median(), "first_run_1_step_s": first_s,
                "peak_gpu_mib": peak_mib, "ar_loop_peak_mib": ar_peak_mib,
                "decoder_peak_mib": decoder_peak_mib, "weights_mib": weights_mib,
                "largest_binding_mib": binding_mib, "largest_buffer_mib": buffer_mib,
                "binding_limit_mib": binding_limit, "buffer_limit_mib": buffer_limit})
        );
    } else {
        println!(
            "generate {name} ({source} weights, {} linear weights), batch {}, cfg {cfg} (linear), {} head steps",
            opts.precision.on(gpu),
            opts.batch,
            opts.head_steps
        );
        println!(
            "  first run at 1 head step (pipeline compilation, buffers pooled): {first_s:.1} s per image"
        );
        println!(
            "  per image, min / median over {} full run(s):",
            total.runs().len()
        );
        let line = |what: &str, t: &Timing| {
            println!("    {what:<9} {:8.2} / {:8.2} s", t.min(), t.median())
        };
        line("total", &total);
        line("AR loop", &ar);
        if let Some((transformer, head)) = split {
            println!("      head ~{head:.2} s, transformer and the rest ~{transformer:.2} s (median; split by a warm run at 1 head step)");
        }
        line("decoder", &decoder);
        println!(
            "  peak GPU memory {peak_mib:.0} MiB held for tensors (AR loop {ar_peak_mib:.0}, decoder {decoder_peak_mib:.0}; weights {weights_mib:.0})"
        );
        println!(
            "  largest storage binding {binding_mib:.1} MiB (limit {binding_limit:.0}), largest buffer {buffer_mib:.1} MiB (limit {buffer_limit:.0})"
        );
    }
    if opts.profile {
        let (_, _, store) = load_model(gpu, opts)?;
        gpu.start_profiling();
        let host = generate_tokens(
            &c,
            &store,
            &classes,
            &settings(1),
            &mut Rng::new(1),
            &mut |_, _| {},
        )?
        .read_f32()?;
        let ar_profile = gpu.stop_profiling();
        let z = tokens_to_latents(&c, &host)?;
        let g = c.grid();
        gpu.start_profiling();
        decode(
            gpu,
            &c.vae,
            &store,
            &z,
            [classes.len(), c.token_dim(), g, g],
        )?
        .read_f32()?;
        let decoder_profile = gpu.stop_profiling();
        super::print_profile(
            &ar_profile,
            "the AR loop at 1 head step (transformer + 2 head evaluations per AR step)",
        );
        super::print_profile(&decoder_profile, "the decoder");
    }
    Ok(())
}

/// The model's name (for the published cfg), config and parameters: from the weight file (its
/// stored config or the released one its shapes match, unless `--config`), or random weights
/// of `--config` (default B-4x).
pub(super) fn load_model(
    gpu: &Gpu,
    opts: &GenerateBench,
) -> anyhow::Result<(String, ModelConfig, ParamStore)> {
    match &opts.weights {
        Some(path) => {
            let bytes = read_bytes(path)?;
            let label = path.display().to_string();
            let file = WeightFile::parse_named(&label, &bytes)?;
            let c = match &opts.config {
                Some(name) => load_config(name)?,
                None => crate::train::config_from(&file, &label)?,
            };
            gpu.check_memory(&c.generation_memory(opts.batch, opts.precision.on(gpu)))?;
            let store = load_generator(gpu, &c, &file, None, opts.precision)?;
            let name = opts
                .config
                .clone()
                .or_else(|| builtin_name(&c).map(String::from))
                .unwrap_or(label);
            Ok((name, c, store))
        }
        None => {
            let name = opts.config.clone().unwrap_or_else(|| "B-4x".into());
            let c = load_config(&name)?;
            gpu.check_memory(&c.generation_memory(opts.batch, opts.precision.on(gpu)))?;
            let store = ParamStore::random_in(
                gpu,
                &generation_parameters(&c),
                &mut Rng::new(0),
                0.02,
                &half_weights(&c, opts.precision.on(gpu)),
            )?;
            Ok((name, c, store))
        }
    }
}

/// Bytes in MiB.
fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}
