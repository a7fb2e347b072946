//! Sampling the binary diffusion head: Euler-Maruyama over the official time grid with
//! classifier-free guidance, a final plain Euler step of 0.05 at t = 0.95, then the sign.

use super::graph::Eager;
use super::head::{head_body, StepConditions};
use super::weights::{from_store, Head};
use super::{Graph, ModelConfig, ParamStore};
use crate::rng::Rng;
use crate::{ops, Error, Result, Tensor};

/// Size of the final plain Euler step (the grid ends at t = 1 - LAST_STEP).
pub const LAST_STEP: f32 = 0.05;

/// Which Gaussian draw the sampler asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Draw {
    /// The initial noise x0 of the rows being sampled.
    Initial,
    /// The Euler-Maruyama noise of step i.
    Step(usize),
}

/// Where the sampler's Gaussian draws come from: a seeded generator, or recorded draws so a
/// run can be compared step by step with the PyTorch reference.
pub trait GaussianSource {
    /// `n` standard normal values for `draw`.
    fn draw(&mut self, draw: Draw, n: usize) -> Result<Vec<f32>>;
}

impl GaussianSource for Rng {
    fn draw(&mut self, _draw: Draw, n: usize) -> Result<Vec<f32>> {
        Ok(self.normal_vec(n))
    }
}

/// The official sampler's time grid: `time_shift_sana(linspace_grid(steps), 1)` in f32, i.e.
/// 1 / (1 + (1/t - 1)) per point, which is t up to one ulp (t = 0 stays 0), exactly as
/// `euler_maruyama` computes it before taking the steps dt.
pub fn time_grid(steps: usize) -> Vec<f32> {
    linspace_grid(steps)
        .into_iter()
        .map(|t| 1.0 / (1.0 + (1.0 / t - 1.0)))
        .collect()
}

/// torch.linspace(0, 1 - LAST_STEP, steps + 1) in f32, bit for bit.
pub fn linspace_grid(steps: usize) -> Vec<f32> {
    let end = 1.0 - LAST_STEP;
    if steps == 0 {
        return vec![0.0];
    }
    let step = end / steps as f32;
    let half = steps.div_ceil(2); // = (steps + 1) points / 2, torch: points before npts / 2 count from the start
    (0..=steps)
        .map(|i| {
            if i < half {
                step * i as f32
            } else {
                // torch computes `end - step * k` with one rounding (a fused multiply-add in
                // its CPU kernel, and nvcc contracts it so by default): two roundings differ,
                // e.g. at N = 25, i = 16.
                (-step).mul_add((steps - i) as f32, end)
            }
        })
        .collect()
}

/// Samples tokens from the head for conditions `cond` [cfg_mult * R, dim] (conditional rows
/// first, then unconditional ones when `cfg` > 1; for next-patch models the p rows of a patch
/// are consecutive). Returns the ±1 tokens [R, token_dim]; guidance applies when `cfg` > 1.
pub fn sample_head(
    c: &ModelConfig,
    params: &ParamStore,
    cond: &Tensor,
    cfg: f32,
    steps: usize,
    noise: &mut dyn GaussianSource,
) -> Result<Tensor> {
    let guided = cfg > 1.0;
    let cfg_mult = if guided { 2 } else { 1 };
    let m = cond.shape().first().copied().unwrap_or(0);
    if cond.shape().len() != 2 || cond.shape()[1] != c.dim || m % cfg_mult != 0 || m == 0 {
        return Err(Error::Shape {
            op: "sample_head",
            detail: format!(
                "conditions {:?} must be [{cfg_mult} x rows, {}]",
                cond.shape(),
                c.dim
            ),
        });
    }
    if steps == 0 {
        return Err(Error::Invalid(
            "sample_head: at least one sampling step is needed".into(),
        ));
    }
    let gpu = cond.gpu();
    let rows = m / cfg_mult;
    let k = c.token_dim();
    let x = Tensor::from_f32(gpu, &[rows, k], &noise.draw(Draw::Initial, rows * k)?)?;
    let head = Head::fetch(c, &mut from_store(params))?;
    let cond_emb = Eager.linear(cond, &head.cond_embed.weight, head.cond_embed.bias.as_ref())?;
    // The flow time of every evaluation: the Euler-Maruyama steps accumulate dt in f32 as the
    // official sampler does, then the final Euler step at 1 - LAST_STEP.
    let grid = time_grid(steps);
    let mut times = Vec::with_capacity(steps + 1);
    let mut t = 0.0f32;
    for i in 0..steps {
        times.push(t);
        t += grid[i + 1] - grid[i];
    }
    times.push(1.0 - LAST_STEP);
    let mut conditions = StepConditions::new(c, &head, &cond_emb, &times);
    let mut predict = |i: usize| -> Result<Tensor> {
        let combined = if guided {
            ops::concat(&[&x, &x], 0)?
        } else {
            x.clone()
        };
        head_body(&Eager, c, &head, &combined, &conditions.at(i)?)
    };
    for i in 0..steps {
        let dt = grid[i + 1] - grid[i];
        let pred = predict(i)?;
        let eps = Tensor::from_f32(gpu, &[rows, k], &noise.draw(Draw::Step(i), rows * k)?)?;
        ops::flow_step(&x, &pred, Some(&eps), times[i], dt, cfg)?;
    }
    let pred = predict(steps)?;
    ops::flow_step(&x, &pred, None, 1.0 - LAST_STEP, LAST_STEP, cfg)?;
    ops::sign_quantize(&x)
}

#[cfg(test)]
mod tests {
    use super::time_grid;

    #[test]
    fn grid_runs_from_zero_to_095() {
        let g = time_grid(100);
        assert_eq!(g.len(), 101);
        assert_eq!(g[0], 0.0);
        assert_eq!(g[100], 0.95);
        assert!((g[50] - 0.475).abs() < 1e-6);
        assert!(g.windows(2).all(|w| w[1] > w[0]));
    }
}
