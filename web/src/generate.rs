//! Generation a step at a time for the worker, over the core's `ImageRun`: one AR step per
//! call (awaiting the GPU, so the worker takes messages such as Stop between steps), a preview
//! when the core's pacer says one is due, and the finished image as a PNG carrying its recipe.

use std::cell::RefCell;

use bitdance::model::{CfgSchedule, SampleSettings};
use bitdance::studio::{ImageRun, RecipeModel};
use wasm_bindgen::prelude::*;

use crate::js;
use crate::models::loaded;

thread_local! {
    static RUN: RefCell<Option<ImageRun>> = const { RefCell::new(None) };
}

fn take_run() -> Result<ImageRun, JsError> {
    RUN.with(|r| r.borrow_mut().take())
        .ok_or_else(|| js("no generation in progress (it was stopped, or replaced by a new one)"))
}

/// Back in its slot, unless a new start replaced it while it was out.
fn put_back(run: ImageRun) {
    RUN.with(|r| {
        r.borrow_mut().get_or_insert(run);
    });
}

fn now_secs() -> f64 {
    js_sys::Date::now() / 1000.0
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
    let recipe_model = RecipeModel {
        name: model.card.name.clone(),
        sha256: model.sha256.clone(),
        vae_sha256: model.vae_sha256.clone(),
        config: model.card.config_name().to_string(),
    };
    let run = ImageRun::new(
        &model.card.config,
        &model.params,
        recipe_model,
        model.precision,
        &[class],
        1,
        &settings,
        seed,
    )
    .map_err(js)?;
    let steps = run.steps() as u32;
    RUN.with(|r| *r.borrow_mut() = Some(run));
    Ok(steps)
}

/// Takes the next AR step and waits for the GPU to finish it; returns `[done, preview_due]`:
/// the steps taken, and whether a preview is worth decoding now (the core's `PreviewPacer`).
#[wasm_bindgen]
pub async fn generation_step() -> Result<Vec<u32>, JsError> {
    let mut run = take_run()?;
    let gpu = run.gpu().map_err(js)?;
    let t0 = now_secs();
    run.step().map_err(js)?;
    let done = run.done() as u32;
    put_back(run);
    gpu.finished().await.map_err(js)?;
    let secs = now_secs() - t0;
    let due = RUN.with(|r| match r.borrow_mut().as_mut() {
        Some(run) => run.done() < run.steps() && run.pacer.stepped(secs, run.steps()),
        None => false,
    });
    Ok(vec![done, due as u32])
}

/// RGBA bytes of RGB ones.
fn rgba(rgb: &[u8]) -> Vec<u8> {
    rgb.chunks(3)
        .flat_map(|p| [p[0], p[1], p[2], 255])
        .collect()
}

/// The image so far: the tokens sampled up to now decoded, the rest zero (RGBA).
#[wasm_bindgen]
pub async fn generation_preview() -> Result<Vec<u8>, JsError> {
    let run = take_run()?;
    let t0 = now_secs();
    let out = run.preview().await;
    let mut run = run;
    run.pacer.decoded(now_secs() - t0);
    put_back(run);
    Ok(rgba(&out.map_err(js)?.into_raw()))
}

/// Ends the finished run and decodes its image: returns `{rgba: Uint8Array, png: Uint8Array,
/// recipe: string}`, the PNG carrying the recipe (JSON, with the token hash) in its text chunk.
#[wasm_bindgen]
pub async fn generation_finish() -> Result<JsValue, JsError> {
    let run = take_run()?;
    if run.done() < run.steps() {
        let (done, steps) = (run.done(), run.steps());
        put_back(run);
        return Err(js(format!(
            "the run is at step {done} of {steps}: not finished"
        )));
    }
    let image = run
        .finish()
        .await
        .map_err(js)?
        .into_iter()
        .next()
        .ok_or_else(|| js("the run finished without an image"))?;
    let result = js_sys::Object::new();
    let set = |k: &str, v: JsValue| js_sys::Reflect::set(&result, &k.into(), &v);
    set(
        "rgba",
        js_sys::Uint8Array::from(&rgba(&image.rgb)[..]).into(),
    )
    .and_then(|_| set("png", js_sys::Uint8Array::from(&image.png[..]).into()))
    .and_then(|_| set("recipe", image.recipe.to_json().into()))
    .map_err(|e| js(format!("building the result: {e:?}")))?;
    Ok(result.into())
}

/// Ends the run in progress (Stop); its buffers go back to the pool.
#[wasm_bindgen]
pub fn stop_generation() {
    RUN.with(|r| *r.borrow_mut() = None);
}
