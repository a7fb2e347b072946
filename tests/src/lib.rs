//! Shared helpers of the cross-crate tests: one GPU per test binary, conformance assertions.

use std::sync::OnceLock;

use bitdance::conformance::{self, CheckResult};
use bitdance::model::ModelConfig;
use bitdance::Gpu;

/// The GPU chosen by the environment; fails (never skips) when no adapter is present.
pub fn gpu() -> Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        bitdance::gpu::block_on(Gpu::from_env())
            .unwrap_or_else(|e| panic!("no GPU for the tests: {e}"))
    })
    .clone()
}

/// Runs one conformance family and fails with the table of failing rows.
pub fn assert_family(name: &str) {
    let rows = bitdance::gpu::block_on(conformance::run(&gpu(), &[name]));
    assert!(!rows.is_empty(), "family {name} ran no check");
    let failed: Vec<&CheckResult> = rows.iter().filter(|r| !r.passed()).collect();
    for r in &rows {
        eprintln!(
            "{:<28} {:<32} {:>10.2e} {}",
            r.op,
            r.shapes,
            r.rel_error,
            r.status()
        );
    }
    assert!(
        failed.is_empty(),
        "{name}: {} of {} checks failed: {failed:#?}",
        failed.len(),
        rows.len()
    );
}

/// A tiny but complete BitDance config (16-wide, 2 layers, 64-wide head, 4x4 tokens of 32
/// bits, 5 classes, a 2-level autoencoder) with `parallel_num` tokens per AR step (1 or 4).
pub fn tiny_config(parallel_num: usize) -> ModelConfig {
    let mut c = ModelConfig::builtin("B-1x").expect("built-in config");
    c.dim = 16;
    c.n_layer = 2;
    c.n_head = 2;
    c.diff_layers = 4;
    c.diff_dim = 64;
    c.diff_adanln_layers = 2;
    c.resolution = 8;
    c.down_size = 2;
    c.cls_token_num = 3;
    c.num_classes = 5;
    c.parallel_num = parallel_num;
    c.vae.ch = 32;
    c.vae.ch_mult = vec![1, 1];
    c.vae.num_res_blocks = 1;
    c.validate().expect("tiny config is consistent");
    c
}

/// Error of `got` against `expected` as max |got - expected| / max |expected| (a non-finite
/// value or a length mismatch gives infinity).
pub fn max_relative_error(got: &[f32], expected: &[f32]) -> f64 {
    if got.len() != expected.len() || got.iter().any(|v| !v.is_finite()) {
        return f64::INFINITY;
    }
    let diff = got
        .iter()
        .zip(expected)
        .map(|(g, e)| (*g as f64 - *e as f64).abs())
        .fold(0.0, f64::max);
    let scale = expected
        .iter()
        .map(|e| (*e as f64).abs())
        .fold(0.0, f64::max);
    diff / scale.max(f64::MIN_POSITIVE)
}

/// Asserts `max_relative_error(got, expected) <= tol`, printing it and the L2 relative error.
pub fn assert_close(what: &str, got: &[f32], expected: &[f32], tol: f64) {
    let rel = max_relative_error(got, expected);
    let reference: Vec<f64> = expected.iter().map(|v| *v as f64).collect();
    let l2 = bitdance::reference::relative_error(got, &reference);
    eprintln!("{what}: max-abs relative error {rel:.2e} (L2 {l2:.2e}), tolerance {tol:.0e}");
    assert!(
        rel <= tol,
        "{what}: max |got - expected| / max |expected| = {rel:.3e} > {tol:.0e} (L2 {l2:.3e})"
    );
}
