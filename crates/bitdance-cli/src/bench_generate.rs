//! `bitdance bench generate`: time one image of a model with random weights.
//!
//! The head's cost is linear in its sampling steps, so the AR loop runs at two step counts and
//! the split into transformer and head time per image (at the official 100 steps) is solved
//! from the two timings. The full class table is kept (the B table exceeds one storage binding
//! and is held in row chunks), so the peak memory is that of the real model.

use std::process::ExitCode;
use std::time::Instant;

use bitdance::model::{
    ar_parameters, decode, decoder_parameters, generate_tokens, tokens_to_latents, CfgSchedule,
    ParamStore, SampleSettings,
};
use bitdance::rng::Rng;
use bitdance::{Gpu, Tensor};

use crate::files::load_config;

/// Runs the benchmark and prints its figures.
pub fn run(
    gpu: &Gpu,
    config: &str,
    cfg: f32,
    batch: usize,
    json: bool,
    profile: bool,
) -> anyhow::Result<ExitCode> {
    let c = load_config(config)?;
    let batch = batch.max(1);
    let classes: Vec<u32> = (0..batch).map(|i| (i % c.num_classes) as u32).collect();
    let mut rng = Rng::new(0);
    let mut specs = ar_parameters(&c);
    specs.extend(decoder_parameters(&c.vae));
    let store = ParamStore::random(gpu, &specs, &mut rng, 0.02)?;
    gpu.synchronize()?;
    gpu.reset_peak();
    let time_ar = |steps: usize| -> anyhow::Result<(f64, Tensor)> {
        let settings = SampleSettings {
            cfg,
            schedule: CfgSchedule::Linear,
            head_steps: steps,
        };
        let start = Instant::now();
        let tokens = generate_tokens(
            &c,
            &store,
            &classes,
            &settings,
            &mut Rng::new(1),
            &mut |_, _| {},
        )?;
        gpu.synchronize()?;
        Ok((start.elapsed().as_secs_f64(), tokens))
    };
    let (low, high) = (2, 6);
    let (t_low, _) = time_ar(low)?;
    let (t_high, tokens) = time_ar(high)?;
    // Each head sampling run does steps + 1 network evaluations.
    let per_eval = (t_high - t_low) / (high - low) as f64;
    let transformer = (t_low - per_eval * (low + 1) as f64).max(0.0);
    let head = per_eval * 101.0;
    let host = tokens.read_f32()?;
    let z = tokens_to_latents(&c, &host)?;
    let start = Instant::now();
    let image = decode(
        gpu,
        &c.vae,
        &store,
        &z,
        [batch, c.latent_dim, c.grid(), c.grid()],
    )?;
    gpu.synchronize()?;
    let decoder = start.elapsed().as_secs_f64();
    drop(image);
    let peak = gpu.stats().peak_bytes as f64 / (1 << 20) as f64;
    let (profiled, profiled_decoder) = if profile {
        gpu.start_profiling();
        time_ar(low)?;
        let ar = gpu.stop_profiling();
        gpu.start_profiling();
        let shape = [batch, c.latent_dim, c.grid(), c.grid()];
        drop(decode(gpu, &c.vae, &store, &z, shape)?);
        gpu.synchronize()?;
        (ar, gpu.stop_profiling())
    } else {
        (Vec::new(), Vec::new())
    };
    let per = batch as f64;
    let (transformer, head, decoder) = (transformer / per, head / per, decoder / per);
    let total = transformer + head + decoder;
    if json {
        println!(
            "{}",
            serde_json::json!({"bench": "generate", "config": config, "batch": batch, "seconds_per_image": total,
                "transformer_s": transformer, "head_s": head, "decoder_s": decoder, "peak_gpu_mib": peak})
        );
    } else {
        println!("generate {config}, batch {batch}, cfg {cfg}, 100 head steps (solved from {low} and {high} steps), per image:");
        println!("  transformer {transformer:8.1} s\n  head        {head:8.1} s\n  decoder     {decoder:8.1} s");
        println!("  total       {total:8.1} s per image; peak GPU memory {peak:.0} MiB");
    }
    if profile {
        let what = format!(
            "the AR loop at {low} head steps (transformer + {} head evaluations per AR step)",
            low + 1
        );
        crate::bench::print_profile(&profiled, &what);
        crate::bench::print_profile(&profiled_decoder, "the decoder");
    }
    Ok(ExitCode::SUCCESS)
}
