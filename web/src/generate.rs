//! Generation a step at a time for the worker: start, one AR step per call (awaiting the GPU,
//! so the worker takes messages such as Stop between steps), a preview of the tokens so far
//! when the worker asks, and the finished image as a PNG carrying its recipe.

use std::cell::RefCell;
use std::rc::Rc;

use bitdance::model::{decode_tokens, to_rgb8, CfgSchedule, SampleSettings, TokenSampler};
use bitdance::rng::Rng;
use bitdance::studio::{Recipe, RecipeModel, RunRecord};
use wasm_bindgen::prelude::*;

use crate::js;
use crate::models::{loaded, Loaded};

/// A generation in progress: its model, sampler and noise, and what its recipe records.
struct Run {
    model: Rc<Loaded>,
    sampler: TokenSampler,
    noise: Rng,
    class: u32,
    seed: u64,
    settings: SampleSettings,
}

thread_local! {
    static RUN: RefCell<Option<Run>> = const { RefCell::new(None) };
}

fn take_run() -> Result<Run, JsError> {
    RUN.with(|r| r.borrow_mut().take())
        .ok_or_else(|| js("no generation in progress (it was stopped, or replaced by a new one)"))
}

/// Back in its slot, unless a new start replaced it while it was out.
fn put_back(run: Run) {
    RUN.with(|r| {
        r.borrow_mut().get_or_insert(run);
    });
}

/// Starts sampling one image of `class` with the loaded model (head `steps`, guidance `cfg`,
/// `schedule` "linear" or "constant", `seed`), replacing a run in progress; returns its number
/// of AR steps.
#[wasm_bindgen]
pub fn start_generation(
    class: u32,
    steps: u32,
    cfg: f32,
    schedule: &str,
    seed: u64,
) -> Result<u32, JsError> {
    let model = loaded()?;
    let schedule = match schedule {
        "linear" => CfgSchedule::Linear,
        "constant" => CfgSchedule::Constant,
        other => {
            return Err(js(format!(
                "unknown cfg schedule '{other}' (linear or constant)"
            )))
        }
    };
    let settings = SampleSettings {
        cfg,
        schedule,
        head_steps: steps as usize,
    };
    settings.validate().map_err(js)?;
    let classes = model.card.classes.len();
    if class as usize >= classes {
        return Err(js(format!(
            "class {class} is out of range: the model has {classes} classes"
        )));
    }
    let sampler =
        TokenSampler::new(&model.card.config, &model.params, &[class], &settings).map_err(js)?;
    let steps = sampler.steps() as u32;
    let run = Run {
        model,
        sampler,
        noise: Rng::new(seed),
        class,
        seed,
        settings,
    };
    RUN.with(|r| *r.borrow_mut() = Some(run));
    Ok(steps)
}

/// Takes the next AR step and waits for the GPU to finish it; returns the steps done.
#[wasm_bindgen]
pub async fn generation_step() -> Result<u32, JsError> {
    let mut run = take_run()?;
    let gpu = run.model.params.gpu().map_err(js)?;
    run.sampler.step(&mut run.noise).map_err(js)?;
    let done = run.sampler.done() as u32;
    put_back(run);
    gpu.finished().await.map_err(js)?;
    Ok(done)
}

/// RGBA bytes of a square image of the model's resolution.
fn rgba(rgb: &[u8]) -> Vec<u8> {
    rgb.chunks(3)
        .flat_map(|p| [p[0], p[1], p[2], 255])
        .collect()
}

/// The image so far: the tokens sampled up to now decoded, the rest zero (RGBA).
#[wasm_bindgen]
pub async fn generation_preview() -> Result<Vec<u8>, JsError> {
    let run = take_run()?;
    let tokens = run.sampler.tokens_so_far().map_err(js)?;
    let model = run.model.clone();
    put_back(run);
    let out = decode_tokens(&model.card.config, &model.params, &tokens)
        .await
        .map_err(js)?;
    let r = model.card.config.resolution;
    Ok(rgba(&to_rgb8(&out.image, 1, r, r)))
}

/// Ends the finished run and decodes its image: returns `{rgba: Uint8Array, png: Uint8Array,
/// recipe: string}`, the PNG carrying the recipe (JSON, with the token hash) in its text chunk.
#[wasm_bindgen]
pub async fn generation_finish() -> Result<JsValue, JsError> {
    let run = take_run()?;
    if run.sampler.done() < run.sampler.steps() {
        let (done, steps) = (run.sampler.done(), run.sampler.steps());
        put_back(run);
        return Err(js(format!(
            "the run is at step {done} of {steps}: not finished"
        )));
    }
    let Run {
        model,
        sampler,
        class,
        seed,
        settings,
        ..
    } = run;
    let tokens = sampler.finish().map_err(js)?;
    let gpu = model.params.gpu().map_err(js)?;
    let out = decode_tokens(&model.card.config, &model.params, &tokens)
        .await
        .map_err(js)?;
    let r = model.card.config.resolution;
    let rgb = to_rgb8(&out.image, 1, r, r);
    let recipe_model = RecipeModel {
        name: model.card.name.clone(),
        sha256: model.sha256.clone(),
        vae_sha256: model.vae_sha256.clone(),
        config: model.card.config_name().to_string(),
    };
    let record = RunRecord {
        classes: &[class],
        batch: 1,
        seed,
        settings: &settings,
        precision: model.precision,
        tokens: &out.tokens,
    };
    let recipe = Recipe::of_run(recipe_model, record, &gpu);
    let png = recipe.png_of(&rgb, r as u32, r as u32).map_err(js)?;
    let result = js_sys::Object::new();
    let set = |k: &str, v: JsValue| js_sys::Reflect::set(&result, &k.into(), &v);
    set("rgba", js_sys::Uint8Array::from(&rgba(&rgb)[..]).into())
        .and_then(|_| set("png", js_sys::Uint8Array::from(&png[..]).into()))
        .and_then(|_| set("recipe", recipe.to_json().into()))
        .map_err(|e| js(format!("building the result: {e:?}")))?;
    Ok(result.into())
}

/// Ends the run in progress (Stop); its buffers go back to the pool.
#[wasm_bindgen]
pub fn stop_generation() {
    RUN.with(|r| *r.borrow_mut() = None);
}
