//! BitDance in the browser: opens WebGPU through the core crate, generates images with the
//! embedded default model a step at a time (the page draws each step's preview), and exposes
//! the conformance checks to JavaScript. Results cross the boundary as JSON strings (see
//! `report`).

mod generate;
mod report;

pub use generate::{
    generation_done, generation_png, generation_step, load_default_model, start_generation,
    stop_generation,
};

use std::cell::RefCell;

use bitdance::conformance;
use bitdance::{Gpu, GpuOptions};
use wasm_bindgen::prelude::*;

thread_local! {
    static GPU: RefCell<Option<Gpu>> = const { RefCell::new(None) };
}

/// The page's GPU, opened on first use and shared by every later call.
pub async fn gpu() -> bitdance::Result<Gpu> {
    console_error_panic_hook::set_once();
    if let Some(gpu) = GPU.with(|g| g.borrow().clone()) {
        return Ok(gpu);
    }
    let gpu = Gpu::new(&GpuOptions::default()).await?;
    GPU.with(|g| *g.borrow_mut() = Some(gpu.clone()));
    Ok(gpu)
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
    let gpu = gpu().await.map_err(|e| JsError::new(&e.to_string()))?;
    Ok(report::adapter(&gpu).to_string())
}

/// Runs one conformance family (all when `family` is omitted) and returns JSON
/// `{adapter, rows: [{family, op, shapes, rel_error, tolerance, error, skipped, passed}], passed,
/// failed, skipped}`.
/// A family that ran no check yields one failed row.
#[wasm_bindgen]
pub async fn run_conformance(family: Option<String>) -> Result<String, JsError> {
    let gpu = gpu().await.map_err(|e| JsError::new(&e.to_string()))?;
    let names = match family {
        Some(name) if conformance_families().contains(&name) => vec![name],
        Some(name) => {
            return Err(JsError::new(&format!(
                "unknown conformance family '{name}'"
            )))
        }
        None => conformance_families(),
    };
    let mut table = Vec::new();
    for name in names {
        let rows = conformance::run(&gpu, &[name.as_str()]).await;
        table.push((name, rows));
    }
    Ok(report::conformance(&gpu, &table).to_string())
}
