//! One image generated for an app, a step at a time, written once for the desktop app and the
//! web page: the AR steps, when a preview is worth decoding, the preview, and the finished image
//! as RGB and as a PNG carrying its recipe.

use crate::model::{
    decode_tokens, to_rgb8, ModelConfig, ParamStore, Precision, SampleSettings, TokenSampler,
};
use crate::rng::Rng;
use crate::Result;

use super::{Recipe, RecipeModel, RunRecord};

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
    /// RGB8, row-major.
    pub rgb: Vec<u8>,
    /// Width and height in pixels.
    pub side: usize,
    /// Everything that made it, and its token hash.
    pub recipe: Recipe,
    /// PNG bytes carrying the recipe in a `bitdance-recipe` text chunk.
    pub png: Vec<u8>,
}

/// One image of one class being sampled.
pub struct ImageRun {
    config: ModelConfig,
    params: ParamStore,
    model: RecipeModel,
    precision: Precision,
    sampler: TokenSampler,
    noise: Rng,
    class: u32,
    seed: u64,
    settings: SampleSettings,
    /// When previews are due (the caller measures the times: the core keeps no clock).
    pub pacer: PreviewPacer,
}

impl ImageRun {
    /// A run of one image of `class` with the model `params` (config `config`, described as
    /// `model` in the recipe, its weights at `precision`), sampled with `settings` from `seed`.
    pub fn new(
        config: &ModelConfig,
        params: &ParamStore,
        model: RecipeModel,
        precision: Precision,
        class: u32,
        settings: &SampleSettings,
        seed: u64,
    ) -> Result<Self> {
        settings.validate()?;
        if class as usize >= config.num_classes {
            return Err(crate::Error::Invalid(format!(
                "class {class} is out of range: the model has {} classes",
                config.num_classes
            )));
        }
        Ok(Self {
            sampler: TokenSampler::new(config, params, &[class], settings)?,
            config: config.clone(),
            params: params.clone(),
            model,
            precision,
            noise: Rng::new(seed),
            class,
            seed,
            settings: *settings,
            pacer: PreviewPacer::default(),
        })
    }

    /// Takes the next AR step (recorded; submitted at the next sync); false when it was the last.
    pub fn step(&mut self) -> Result<bool> {
        self.sampler.step(&mut self.noise)
    }

    /// AR steps taken.
    pub fn done(&self) -> usize {
        self.sampler.done()
    }

    /// AR steps in all.
    pub fn steps(&self) -> usize {
        self.sampler.steps()
    }

    /// The GPU the run is on (to await its work between steps).
    pub fn gpu(&self) -> Result<crate::Gpu> {
        self.params.gpu()
    }

    /// Side of the image in pixels.
    pub fn side(&self) -> usize {
        self.config.resolution
    }

    /// The image so far (the tokens sampled up to now decoded, the rest zero), RGB8.
    pub async fn preview(&self) -> Result<Vec<u8>> {
        let out = decode_tokens(&self.config, &self.params, &self.sampler.tokens_so_far()?).await?;
        let r = self.side();
        Ok(to_rgb8(&out.image, 1, r, r))
    }

    /// Decodes the finished image and writes its recipe; an error when steps remain.
    pub async fn finish(self) -> Result<FinishedImage> {
        if self.done() < self.steps() {
            return Err(crate::Error::Invalid(format!(
                "the run is at step {} of {}: not finished",
                self.done(),
                self.steps()
            )));
        }
        let gpu = self.params.gpu()?;
        let out = decode_tokens(&self.config, &self.params, &self.sampler.finish()?).await?;
        let side = self.config.resolution;
        let rgb = to_rgb8(&out.image, 1, side, side);
        let record = RunRecord {
            classes: &[self.class],
            batch: 1,
            seed: self.seed,
            settings: &self.settings,
            precision: self.precision,
            tokens: &out.tokens,
        };
        let recipe = Recipe::of_run(self.model, record, &gpu);
        let png = recipe.png_of(&rgb, side as u32, side as u32)?;
        Ok(FinishedImage {
            rgb,
            side,
            recipe,
            png,
        })
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
