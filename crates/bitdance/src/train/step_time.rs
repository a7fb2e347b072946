//! How long a training step will take, told before the first one: the step's multiply-adds
//! (from the config, the batch and what trains) over the adapter's matmul throughput, measured
//! by a short probe timed with the caller's clock (the core keeps none).

use crate::model::{ar_layer_weights, ar_parameters, ModelConfig};
use crate::{ops, Gpu, Result, Tensor};

use super::{Task, Trains, CLASS_TABLE};

/// Rows of the probe's linear layer (its width is the model's: a kernel's throughput depends
/// on the sizes it runs at).
const PROBE_ROWS: usize = 256;
/// Probe products recorded per timing (one submit, one wait): at least this many, and enough
/// for `PROBE_FLOPS` (a narrow model's product alone is too short to time).
const PROBE_CALLS: usize = 8;
/// Floating-point operations of one timed probe at the least.
const PROBE_FLOPS: f64 = 4e8;
/// Timed runs of the probe (the fastest counts: a busy machine only slows a run).
const PROBE_RUNS: usize = 3;
/// The share of the probe's throughput a whole step reaches: the step's other work (norms,
/// attention, the optimizer, smaller or transposed products) against its larger products than
/// the probe's. On lavapipe (`bitdance bench train` prints the estimate beside the measured
/// step) the tiny config's step ran at 0.9 of the probe's throughput and a B-4x-size model's
/// at 0.75.
const STEP_EFFICIENCY: f64 = 0.85;

/// Floating-point operations of one training step of `task` on batches of `batch` (the
/// linear layers' and attention's, forward and backward; checkpointing adds a forward of every
/// block); None for the tokenizer's task, whose cost is its convolutions.
pub fn step_flops(task: &Task, c: &ModelConfig, batch: usize, checkpointing: bool) -> Option<f64> {
    let Task::Ar(recipe) = task else {
        return None;
    };
    let linear: std::collections::BTreeSet<String> = ar_layer_weights(c)
        .into_iter()
        .filter(|n| n != CLASS_TABLE)
        .collect();
    let (mut trunk, mut head) = (0.0, 0.0);
    for spec in ar_parameters(c).iter().filter(|s| linear.contains(&s.name)) {
        let weights = spec.shape.iter().map(|&d| d as f64).product::<f64>();
        match spec.name.starts_with("head.") {
            true => head += weights,
            false => trunk += weights,
        }
    }
    let b = batch as f64;
    let seq = c.sequence_len() as f64;
    let trunk_rows = b * seq;
    let head_rows = b * c.image_tokens() as f64 * recipe.diff_batch_mul.max(1) as f64;
    // Per layer QKᵀ and the weighted sum of values: 2 products of seq x seq x dim each.
    let attention = c.n_layer as f64 * b * 4.0 * seq * seq * c.dim as f64;
    let forward = 2.0 * (trunk_rows * trunk + head_rows * head) + attention;
    // Backward: the input gradient always (the class rows need it), the weight gradient when
    // the weights train; a recomputed block runs its forward again.
    let weight_grads = match recipe.trains {
        Trains::Full => 2.0 * (trunk_rows * trunk + head_rows * head),
        Trains::Lora(_) | Trains::Embeddings => 0.0,
    };
    let recompute = if checkpointing { forward } else { 0.0 };
    Some(2.0 * forward + weight_grads + recompute)
}

/// Records the probe's products of `x` [256, width] by `w` [width, width]ᵀ on their GPU;
/// returns their floating-point operations.
fn record_probe(x: &Tensor, w: &Tensor) -> Result<f64> {
    let (m, k, n) = (x.shape()[0], x.shape()[1], w.shape()[0]);
    let per_call = 2.0 * (m * k * n) as f64;
    let calls = PROBE_CALLS.max((PROBE_FLOPS / per_call).ceil() as usize);
    for _ in 0..calls {
        drop(ops::matmul(x, w, None, false, true)?);
    }
    Ok(calls as f64 * per_call)
}

/// The adapter's matmul throughput at a model's `width` (`ModelConfig::dim`) as (FLOPs,
/// seconds) of the fastest of a few timed probes (a linear layer of `width` inputs and outputs
/// on 256 rows, its operands uploaded before any timing), after one untimed probe that
/// compiles the kernel; `now` is the caller's clock in seconds (any origin).
pub async fn time_throughput_probe(
    gpu: &Gpu,
    width: usize,
    now: &dyn Fn() -> f64,
) -> Result<(f64, f64)> {
    let (m, k) = (PROBE_ROWS, width.max(1));
    let x = Tensor::from_f32(gpu, &[m, k], &probe_values(m * k))?;
    let w = Tensor::from_f32(gpu, &[k, k], &probe_values(k * k))?;
    record_probe(&x, &w)?;
    gpu.finished().await?;
    let mut best = (0.0, f64::INFINITY);
    for _ in 0..PROBE_RUNS {
        let start = now();
        let flops = record_probe(&x, &w)?;
        gpu.finished().await?;
        let secs = now() - start;
        if secs < best.1 {
            best = (flops, secs);
        }
    }
    Ok(best)
}

/// Small deterministic values (the probe's time does not depend on them).
fn probe_values(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i % 17) as f32 - 8.0) / 64.0).collect()
}

/// Seconds one step is expected to take: `step_flops` at `STEP_EFFICIENCY` of the throughput a
/// probe of `probe_flops` showed in `probe_seconds`.
pub fn step_seconds(step_flops: f64, probe_flops: f64, probe_seconds: f64) -> f64 {
    let throughput = probe_flops / probe_seconds.max(1e-9);
    step_flops / (throughput * STEP_EFFICIENCY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::{ArRecipe, LoraSpec};

    fn task(trains: Trains) -> Task {
        Task::Ar(ArRecipe {
            trains,
            ..ArRecipe::default()
        })
    }

    #[test]
    fn a_step_costs_three_forwards_and_less_when_weights_are_frozen() {
        let c = ModelConfig::builtin("B-4x").unwrap();
        let full = step_flops(&task(Trains::Full), &c, 8, false).unwrap();
        let lora = step_flops(&task(Trains::Lora(LoraSpec::default())), &c, 8, false).unwrap();
        let rows = step_flops(&task(Trains::Embeddings), &c, 8, false).unwrap();
        let recomputed = step_flops(&task(Trains::Full), &c, 8, true).unwrap();
        // B-4x: 170M trunk weights over 8 x 320 rows, 60M head weights over 8 x 256 x 4
        // rows: about 1.9e12 forward, three times that with the backward.
        assert!((4.0e12..8.0e12).contains(&full), "{full:e}");
        assert!(lora < full && lora == rows, "{lora:e} {rows:e} {full:e}");
        assert!(recomputed > full && recomputed < 1.5 * full);
        let twice = step_flops(&task(Trains::Full), &c, 16, false).unwrap();
        assert!((twice / full - 2.0).abs() < 1e-9, "linear in the batch");
        assert_eq!(
            step_flops(&Task::Tokenizer(Default::default()), &c, 8, false),
            None
        );
    }

    #[test]
    fn the_estimate_scales_with_the_work_and_the_throughput() {
        let one = step_seconds(1e9, 1e9, 0.1);
        assert!((one - 0.1 / STEP_EFFICIENCY).abs() < 1e-12);
        assert_eq!(step_seconds(2e9, 1e9, 0.1), 2.0 * one);
        assert_eq!(step_seconds(1e9, 2e9, 0.1), 0.5 * one);
    }
}
