//! The AR sampling loop: class (and null-class) prefixes, one patch per step through the KV
//! cache, the head sampled with the CFG schedule, and the tokens fed back to both branches.

use super::{
    embed_prefix, embed_tokens, sample_head, transformer_step, GaussianSource, KvCache,
    ModelConfig, ParamStore,
};
use crate::ops::{self, patch_raster_order};
use crate::{Error, Result, Tensor};

/// How the guidance scale grows over the AR steps (`linear`, `constant` in recipes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CfgSchedule {
    /// cfg_i = 1 + (cfg - 1) * i / steps (the official default).
    Linear,
    /// cfg_i = cfg at every step.
    Constant,
}

/// Sampling settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampleSettings {
    /// Guidance scale (guidance is on when > 1).
    pub cfg: f32,
    /// Schedule of the guidance scale over the AR steps.
    pub schedule: CfgSchedule,
    /// Euler-Maruyama steps of the head per AR step (100 in the official sampler).
    pub head_steps: usize,
}

/// Most head steps a sampler may be asked for (the official sampler takes 100): the step grid
/// and the per-evaluation conditions are allocated up front.
pub const MAX_HEAD_STEPS: usize = 10_000;

impl SampleSettings {
    /// Refuses, naming the value, a guidance scale that is not a finite number >= 0 and a
    /// number of head steps outside 1..=`MAX_HEAD_STEPS`.
    pub fn validate(&self) -> Result<()> {
        let cfg = self.cfg;
        if !(cfg.is_finite() && cfg >= 0.0) {
            return Err(Error::Invalid(format!(
                "guidance scale {cfg}: must be a finite number >= 0"
            )));
        }
        if !(1..=MAX_HEAD_STEPS).contains(&self.head_steps) {
            return Err(Error::Invalid(format!(
                "{} head steps: must be between 1 and {MAX_HEAD_STEPS} (the official sampler takes 100)",
                self.head_steps
            )));
        }
        Ok(())
    }
}

/// The guidance scale at AR step `i` of `n` (1 means no guidance at that step).
pub fn cfg_at(s: &SampleSettings, i: usize, n: usize) -> f32 {
    if s.cfg <= 1.0 {
        return 1.0;
    }
    match s.schedule {
        CfgSchedule::Constant => s.cfg,
        CfgSchedule::Linear => 1.0 + (s.cfg - 1.0) * i as f32 / n as f32,
    }
}

/// Samples the tokens of one image per class: ±1 [B, T, token_dim] in the model's token order.
/// `progress` is called after each AR step with (step, steps).
pub fn generate_tokens(
    c: &ModelConfig,
    params: &ParamStore,
    classes: &[u32],
    settings: &SampleSettings,
    noise: &mut dyn GaussianSource,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Tensor> {
    if classes.is_empty() {
        return Err(Error::Invalid("generate: no class given".into()));
    }
    settings.validate()?;
    let guided = settings.cfg > 1.0;
    let b = classes.len();
    let mut all: Vec<u32> = classes.to_vec();
    if guided {
        all.extend(std::iter::repeat_n(c.num_classes as u32, b));
    }
    let rows = all.len();
    let (p, d) = (c.parallel_num, c.dim);
    let gpu = params.get("pos_for_diff.weight")?.gpu().clone();
    let mut cache = KvCache::new(c, &gpu, rows)?;
    let pos_for_diff = params.get("pos_for_diff.weight")?;
    let steps = c.ar_steps();
    let mut patches = Vec::with_capacity(steps);
    let mut last: Option<Tensor> = None;
    for i in 0..steps {
        let input = match &last {
            None => embed_prefix(c, params, &all)?,
            Some(tokens) => embed_tokens(c, params, tokens)?,
        };
        let h = transformer_step(c, params, &mut cache, &input)?;
        let n = h.shape()[1];
        let h = ops::slice(&h, 1, n - p, p)?.reshape(&[rows * p, d])?;
        let pos = ops::slice(pos_for_diff, 0, i * p, p)?;
        let pos = ops::concat(&vec![&pos; rows], 0)?;
        let cond = ops::add(&h, &pos)?;
        let cfg = cfg_at(settings, i, steps);
        let sampled = sample_head(c, params, &cond, cfg, settings.head_steps, noise)?;
        // With guidance at this step, one sample per image feeds both branches; without it
        // (step 0 of the linear schedule) every row was sampled on its own.
        let tokens = if cfg > 1.0 {
            ops::concat(&[&sampled, &sampled], 0)?
        } else {
            sampled
        };
        let tokens = tokens.reshape(&[rows, p, c.token_dim()])?;
        patches.push(ops::slice(&tokens, 0, 0, b)?);
        last = Some(tokens);
        progress(i + 1, steps);
    }
    let refs: Vec<&Tensor> = patches.iter().collect();
    ops::concat(&refs, 1)
}

/// Tokens [B, T, token_dim] in the model's token order -> latents [B, token_dim, g, g] (host,
/// row-major), undoing the patch-raster order of next-patch models.
pub fn tokens_to_latents(c: &ModelConfig, tokens: &[f32]) -> Result<Vec<f32>> {
    let (g, k, t) = (c.grid(), c.token_dim(), c.image_tokens());
    if c.patch_size != 1 || !tokens.len().is_multiple_of(t * k) {
        return Err(Error::Invalid(format!(
            "tokens_to_latents: {} values for tokens of {t} x {k}",
            tokens.len()
        )));
    }
    let order = patch_raster_order(g, g, c.patch_side())?;
    let b = tokens.len() / (t * k);
    let mut z = vec![0.0; tokens.len()];
    for bi in 0..b {
        for (i, &cell) in order.iter().enumerate() {
            for ch in 0..k {
                z[(bi * k + ch) * t + cell as usize] = tokens[(bi * t + i) * k + ch];
            }
        }
    }
    Ok(z)
}

/// Latents [B, token_dim, g, g] (host, row-major) -> tokens [B, T, token_dim] in the model's
/// token order (patch-raster for next-patch models): the inverse of `tokens_to_latents`.
pub fn latents_to_tokens(c: &ModelConfig, z: &[f32]) -> Result<Vec<f32>> {
    let (g, k, t) = (c.grid(), c.token_dim(), c.image_tokens());
    if c.patch_size != 1 || !z.len().is_multiple_of(t * k) {
        return Err(Error::Invalid(format!(
            "latents_to_tokens: {} values for latents of {k} x {g} x {g}",
            z.len()
        )));
    }
    let order = patch_raster_order(g, g, c.patch_side())?;
    let b = z.len() / (t * k);
    let mut tokens = vec![0.0; z.len()];
    for bi in 0..b {
        for (i, &cell) in order.iter().enumerate() {
            for ch in 0..k {
                tokens[(bi * t + i) * k + ch] = z[(bi * k + ch) * t + cell as usize];
            }
        }
    }
    Ok(tokens)
}
