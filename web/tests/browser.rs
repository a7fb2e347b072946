//! Conformance of every kernel family on the browser's WebGPU adapter (headless Chromium in CI).
//! Fails, never skips, when the browser exposes no WebGPU adapter.
#![cfg(target_arch = "wasm32")]

use bitdance::conformance::{self, CheckResult};
use wasm_bindgen_test::{console_log, wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// The families below, one test each; `every_family_is_tested` keeps the list complete.
const FAMILIES: &[&str] = &[
    "elementwise",
    "matmul",
    "norm",
    "modulate",
    "rope",
    "attention",
    "data",
    "loss",
    "lfq",
    "optim",
    "flow",
    "conv",
    "group_norm",
];

async fn assert_family(name: &str) {
    let gpu = bitdance_web::gpu()
        .await
        .unwrap_or_else(|e| panic!("no WebGPU adapter in this browser: {e}"));
    let adapter = gpu.adapter();
    assert_eq!(
        adapter.backend, "BrowserWebGpu",
        "expected the browser's WebGPU, got {adapter:?}"
    );
    let rows = conformance::run(&gpu, &[name]).await;
    console_log!("{name} on {} ({}):", adapter.name, adapter.backend);
    for r in &rows {
        console_log!(
            "{:<28} {:<32} {:>10.2e} {}",
            r.op,
            r.shapes,
            r.rel_error,
            r.status()
        );
    }
    assert!(!rows.is_empty(), "family {name} ran no check");
    let failed: Vec<&CheckResult> = rows.iter().filter(|r| !r.passed()).collect();
    assert!(
        failed.is_empty(),
        "{name}: {} of {} checks failed: {failed:#?}",
        failed.len(),
        rows.len()
    );
}

#[wasm_bindgen_test]
fn every_family_is_tested() {
    assert_eq!(bitdance_web::conformance_families(), FAMILIES);
}

#[wasm_bindgen_test]
async fn elementwise() {
    assert_family("elementwise").await;
}

#[wasm_bindgen_test]
async fn matmul() {
    assert_family("matmul").await;
}

#[wasm_bindgen_test]
async fn norm() {
    assert_family("norm").await;
}

#[wasm_bindgen_test]
async fn modulate() {
    assert_family("modulate").await;
}

#[wasm_bindgen_test]
async fn rope() {
    assert_family("rope").await;
}

#[wasm_bindgen_test]
async fn attention() {
    assert_family("attention").await;
}

#[wasm_bindgen_test]
async fn data() {
    assert_family("data").await;
}

#[wasm_bindgen_test]
async fn loss() {
    assert_family("loss").await;
}

#[wasm_bindgen_test]
async fn lfq() {
    assert_family("lfq").await;
}

#[wasm_bindgen_test]
async fn optim() {
    assert_family("optim").await;
}

#[wasm_bindgen_test]
async fn flow() {
    assert_family("flow").await;
}

#[wasm_bindgen_test]
async fn conv() {
    assert_family("conv").await;
}

#[wasm_bindgen_test]
async fn group_norm() {
    assert_family("group_norm").await;
}
