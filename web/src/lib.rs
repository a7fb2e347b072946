//! BitDance in the browser: the engine the page's Web Worker runs (web/worker.js). It opens
//! WebGPU through the core crate, loads models (the embedded default, or files read from Blobs
//! tensor by tensor), generates a step at a time with previews, reads recipes from PNGs, and
//! fine-tunes with the core's trainer, and runs the conformance checks. Results cross the boundary as JSON strings or byte arrays.

mod blob;
mod finetune;
mod generate;
mod models;
mod report;

pub use finetune::{
    finetune_add_image, finetune_checkpoint, finetune_estimate, finetune_export,
    finetune_new_dataset, finetune_resume, finetune_samples, finetune_start, finetune_step,
    finetune_stop,
};
pub use generate::{
    generation_finish, generation_preview, generation_step, start_generation, stop_generation,
};
pub use models::{
    hash_blob, model_card, open_default_model, open_model, read_recipe, search_classes,
};

use std::cell::{Cell, RefCell};

use bitdance::conformance;
use bitdance::{Gpu, GpuOptions};
use wasm_bindgen::prelude::*;

thread_local! {
    static GPU: RefCell<Option<Gpu>> = const { RefCell::new(None) };
    /// The binding cap asked for before the GPU opened (`set_max_binding_kib`).
    static MAX_BINDING: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Caps the storage binding size the GPU is opened with (KiB), to check how a model would be
/// refused on a smaller device; takes effect if called before the first GPU use.
#[wasm_bindgen]
pub fn set_max_binding_kib(kib: u32) {
    MAX_BINDING.with(|m| m.set(Some((kib as u64) << 10)));
}

/// The engine's GPU, opened on first use (with the adapter's own limits) and shared by every
/// later call.
pub async fn gpu() -> bitdance::Result<Gpu> {
    console_error_panic_hook::set_once();
    if let Some(gpu) = GPU.with(|g| g.borrow().clone()) {
        return Ok(gpu);
    }
    let options = GpuOptions {
        max_binding_bytes: MAX_BINDING.with(Cell::get),
        ..GpuOptions::default()
    };
    let gpu = Gpu::new(&options).await?;
    GPU.with(|g| *g.borrow_mut() = Some(gpu.clone()));
    Ok(gpu)
}

/// A core error as a JavaScript `Error` with the same message.
pub(crate) fn js(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// Destroys the GPU device as a driver reset would, so the page's recovery can be tested: every
/// later call fails with "the GPU device was lost".
#[wasm_bindgen]
pub async fn lose_device() -> Result<(), JsError> {
    gpu().await.map_err(js)?.device().destroy();
    Ok(())
}

/// Names of the conformance families, in the order they run.
#[wasm_bindgen]
pub fn conformance_families() -> Vec<String> {
    conformance::families()
        .iter()
        .map(|f| f.name.to_string())
        .collect()
}

/// Adapter name, backend, type, driver, key limits and features, as a JSON object.
#[wasm_bindgen]
pub async fn adapter_info() -> Result<String, JsError> {
    let gpu = gpu().await.map_err(js)?;
    Ok(report::adapter(&gpu).to_string())
}

/// GPU memory now held and at peak (bytes, in use plus pooled), the largest binding, and the
/// wasm heap's size (it only grows, so it is the peak) as JSON
/// `{held, peak, largest_binding, wasm_heap}`.
#[wasm_bindgen]
pub async fn memory_stats() -> Result<String, JsError> {
    let gpu = gpu().await.map_err(js)?;
    let s = gpu.stats();
    Ok(serde_json::json!({
        "held": s.live_bytes + s.pooled_bytes,
        "peak": s.peak_bytes,
        "largest_binding": s.largest_binding_bytes,
        "wasm_heap": wasm_heap_bytes(),
    })
    .to_string())
}

/// Bytes of the wasm linear memory (it never shrinks: the peak of the heap).
fn wasm_heap_bytes() -> f64 {
    let memory: js_sys::WebAssembly::Memory = wasm_bindgen::memory().unchecked_into();
    memory
        .buffer()
        .unchecked_into::<js_sys::ArrayBuffer>()
        .byte_length() as f64
}

/// Runs one conformance family (all when `family` is omitted) and returns JSON
/// `{adapter, rows: [{family, op, shapes, rel_error, tolerance, error, skipped, passed}], passed,
/// failed, skipped}`.
/// A family that ran no check yields one failed row.
#[wasm_bindgen]
pub async fn run_conformance(family: Option<String>) -> Result<String, JsError> {
    let gpu = gpu().await.map_err(js)?;
    let names = match family {
        Some(name) if conformance_families().contains(&name) => vec![name],
        Some(name) => return Err(js(format!("unknown conformance family '{name}'"))),
        None => conformance_families(),
    };
    let mut table = Vec::new();
    for name in names {
        let rows = conformance::run(&gpu, &[name.as_str()]).await;
        table.push((name, rows));
    }
    Ok(report::conformance(&gpu, &table).to_string())
}
