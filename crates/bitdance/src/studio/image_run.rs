//! The images of one recipe generated for an app, a step at a time, written once for the
//! desktop app and the web page: the AR steps (pass after pass, as `bitdance generate` samples
//! them), when a preview is worth decoding, the preview, and the finished images as RGB and as
//! PNGs carrying their recipe.

use image::RgbImage;

use crate::model::{
    decode_tokens, to_rgb8, ModelConfig, ParamStore, Precision, SampleSettings, TokenSampler,
};
use crate::rng::Rng;
use crate::{Result, Tensor};

use super::{tile_grid, Recipe, RecipeModel, RunRecord, SampleRequest};

/// Sampling time between previews, in decode times (2: previews take about a third). At 3 the
/// default model in Chromium (SwiftShader) showed a single preview; at 1 previews took 45% of
/// a B-4x image on lavapipe.
const PREVIEW_SPACING: f64 = 2.0;

/// Previews per run at the least, however slow a decode is against a step: a quarter of the
/// run never goes by without one.
const MIN_PREVIEWS: usize = 4;

/// When to decode a preview: after a step, once the time since the last preview is at least
/// twice what a decode cost, so that previews take at most about a third of a run
/// (every step for a small model, every few steps for a large one, whose 256x256 decode costs
/// several AR steps on a slow adapter), and at least every quarter of the run. The first
/// step's preview is always due.
#[derive(Clone, Copy, Debug, Default)]
pub struct PreviewPacer {
    since: f64,
    cost: f64,
    steps_since: usize,
}

impl PreviewPacer {
    /// Counts a step of `secs` seconds of a run of `steps` AR steps; whether a preview is due
    /// now.
    pub fn stepped(&mut self, secs: f64, steps: usize) -> bool {
        self.since += secs;
        self.steps_since += 1;
        self.since >= PREVIEW_SPACING * self.cost
            || self.steps_since >= steps.div_ceil(MIN_PREVIEWS)
    }

    /// Records that a preview was decoded in `secs` seconds.
    pub fn decoded(&mut self, secs: f64) {
        self.cost = secs;
        self.since = 0.0;
        self.steps_since = 0;
    }
}

/// A finished image: RGB bytes of `side` x `side`, its recipe, and its PNG with the recipe.
pub struct FinishedImage {
    /// Its place among the recipe's images (its class is `recipe.classes[index]`).
    pub index: usize,
    /// RGB8, row-major.
    pub rgb: Vec<u8>,
    /// Width and height in pixels.
    pub side: usize,
    /// Everything that made it (and the images sampled with it), and their token hash.
    pub recipe: Recipe,
    /// PNG bytes carrying the recipe in a `bitdance-recipe` text chunk.
    pub png: Vec<u8>,
}

/// The images of a recipe being sampled (a `SampleRequest`): one image per class, `batch` of
/// them together per pass, every pass drawing from one generator seeded once — the draws of
/// `bitdance generate -c ... --batch B --seed S`, so that a recipe from any front end re-runs
/// in the others.
pub struct ImageRun {
    config: ModelConfig,
    params: ParamStore,
    model: RecipeModel,
    precision: Precision,
    settings: SampleSettings,
    classes: Vec<u32>,
    batch: usize,
    seed: u64,
    noise: Rng,
    /// The pass being sampled.
    sampler: TokenSampler,
    /// Tokens of the passes already sampled [batch, T, token_dim] each.
    sampled: Vec<Tensor>,
    /// When previews are due (the caller measures the times: the core keeps no clock).
    pub pacer: PreviewPacer,
}

impl ImageRun {
    /// The run of `request` with the model `params` (config `config`, described as `model` in
    /// the recipe, its weights at `precision`).
    pub fn new(
        config: &ModelConfig,
        params: &ParamStore,
        model: RecipeModel,
        precision: Precision,
        request: &SampleRequest,
    ) -> Result<Self> {
        let SampleRequest {
            classes,
            batch,
            settings,
            seed,
        } = request;
        let (batch, seed) = (*batch, *seed);
        settings.validate()?;
        if classes.is_empty() || batch == 0 {
            return Err(crate::Error::Invalid(format!(
                "a run needs at least one image and a batch of at least one (got {} class(es), batch {batch})",
                classes.len()
            )));
        }
        if let Some(bad) = classes.iter().find(|&&k| k as usize >= config.num_classes) {
            return Err(crate::Error::Invalid(format!(
                "class {bad} is out of range: the model has {} classes",
                config.num_classes
            )));
        }
        let batch = batch.min(classes.len());
        Ok(Self {
            sampler: TokenSampler::new(config, params, &classes[..batch], settings)?,
            config: config.clone(),
            params: params.clone(),
            model,
            precision,
            settings: *settings,
            classes: classes.to_vec(),
            batch,
            seed,
            noise: Rng::new(seed),
            sampled: Vec::new(),
            pacer: PreviewPacer::default(),
        })
    }

    /// Images sampled together per pass (the first pass's count; the last may hold fewer).
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Passes in all.
    fn passes(&self) -> usize {
        self.classes.len().div_ceil(self.batch)
    }

    /// Takes the next AR step (recorded; submitted at the next sync); false when it was the
    /// last of the last pass. A pass that ends hands over to the next one.
    pub fn step(&mut self) -> Result<bool> {
        if self.sampler.step(&mut self.noise)? {
            return Ok(true);
        }
        let next = self.sampled.len() + 1;
        if next == self.passes() {
            return Ok(false);
        }
        let first = next * self.batch;
        let group = &self.classes[first..(first + self.batch).min(self.classes.len())];
        let sampler = TokenSampler::new(&self.config, &self.params, group, &self.settings)?;
        let done = std::mem::replace(&mut self.sampler, sampler);
        self.sampled.push(done.finish()?);
        Ok(true)
    }

    /// AR steps taken, over every pass.
    pub fn done(&self) -> usize {
        self.sampled.len() * self.sampler.steps() + self.sampler.done()
    }

    /// AR steps in all, over every pass.
    pub fn steps(&self) -> usize {
        self.passes() * self.sampler.steps()
    }

    /// The GPU the run is on (to await its work between steps).
    pub fn gpu(&self) -> Result<crate::Gpu> {
        self.params.gpu()
    }

    /// Side of each image in pixels.
    pub fn side(&self) -> usize {
        self.config.resolution
    }

    /// The pass being sampled so far (its tokens up to now decoded, the rest zero): its
    /// images side by side (`tile_grid`; the image itself for a batch of one), RGB8.
    pub async fn preview(&self) -> Result<RgbImage> {
        let tokens = self.sampler.tokens_so_far()?;
        let count = tokens.shape()[0];
        let out = decode_tokens(&self.config, &self.params, &tokens).await?;
        let r = self.side();
        Ok(tile_grid(&to_rgb8(&out.image, count, r, r), count, r))
    }

    /// Decodes the finished images and writes their recipe (one for the run: each image's PNG
    /// carries it); an error when steps remain.
    pub async fn finish(mut self) -> Result<Vec<FinishedImage>> {
        if self.done() < self.steps() {
            return Err(crate::Error::Invalid(format!(
                "the run is at step {} of {}: not finished",
                self.done(),
                self.steps()
            )));
        }
        let gpu = self.gpu()?;
        self.sampled.push(self.sampler.finish()?);
        let side = self.config.resolution;
        let (mut tokens, mut rgb) = (Vec::new(), Vec::new());
        for pass in &self.sampled {
            let out = decode_tokens(&self.config, &self.params, pass).await?;
            rgb.extend(to_rgb8(&out.image, pass.shape()[0], side, side));
            tokens.extend(out.tokens);
        }
        let record = RunRecord {
            classes: &self.classes,
            batch: self.batch,
            seed: self.seed,
            settings: &self.settings,
            precision: self.precision,
            tokens: &tokens,
        };
        let recipe = Recipe::of_run(self.model, record, &gpu);
        rgb.chunks(side * side * 3)
            .enumerate()
            .map(|(index, image)| {
                Ok(FinishedImage {
                    index,
                    png: recipe.png_of(image, side as u32, side as u32)?,
                    rgb: image.to_vec(),
                    side,
                    recipe: recipe.clone(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::PreviewPacer;

    #[test]
    fn previews_come_once_the_steps_since_the_last_cost_two_decodes() {
        let mut p = PreviewPacer::default();
        assert!(p.stepped(0.1, 64), "the first step shows a preview");
        p.decoded(0.1);
        assert!(!p.stepped(0.1, 64));
        assert!(p.stepped(0.1, 64), "0.2 s of steps after a 0.1 s decode");
        p.decoded(0.01);
        assert!(p.stepped(0.02, 64));
    }

    #[test]
    fn a_slow_decode_still_leaves_a_preview_every_quarter_of_the_run() {
        let mut p = PreviewPacer::default();
        assert!(p.stepped(0.01, 16));
        p.decoded(10.0);
        let due: Vec<bool> = (0..8).map(|_| p.stepped(0.01, 16)).collect();
        assert_eq!(due, [false, false, false, true, true, true, true, true]);
        p.decoded(10.0);
        assert!(
            !p.stepped(0.01, 16),
            "the count starts again after a preview"
        );
    }
}
