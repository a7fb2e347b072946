//! The model the engine generates with: the embedded default, or files the page hands over as
//! Blobs (read tensor by tensor, never whole), described by the core's `ModelCard`; class search
//! and recipes read from PNGs.

use std::cell::RefCell;
use std::rc::Rc;

use bitdance::io::{header_size, WeightFile};
use bitdance::model::{LoadFile, ParamStore, Precision, TensorLoader, DEFAULT_MODEL_NAME};
use bitdance::model::{DEFAULT_MODEL_BYTES, DEFAULT_MODEL_LABEL};
use bitdance::studio::{FileHasher, FileRole, ModelCard, Recipe};
use wasm_bindgen::prelude::*;
use web_sys::Blob;

use crate::blob::{read_range, size};
use crate::js;

/// Bytes hashed per read when checking a file's SHA-256.
const HASH_CHUNK: u64 = 8 << 20;

/// A model on the GPU with what describes it.
pub struct Loaded {
    /// Its card (config, classes, recommended settings).
    pub card: ModelCard,
    /// Its parameters.
    pub params: ParamStore,
    /// SHA-256 of the model file and of a separate autoencoder file.
    pub sha256: String,
    /// SHA-256 of the separate autoencoder file, if one was used.
    pub vae_sha256: Option<String>,
    /// The precision its layer weights are held at.
    pub precision: Precision,
}

thread_local! {
    static LOADED: RefCell<Option<Rc<Loaded>>> = const { RefCell::new(None) };
    /// The precision models are loaded at (`set_precision`).
    static PRECISION: std::cell::Cell<Precision> = const { std::cell::Cell::new(Precision::F16) };
}

/// Sets the precision of the layer weights for the models loaded from now on: "f16" (half the
/// memory and weight traffic; the default) or "f32" (as trained).
#[wasm_bindgen]
pub fn set_precision(name: &str) -> Result<(), JsError> {
    let p = Precision::parse(name).map_err(js)?;
    PRECISION.with(|c| c.set(p));
    Ok(())
}

fn precision(gpu: &bitdance::Gpu) -> Precision {
    PRECISION.with(|c| c.get()).on(gpu)
}

/// The model loaded now, or an error saying none is.
pub fn loaded() -> Result<Rc<Loaded>, JsError> {
    LOADED
        .with(|m| m.borrow().clone())
        .ok_or_else(|| js("no model is loaded"))
}

fn replace(model: Loaded) -> String {
    let json = card_json(&model).to_string();
    // The previous model's buffers are freed once no run holds them.
    LOADED.with(|m| *m.borrow_mut() = Some(Rc::new(model)));
    json
}

fn card_json(model: &Loaded) -> serde_json::Value {
    let mut json = model.card.to_json();
    json["sha256"] = model.sha256.clone().into();
    json["vae_sha256"] = model.vae_sha256.clone().into();
    json["precision"] = format!("{:?}", model.precision).to_lowercase().into();
    json
}

/// Loads the embedded default model (unless it is the one loaded); returns its card as JSON.
#[wasm_bindgen]
pub async fn open_default_model() -> Result<String, JsError> {
    let gpu = crate::gpu().await.map_err(js)?;
    if let Ok(m) = loaded() {
        if m.card.name == DEFAULT_MODEL_NAME && m.precision == precision(&gpu) {
            return Ok(card_json(&m).to_string());
        }
    }
    let file = WeightFile::parse_named(DEFAULT_MODEL_LABEL, DEFAULT_MODEL_BYTES).map_err(js)?;
    let card = ModelCard::of_file(DEFAULT_MODEL_NAME, &file).map_err(js)?;
    let precision = precision(&gpu);
    let params = TensorLoader::generator(&gpu, &card.config, &file, None, precision)
        .and_then(TensorLoader::load_in_memory)
        .map_err(js)?;
    Ok(replace(Loaded {
        card,
        params,
        sha256: bitdance::model::default_model_sha256().to_string(),
        vae_sha256: None,
        precision,
    }))
}

/// The card of the loaded model as JSON (name, config, classes, recommended cfg/steps, memory,
/// SHA-256s).
#[wasm_bindgen]
pub fn model_card() -> Result<String, JsError> {
    Ok(card_json(loaded()?.as_ref()).to_string())
}

/// Parses the header of `blob` (called `name`).
pub(crate) async fn header_of(name: &str, blob: &Blob) -> Result<WeightFile<'static>, JsError> {
    let len = size(blob);
    let prefix = read_range(blob, 0, 8.min(len)).await?;
    let n = header_size(name, &prefix).map_err(js)? as u64;
    if n > len {
        return Err(js(format!(
            "{name}: truncated: the prefix declares a {n}-byte header but the file has {len} bytes"
        )));
    }
    let head = read_range(blob, 0, n).await?;
    WeightFile::from_header(name, &head, len).map_err(js)
}

/// What a `.safetensors` Blob (called `name`) holds, from its header: `"model"` (an AR model,
/// with or without its autoencoder) or `"autoencoder"` (only `vae.*`, `encoder.*`, `decoder.*`
/// tensors); an error naming the file when it is not safetensors.
#[wasm_bindgen]
pub async fn file_role(name: String, blob: Blob) -> Result<String, JsError> {
    let file = header_of(&name, &blob).await?;
    Ok(match bitdance::studio::file_role(&file) {
        FileRole::Autoencoder => "autoencoder",
        FileRole::Model => "model",
    }
    .into())
}

/// SHA-256 of `blob` as 64 hex digits, read in 8 MiB pieces; `progress(done, total)` is called
/// after each.
#[wasm_bindgen]
pub async fn hash_blob(blob: Blob, progress: js_sys::Function) -> Result<String, JsError> {
    let len = size(&blob);
    let mut hasher = FileHasher::new();
    let mut at = 0;
    while at < len {
        let end = (at + HASH_CHUNK).min(len);
        hasher.update(&read_range(&blob, at, end).await?);
        at = end;
        let _ = progress.call2(&JsValue::NULL, &(at as f64).into(), &(len as f64).into());
    }
    Ok(hasher.finish())
}

/// Loads a model from `model` (a `.safetensors` Blob called `name`, SHA-256 `sha256`) and an
/// optional separate autoencoder `vae` (`vae_sha256`), tensor by tensor: every check first
/// (config, names, shapes, memory, binding limits), then each tensor read from its byte range
/// and uploaded; `progress(done, total)` in bytes after each. Returns the card as JSON.
#[wasm_bindgen]
pub async fn open_model(
    name: String,
    model: Blob,
    sha256: String,
    vae: Option<Blob>,
    vae_sha256: Option<String>,
    progress: js_sys::Function,
) -> Result<String, JsError> {
    let gpu = crate::gpu().await.map_err(js)?;
    // The model in use leaves the GPU first: two large models need not fit at once.
    LOADED.with(|m| *m.borrow_mut() = None);
    let file = header_of(&name, &model).await?;
    let vae_file = match &vae {
        Some(blob) => Some(header_of(&format!("{name} (autoencoder)"), blob).await?),
        None => None,
    };
    let card = ModelCard::of_file(&name, &file).map_err(js)?;
    let precision = precision(&gpu);
    let mut loader =
        TensorLoader::generator(&gpu, &card.config, &file, vae_file.as_ref(), precision)
            .map_err(js)?;
    read_tensors(&mut loader, &model, vae.as_ref(), &progress).await?;
    let params = loader.finish().map_err(js)?;
    Ok(replace(Loaded {
        card,
        params,
        sha256,
        vae_sha256,
        precision,
    }))
}

/// Reads and uploads every tensor `loader` plans, from the Blobs `model` and `vae` (for its
/// separate autoencoder's tensors) a range at a time; `progress(done, total)` in bytes after
/// each.
pub(crate) async fn read_tensors(
    loader: &mut TensorLoader<'_>,
    model: &Blob,
    vae: Option<&Blob>,
    progress: &js_sys::Function,
) -> Result<(), JsError> {
    while let Some(read) = loader.next_read().cloned() {
        let blob = match (read.file, vae) {
            (LoadFile::Vae, Some(v)) => v,
            _ => model,
        };
        let bytes = read_range(blob, read.range.start, read.range.end).await?;
        loader.upload(&bytes).map_err(js)?;
        let (done, total) = loader.progress();
        let _ = progress.call2(
            &JsValue::NULL,
            &(done as f64).into(),
            &(total as f64).into(),
        );
    }
    Ok(())
}

/// The loaded model's classes matching `query` (index, name or synonym, case-insensitive),
/// best first, at most `limit`, as JSON `[{index, name, label}]`.
#[wasm_bindgen]
pub fn search_classes(query: &str, limit: u32) -> Result<String, JsError> {
    let m = loaded()?;
    let hits: Vec<serde_json::Value> = m
        .card
        .classes
        .search(query, limit as usize)
        .into_iter()
        .map(|h| {
            serde_json::json!({
                "index": h.index,
                "name": h.name,
                "label": m.card.classes.label(h.index),
            })
        })
        .collect();
    Ok(serde_json::Value::from(hits).to_string())
}

/// The recipe in a PNG's `bitdance-recipe` chunk as JSON (`source` names the file in errors).
#[wasm_bindgen]
pub fn read_recipe(source: &str, png: &[u8]) -> Result<String, JsError> {
    Ok(Recipe::from_png(source, png).map_err(js)?.to_json())
}
