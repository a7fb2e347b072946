//! Image generation in the browser with the embedded default model.

use std::cell::RefCell;

use bitdance::io::WeightFile;
use bitdance::model::{
    decode_tokens, load_generator, recommended_settings, stored_class_names, stored_config,
    to_rgb8, CfgSchedule, ModelConfig, ParamStore, Precision, SampleSettings, TokenSampler,
    DEFAULT_MODEL_BYTES, DEFAULT_MODEL_LABEL, DEFAULT_MODEL_NAME,
};
use bitdance::rng::Rng;
use bitdance::studio::{sha256_hex, Recipe, RecipeModel, RunRecord};
use wasm_bindgen::prelude::*;

/// The default model on the page's GPU: its config, weights and class names. Loaded once and
/// kept for the page's life (leaked), so a run in progress can borrow it across awaits.
type Loaded = (ModelConfig, ParamStore, Vec<String>);

/// A generation in progress: its sampler and noise, advanced by `generation_step`, and what
/// its recipe records.
struct Run {
    sampler: TokenSampler<'static>,
    noise: Rng,
    class: u32,
    seed: u64,
    settings: SampleSettings,
}

thread_local! {
    static LOADED: RefCell<Option<&'static Loaded>> = const { RefCell::new(None) };
    static RUN: RefCell<Option<Run>> = const { RefCell::new(None) };
    /// The last finished image as a PNG carrying its recipe.
    static LAST_PNG: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// AR steps the last `generation_step` had taken.
    static DONE: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

fn loaded() -> Result<&'static Loaded, JsError> {
    LOADED
        .with(|m| *m.borrow())
        .ok_or_else(|| js("the model is not loaded"))
}

fn js(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// Loads the default model onto the page's GPU (once); returns its class names as JSON.
#[wasm_bindgen]
pub async fn load_default_model() -> Result<String, JsError> {
    if let Ok((_, _, names)) = loaded() {
        return serde_json::to_string(names).map_err(js);
    }
    let gpu = crate::gpu().await.map_err(js)?;
    let file = WeightFile::parse_named(DEFAULT_MODEL_LABEL, DEFAULT_MODEL_BYTES).map_err(js)?;
    let config = stored_config(&file)
        .map_err(js)?
        .ok_or_else(|| js("the default model has no config"))?;
    let names = stored_class_names(&file)
        .unwrap_or_else(|| (0..config.num_classes).map(|k| k.to_string()).collect());
    let params = load_generator(&gpu, &config, &file, None, Precision::F16).map_err(js)?;
    let json = serde_json::to_string(&names).map_err(js)?;
    let model: &'static Loaded = Box::leak(Box::new((config, params, names)));
    LOADED.with(|m| *m.borrow_mut() = Some(model));
    Ok(json)
}

/// The default model's recommended sampling settings as JSON: `{"cfg": 3.0, "steps": 50}`.
#[wasm_bindgen]
pub fn recommended_sampling() -> String {
    let s = recommended_settings(Some(DEFAULT_MODEL_NAME));
    serde_json::json!({"cfg": s.cfg, "steps": s.head_steps}).to_string()
}

/// Starts sampling one image of `class` (head `steps`, guidance `cfg`, `seed`) with the
/// default model, replacing a run in progress; returns its number of AR steps.
#[wasm_bindgen]
pub async fn start_generation(class: u32, steps: u32, cfg: f32, seed: u32) -> Result<u32, JsError> {
    load_default_model().await?;
    let (config, params, _) = loaded()?;
    let settings = SampleSettings {
        cfg,
        schedule: CfgSchedule::Linear,
        head_steps: steps.max(1) as usize,
    };
    let sampler = TokenSampler::new(config, params, &[class], &settings).map_err(js)?;
    let steps = sampler.steps() as u32;
    let seed = seed as u64;
    let noise = Rng::new(seed);
    let run = Run {
        sampler,
        noise,
        class,
        seed,
        settings,
    };
    RUN.with(|r| *r.borrow_mut() = Some(run));
    Ok(steps)
}

/// Takes the next AR step of the run and returns the image so far (RGBA, a square of the
/// model's resolution: the tokens sampled up to now decoded, the rest zero; the finished image
/// after the last step). `generation_done` then says how many steps are taken.
#[wasm_bindgen]
pub async fn generation_step() -> Result<Vec<u8>, JsError> {
    // The run leaves the slot while this step awaits its readback; a new start replaces it.
    let mut run = RUN
        .with(|r| r.borrow_mut().take())
        .ok_or_else(|| js("no generation in progress"))?;
    let (config, params, _) = loaded()?;
    run.sampler.step(&mut run.noise).map_err(js)?;
    let tokens = run.sampler.tokens_so_far().map_err(js)?;
    let (done, finished) = (
        run.sampler.done(),
        run.sampler.done() == run.sampler.steps(),
    );
    let (class, seed, settings) = (run.class, run.seed, run.settings);
    // Back in its slot before the await, unless a new start replaced it or it is finished (then
    // it ends here, and the pool frees its buffers).
    if !finished {
        RUN.with(|r| {
            r.borrow_mut().get_or_insert(run);
        });
    }
    let out = decode_tokens(config, params, &tokens).await.map_err(js)?;
    DONE.with(|d| d.set(done as u32));
    let r = config.resolution;
    let rgb = to_rgb8(&out.image, 1, r, r);
    if finished {
        let gpu = crate::gpu().await.map_err(js)?;
        let model = RecipeModel {
            name: DEFAULT_MODEL_NAME.into(),
            sha256: sha256_hex(DEFAULT_MODEL_BYTES),
            vae_sha256: None,
            config: DEFAULT_MODEL_NAME.into(),
        };
        let run = RunRecord {
            classes: &[class],
            batch: 1,
            seed,
            settings: &settings,
            precision: Precision::F16.on(&gpu),
            tokens: &out.tokens,
        };
        let recipe = Recipe::of_run(model, run, &gpu);
        let png = recipe.png_of(&rgb, r as u32, r as u32).map_err(js)?;
        LAST_PNG.with(|p| *p.borrow_mut() = png);
    }
    Ok(rgb
        .chunks(3)
        .flat_map(|p| [p[0], p[1], p[2], 255])
        .collect())
}

/// The last finished image as PNG bytes with its recipe (`bitdance generate --recipe` and the
/// desktop app re-run it); empty before the first one.
#[wasm_bindgen]
pub fn generation_png() -> Vec<u8> {
    LAST_PNG.with(|p| p.borrow().clone())
}

/// AR steps the last `generation_step` had taken.
#[wasm_bindgen]
pub fn generation_done() -> u32 {
    DONE.with(|d| d.get())
}

/// Ends the run in progress (Stop).
#[wasm_bindgen]
pub fn stop_generation() {
    RUN.with(|r| *r.borrow_mut() = None);
}
