//! Generation a step at a time for the worker, over the core's `ImageRun`: one AR step per
//! call (awaiting the GPU, so the worker takes messages such as Stop between steps), a preview
//! when the core's pacer says one is due, and the finished images as PNGs carrying their recipe.

use std::cell::RefCell;

use bitdance::model::{CfgSchedule, SampleSettings};
use bitdance::studio::{tile_grid, ImageRun, RecipeModel, SampleRequest};
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

/// Starts sampling one image per class of `classes` with the loaded model, `batch` of them
/// together per pass (a recipe's images, drawn as `bitdance generate -c ... --batch` draws
/// them), head `steps`, guidance `cfg`, `schedule` "linear" or "constant", `seed`; replaces a
/// run in progress; returns its number of AR steps.
#[wasm_bindgen]
pub fn start_generation(
    classes: Vec<u32>,
    batch: u32,
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
    let recipe_model = RecipeModel::of(&model.card, &model.sha256, model.vae_sha256.as_deref());
    let request = SampleRequest {
        classes,
        batch: batch as usize,
        settings,
        seed,
    };
    let run = ImageRun::new(
        &model.card.config,
        &model.params,
        recipe_model,
        model.precision,
        &request,
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

/// The images of the pass being sampled so far (the tokens sampled up to now decoded, the
/// rest zero), side by side: `{rgba: Uint8Array, width}`.
#[wasm_bindgen]
pub async fn generation_preview() -> Result<JsValue, JsError> {
    let run = take_run()?;
    let t0 = now_secs();
    let out = run.preview().await;
    let mut run = run;
    run.pacer.decoded(now_secs() - t0);
    put_back(run);
    let image = out.map_err(js)?;
    let width = image.width();
    picture(&rgba(&image.into_raw()), width)
}

/// `{rgba: Uint8Array, width}`.
fn picture(rgba: &[u8], width: u32) -> Result<JsValue, JsError> {
    let result = js_sys::Object::new();
    let set = |k: &str, v: JsValue| js_sys::Reflect::set(&result, &k.into(), &v);
    set("rgba", js_sys::Uint8Array::from(rgba).into())
        .and_then(|_| set("width", width.into()))
        .map_err(|e| js(format!("building the picture: {e:?}")))?;
    Ok(result.into())
}

/// Ends the finished run and decodes its images: returns `{images, grid}`, `images` holding
/// `{index, rgba, png, recipe}` per image (the PNG carrying the recipe, JSON with the run's
/// token hash, in its text chunk) and `grid` the images side by side (`{rgba, width}`).
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
    let finished = run.finish().await.map_err(js)?;
    let side = finished
        .first()
        .map(|image| image.side)
        .ok_or_else(|| js("the run finished without an image"))?;
    let images = js_sys::Array::new();
    let mut all = Vec::new();
    for image in &finished {
        let item = js_sys::Object::new();
        let set = |k: &str, v: JsValue| js_sys::Reflect::set(&item, &k.into(), &v);
        set("index", (image.index as u32).into())
            .and_then(|_| {
                set(
                    "rgba",
                    js_sys::Uint8Array::from(&rgba(&image.rgb)[..]).into(),
                )
            })
            .and_then(|_| set("png", js_sys::Uint8Array::from(&image.png[..]).into()))
            .and_then(|_| set("recipe", image.recipe.to_json().into()))
            .map_err(|e| js(format!("building the result: {e:?}")))?;
        images.push(&item);
        all.extend_from_slice(&image.rgb);
    }
    let grid = tile_grid(&all, finished.len(), side);
    let width = grid.width();
    let result = js_sys::Object::new();
    js_sys::Reflect::set(&result, &"images".into(), &images)
        .and_then(|_| {
            let grid = picture(&rgba(&grid.into_raw()), width).map_err(JsValue::from)?;
            js_sys::Reflect::set(&result, &"grid".into(), &grid)
        })
        .map_err(|e| js(format!("building the result: {e:?}")))?;
    Ok(result.into())
}

/// Ends the run in progress (Stop); its buffers go back to the pool.
#[wasm_bindgen]
pub fn stop_generation() {
    RUN.with(|r| *r.borrow_mut() = None);
}
