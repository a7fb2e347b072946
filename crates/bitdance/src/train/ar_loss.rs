//! The AR model's training loss (official recipe): bit-flipped input tokens, class dropout,
//! the transformer over the whole sequence, then the head's flow loss on `diff_batch_mul`
//! repeats of every condition with logit-normal t:
//! z = (1 - t) e + t x, v = (x - z) / max(1 - t, 0.05), loss = mean((v - v_pred)^2), which is
//! mean(((x - x_pred) / max(1 - t, 0.05))^2) since z cancels.

use super::ArRecipe;
use crate::autograd::{Tape, Var};
use crate::model::{head_forward, timestep_embedding, transformer_forward, ModelConfig, ParamVars};
use crate::rng::Rng;
use crate::{Error, Result, Tensor};

/// One training batch: cached ±1 tokens [B, T, token_dim] in the model's token order
/// (patch-raster for next-patch models) and class ids [B], host values.
pub struct ArBatch<'a> {
    /// Token bits, ±1, [B, T, token_dim] row-major.
    pub tokens: &'a [f32],
    /// Class ids in 0..num_classes.
    pub classes: &'a [u32],
}

/// The random choices of one step, drawn on the host (so a run is reproducible and a
/// reference implementation can be fed the same values).
pub struct ArDraws {
    /// Input tokens after the bit-flip perturbation [B, T, token_dim].
    pub inputs: Vec<f32>,
    /// Classes after dropout to the null class [B].
    pub classes: Vec<u32>,
    /// Flow time per head sample (one per patch of p tokens) [diff_batch_mul * B * T / p].
    pub t: Vec<f32>,
    /// Gaussian noise [diff_batch_mul * B * T, token_dim].
    pub noise: Vec<f32>,
}

impl ArDraws {
    /// Draws a step's perturbation, dropout, times and noise from `rng` (in that order).
    pub fn sample(c: &ModelConfig, batch: &ArBatch, recipe: &ArRecipe, rng: &mut Rng) -> Self {
        let inputs = batch
            .tokens
            .iter()
            .map(|&bit| {
                let (r1, r2) = (rng.uniform() as f32, rng.uniform() as f32);
                if r1 < recipe.perturb_rate * r2 {
                    -bit
                } else {
                    bit
                }
            })
            .collect();
        let classes = batch
            .classes
            .iter()
            .map(|&k| {
                if (rng.uniform() as f32) < recipe.class_dropout {
                    c.num_classes as u32
                } else {
                    k
                }
            })
            .collect();
        let rows = recipe.diff_batch_mul * batch.tokens.len() / c.token_dim();
        let t = (0..rows / c.parallel_num)
            .map(|_| {
                let n = rng.normal() as f32 * recipe.p_std + recipe.p_mean;
                1.0 / (1.0 + (-n).exp())
            })
            .collect();
        let noise = rng.normal_vec(rows * c.token_dim());
        Self {
            inputs,
            classes,
            t,
            noise,
        }
    }
}

/// Records the AR training loss of `batch` with the given draws on `tape`; returns the scalar
/// loss [1].
pub fn ar_loss(
    tape: &Tape,
    c: &ModelConfig,
    params: &ParamVars,
    batch: &ArBatch,
    draws: &ArDraws,
    recipe: &ArRecipe,
) -> Result<Var> {
    let (k, p, t_len) = (c.token_dim(), c.parallel_num, c.image_tokens());
    let b = batch.classes.len();
    if batch.tokens.len() != b * t_len * k || draws.inputs.len() != batch.tokens.len() {
        return Err(Error::Shape {
            op: "ar_loss",
            detail: format!(
                "{} token values for {b} images of {t_len} x {k} tokens",
                batch.tokens.len()
            ),
        });
    }
    if let Some(bad) = batch.classes.iter().find(|&&k| k as usize >= c.num_classes) {
        return Err(Error::Invalid(format!(
            "ar_loss: class {bad} out of range (the model has {} classes)",
            c.num_classes
        )));
    }
    let mul = recipe.diff_batch_mul.max(1);
    let rows = mul * b * t_len;
    if draws.t.len() * p != rows || draws.noise.len() != rows * k {
        return Err(Error::Shape {
            op: "ar_loss",
            detail: format!(
                "draws hold {} times and {} noise values; {rows} rows need {} and {}",
                draws.t.len(),
                draws.noise.len(),
                rows / p,
                rows * k
            ),
        });
    }
    let gpu = params.gpu()?;
    let classes = Tensor::from_u32(&gpu, &[b], &draws.classes)?;
    let inputs = tape.constant(Tensor::from_f32(&gpu, &[b, t_len, k], &draws.inputs)?);
    let hidden = transformer_forward(tape, c, params, &classes, inputs)?;
    let hidden = tape.reshape(hidden, &[b * t_len, c.dim])?;
    let cond = tape.tile(hidden, mul)?;

    // Row r is token r % (B T) of repeat r / (B T); its patch is r / p.
    let mut z = vec![0f32; rows * k];
    let mut scaled_target = vec![0f32; rows * k];
    let mut scale = vec![0f32; rows * k];
    let mut t_rows = Vec::with_capacity(rows);
    for r in 0..rows {
        let t = draws.t[r / p];
        let s = 1.0 / (1.0 - t).max(0.05);
        t_rows.push(t);
        let x = &batch.tokens[(r % (b * t_len)) * k..][..k];
        for (j, &bit) in x.iter().enumerate() {
            let i = r * k + j;
            z[i] = (1.0 - t) * draws.noise[i] + t * bit;
            scaled_target[i] = bit * s;
            scale[i] = s;
        }
    }
    let z = tape.constant(Tensor::from_f32(&gpu, &[rows, k], &z)?);
    let t_freq = tape.constant(Tensor::from_f32(
        &gpu,
        &[rows, 256],
        &timestep_embedding(&t_rows, 256),
    )?);
    let x_pred = head_forward(tape, c, params, z, t_freq, cond)?;
    let scale = tape.constant(Tensor::from_f32(&gpu, &[rows, k], &scale)?);
    let target = tape.constant(Tensor::from_f32(&gpu, &[rows, k], &scaled_target)?);
    let pred = tape.mul(x_pred, scale)?;
    tape.mse_loss(pred, target)
}
