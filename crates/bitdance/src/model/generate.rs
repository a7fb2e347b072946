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
/// `progress` is called after each AR step with (step, steps). (`TokenSampler` runs the same
/// sampling a step at a time.)
pub fn generate_tokens(
    c: &ModelConfig,
    params: &ParamStore,
    classes: &[u32],
    settings: &SampleSettings,
    noise: &mut dyn GaussianSource,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Tensor> {
    let mut sampler = TokenSampler::new(c, params, classes, settings)?;
    while sampler.step(noise)? {
        progress(sampler.done(), sampler.steps());
    }
    progress(sampler.done(), sampler.steps());
    sampler.finish()
}

/// An AR sampling run advanced one step at a time, so that a front end can decode a preview
/// of the tokens sampled so far (`tokens_so_far`) and stop between steps; `generate_tokens`
/// runs it to the end. The draws depend only on the classes, the settings and the noise
/// source, not on how the steps are driven.
pub struct TokenSampler {
    c: ModelConfig,
    /// The model's parameters (shared handles: a clone holds the same GPU buffers).
    params: ParamStore,
    settings: SampleSettings,
    /// The images' classes, then the null class for each when guided.
    rows: Vec<u32>,
    images: usize,
    cache: KvCache,
    last: Option<Tensor>,
    /// Each step's patch of every image [B, p, token_dim].
    patches: Vec<Tensor>,
    /// The run's buffers (KV cache, per-step temporaries) are freed from the pool when it
    /// ends; declared last, so it drops after the tensors above.
    _phase: crate::gpu::PoolPhase,
}

impl TokenSampler {
    /// A run for one image per class id in `classes` (checked against the model when the
    /// first step embeds them).
    pub fn new(
        c: &ModelConfig,
        params: &ParamStore,
        classes: &[u32],
        settings: &SampleSettings,
    ) -> Result<Self> {
        if classes.is_empty() {
            return Err(Error::Invalid("generate: no class given".into()));
        }
        settings.validate()?;
        let images = classes.len();
        let mut rows = classes.to_vec();
        if settings.cfg > 1.0 {
            rows.extend(std::iter::repeat_n(c.num_classes as u32, images));
        }
        let gpu = params.get("pos_for_diff.weight")?.gpu().clone();
        let phase = gpu.pool_phase();
        Ok(Self {
            c: c.clone(),
            params: params.clone(),
            settings: *settings,
            cache: KvCache::new(c, &gpu, rows.len())?,
            rows,
            images,
            last: None,
            patches: Vec::with_capacity(c.ar_steps()),
            _phase: phase,
        })
    }

    /// AR steps of the whole run.
    pub fn steps(&self) -> usize {
        self.c.ar_steps()
    }

    /// AR steps taken so far.
    pub fn done(&self) -> usize {
        self.patches.len()
    }

    /// Samples the next patch of every image with draws from `noise`; returns whether steps
    /// remain (false once the last patch is sampled, and for a finished run).
    pub fn step(&mut self, noise: &mut dyn GaussianSource) -> Result<bool> {
        let (c, params) = (&self.c, &self.params);
        let i = self.done();
        if i == self.steps() {
            return Ok(false);
        }
        let (p, d, rows) = (c.parallel_num, c.dim, self.rows.len());
        let input = match &self.last {
            None => embed_prefix(c, params, &self.rows)?,
            Some(tokens) => embed_tokens(c, params, tokens)?,
        };
        let h = transformer_step(c, params, &mut self.cache, &input)?;
        let n = h.shape()[1];
        let h = ops::slice(&h, 1, n - p, p)?.reshape(&[rows * p, d])?;
        let pos = ops::slice(params.get("pos_for_diff.weight")?, 0, i * p, p)?;
        let pos = ops::concat(&vec![&pos; rows], 0)?;
        let cond = ops::add(&h, &pos)?;
        let cfg = cfg_at(&self.settings, i, self.steps());
        let sampled = sample_head(c, params, &cond, cfg, self.settings.head_steps, noise)?;
        // With guidance at this step, one sample per image feeds both branches; without it
        // (step 0 of the linear schedule) every row was sampled on its own.
        let tokens = if cfg > 1.0 {
            ops::concat(&[&sampled, &sampled], 0)?
        } else {
            sampled
        };
        let tokens = tokens.reshape(&[rows, p, c.token_dim()])?;
        self.patches.push(ops::slice(&tokens, 0, 0, self.images)?);
        self.last = Some(tokens);
        Ok(self.done() < self.steps())
    }

    /// The tokens sampled so far [B, T, token_dim] (model order), zeros where no patch is
    /// sampled yet: decoded, a preview of the image to come.
    pub fn tokens_so_far(&self) -> Result<Tensor> {
        let c = &self.c;
        let rest = (self.steps() - self.done()) * c.parallel_num;
        let gpu = self.params.get("pos_for_diff.weight")?.gpu();
        let zeros = match rest {
            0 => None,
            _ => Some(Tensor::zeros(gpu, &[self.images, rest, c.token_dim()])?),
        };
        let parts: Vec<&Tensor> = self.patches.iter().chain(zeros.as_ref()).collect();
        ops::concat(&parts, 1)
    }

    /// The tokens of the finished run [B, T, token_dim]; an error before its last step.
    pub fn finish(self) -> Result<Tensor> {
        if self.done() < self.steps() {
            return Err(Error::Invalid(format!(
                "generate: the run stopped after {} of {} AR steps",
                self.done(),
                self.steps()
            )));
        }
        self.tokens_so_far()
    }
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
