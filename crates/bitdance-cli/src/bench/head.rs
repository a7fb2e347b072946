//! `bitdance bench head`: the binary diffusion head's sampler for one AR step (every head
//! step with its CFG rows, the sign and the token readback) on random conditions and the
//! weights of `bench generate` (random unless `--weights`),
//! timed after a warm-up run, repeated; the head is where a next-patch model spends most of
//! its generation time.

use std::time::Instant;

use bitdance::model::{recommended_settings, sample_head};
use bitdance::rng::Rng;
use bitdance::{Gpu, Tensor};

use super::generate::{load_model, GenerateBench};
use super::timing::Timing;

/// Runs the benchmark and prints its figures.
pub fn run(gpu: &Gpu, opts: &GenerateBench) -> anyhow::Result<()> {
    anyhow::ensure!(opts.batch > 0, "bench head: --batch must be at least 1");
    let (name, c, store) = load_model(gpu, opts)?;
    let cfg = opts.cfg.unwrap_or(recommended_settings(Some(&name)).cfg);
    let cfg_mult = if cfg > 1.0 { 2 } else { 1 };
    let rows = cfg_mult * opts.batch * c.parallel_num;
    let mut rng = Rng::new(1);
    let cond = Tensor::from_f32(gpu, &[rows, c.dim], &rng.normal_vec(rows * c.dim))?;
    let one_run = || -> anyhow::Result<f64> {
        let start = Instant::now();
        let tokens = sample_head(&c, &store, &cond, cfg, opts.head_steps, &mut Rng::new(2))?;
        tokens.read_f32()?;
        Ok(start.elapsed().as_secs_f64())
    };
    let first = one_run()?;
    let runs: Vec<f64> = (0..opts.repeats.max(1))
        .map(|_| one_run())
        .collect::<anyhow::Result<_>>()?;
    let step = Timing::from_runs(runs);
    let evaluations = (opts.head_steps + 1) as f64;
    let per_image = c.ar_steps() as f64 / opts.batch as f64;
    if opts.json {
        println!(
            "{}",
            serde_json::json!({"bench": "head", "config": name, "batch": opts.batch, "cfg": cfg,
                "precision": opts.precision.on(gpu).name(), "f16_form": gpu.f16_form().to_string(),
                "head_steps": opts.head_steps, "rows": rows, "repeats": step.runs().len(),
                "seconds_per_ar_step": step.median(), "seconds_per_ar_step_min": step.min(),
                "ms_per_evaluation": 1e3 * step.median() / evaluations,
                "head_seconds_per_image": step.median() * per_image, "first_run_s": first})
        );
    } else {
        println!(
            "head of {name} ({} weights, {} linear weights), batch {}, cfg {cfg}: {rows} rows, {} head steps",
            opts.weights.as_ref().map_or("random".into(), |p| p.display().to_string()),
            opts.precision.on(gpu),
            opts.batch,
            opts.head_steps
        );
        println!("  first run (pipeline compilation, buffers pooled): {first:.3} s");
        println!(
            "  one AR step's head, min / median over {} runs: {:.3} / {:.3} s ({:.2} ms per evaluation)",
            step.runs().len(),
            step.min(),
            step.median(),
            1e3 * step.median() / evaluations
        );
        println!(
            "  the head's share of one image ({} AR steps): {:.1} s (median)",
            c.ar_steps(),
            step.median() * per_image
        );
    }
    if opts.profile {
        gpu.start_profiling();
        sample_head(&c, &store, &cond, cfg, opts.head_steps, &mut Rng::new(2))?.read_f32()?;
        super::print_profile(&gpu.stop_profiling(), "one AR step's head");
    }
    Ok(())
}
