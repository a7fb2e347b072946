//! Image generation in the browser with the embedded default model.

use std::cell::RefCell;

use bitdance::io::WeightFile;
use bitdance::model::{
    generate_images, load_generator, recommended_settings, stored_class_names, stored_config,
    to_rgb8, CfgSchedule, ModelConfig, ParamStore, SampleSettings, DEFAULT_MODEL_BYTES,
    DEFAULT_MODEL_LABEL, DEFAULT_MODEL_NAME,
};
use bitdance::rng::Rng;
use wasm_bindgen::prelude::*;

thread_local! {
    static LOADED: RefCell<Option<(ModelConfig, ParamStore, Vec<String>)>> =
        const { RefCell::new(None) };
}

fn js(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// Loads the default model onto the page's GPU (once); returns its class names as JSON.
#[wasm_bindgen]
pub async fn load_default_model() -> Result<String, JsError> {
    if let Some(names) = LOADED.with(|m| m.borrow().as_ref().map(|(_, _, n)| n.clone())) {
        return serde_json::to_string(&names).map_err(js);
    }
    let gpu = crate::gpu().await.map_err(js)?;
    let file = WeightFile::parse_named(DEFAULT_MODEL_LABEL, DEFAULT_MODEL_BYTES).map_err(js)?;
    let config = stored_config(&file)
        .map_err(js)?
        .ok_or_else(|| js("the default model has no config"))?;
    let names = stored_class_names(&file)
        .unwrap_or_else(|| (0..config.num_classes).map(|k| k.to_string()).collect());
    let params =
        load_generator(&gpu, &config, &file, None, bitdance::model::Precision::F16).map_err(js)?;
    let json = serde_json::to_string(&names).map_err(js)?;
    LOADED.with(|m| *m.borrow_mut() = Some((config, params, names)));
    Ok(json)
}

/// The default model's recommended sampling settings as JSON: `{"cfg": 3.0, "steps": 50}`.
#[wasm_bindgen]
pub fn recommended_sampling() -> String {
    let s = recommended_settings(Some(DEFAULT_MODEL_NAME));
    serde_json::json!({"cfg": s.cfg, "steps": s.head_steps}).to_string()
}

/// Samples one image of `class` (head `steps`, guidance `cfg`, `seed`) with the default model;
/// returns RGBA bytes of a square image whose side is the model's resolution.
#[wasm_bindgen]
pub async fn generate(class: u32, steps: u32, cfg: f32, seed: u32) -> Result<Vec<u8>, JsError> {
    load_default_model().await?;
    let (config, params) = LOADED
        .with(|m| m.borrow().as_ref().map(|(c, p, _)| (c.clone(), p.clone())))
        .ok_or_else(|| js("the model is not loaded"))?;
    let settings = SampleSettings {
        cfg,
        schedule: CfgSchedule::Linear,
        head_steps: steps.max(1) as usize,
    };
    let out = generate_images(
        &config,
        &params,
        &[class],
        &settings,
        &mut Rng::new(seed as u64),
        &mut |_, _| {},
    )
    .await
    .map_err(js)?;
    let r = config.resolution;
    let rgb = to_rgb8(&out.image, 1, r, r);
    Ok(rgb
        .chunks(3)
        .flat_map(|p| [p[0], p[1], p[2], 255])
        .collect())
}
