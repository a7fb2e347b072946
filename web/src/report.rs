//! JSON views of the adapter and of conformance tables, for the page and the tests.

use bitdance::conformance::CheckResult;
use bitdance::Gpu;
use serde_json::{json, Value};

/// Adapter summary, CPU flag, the limits that bound our kernels, and enabled features.
pub fn adapter(gpu: &Gpu) -> Value {
    let a = gpu.adapter();
    let l = gpu.limits();
    json!({
        "name": a.name,
        "backend": a.backend,
        "device_type": a.device_type,
        "driver": a.driver,
        "is_cpu": gpu.is_cpu(),
        "features": gpu.features().iter().filter_map(|f| f.as_str()).collect::<Vec<_>>(),
        "limits": {
            "max_storage_buffer_binding_size": l.max_storage_buffer_binding_size,
            "max_buffer_size": l.max_buffer_size,
            "max_storage_buffers_per_shader_stage": l.max_storage_buffers_per_shader_stage,
            "max_compute_invocations_per_workgroup": l.max_compute_invocations_per_workgroup,
            "max_compute_workgroup_storage_size": l.max_compute_workgroup_storage_size,
            "max_compute_workgroups_per_dimension": l.max_compute_workgroups_per_dimension,
        },
    })
}

/// One table row; NaN errors become `null`.
fn row(family: &str, r: &CheckResult) -> Value {
    json!({
        "family": family,
        "op": r.op,
        "shapes": r.shapes,
        "rel_error": r.rel_error,
        "tolerance": r.tolerance,
        "error": r.error,
        "skipped": r.skipped,
        "passed": r.passed(),
    })
}

/// The adapter and every family's rows, with passed / failed / skipped counts; an empty family
/// fails.
pub fn conformance(gpu: &Gpu, families: &[(String, Vec<CheckResult>)]) -> Value {
    let mut rows = Vec::new();
    for (family, results) in families {
        if results.is_empty() {
            rows.push(json!({
                "family": family, "op": "(none)", "shapes": "", "rel_error": null,
                "tolerance": null, "error": "ran no check", "passed": false,
            }));
        }
        rows.extend(results.iter().map(|r| row(family, r)));
    }
    let skipped = rows.iter().filter(|r| !r["skipped"].is_null()).count();
    let passed = rows.iter().filter(|r| r["passed"] == true).count() - skipped;
    json!({
        "adapter": adapter(gpu),
        "rows": rows,
        "passed": passed,
        "failed": rows.len() - passed - skipped,
        "skipped": skipped,
    })
}
