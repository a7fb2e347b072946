//! Shared helpers of the cross-crate tests: one GPU per test binary, conformance assertions.

use std::sync::OnceLock;

use bitdance::conformance::{self, CheckResult};
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
            if r.passed() { "ok" } else { "FAIL" }
        );
    }
    assert!(
        failed.is_empty(),
        "{name}: {} of {} checks failed: {failed:#?}",
        failed.len(),
        rows.len()
    );
}
