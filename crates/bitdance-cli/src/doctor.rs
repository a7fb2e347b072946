//! `bitdance doctor`: adapter report and the kernel conformance table.

use std::process::ExitCode;
use std::time::Instant;

use clap::Args;

/// Options of `bitdance doctor`.
#[derive(Args)]
pub struct DoctorArgs {
    /// Only run these kernel families (comma-separated, e.g. matmul,attention).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

/// Prints the adapter and runs the conformance checks; exit code 1 if any fails.
pub fn run(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let gpu = crate::open_gpu()?;
    let a = gpu.adapter();
    println!("adapter      {}", a.name);
    println!("backend      {}", a.backend);
    println!("device type  {}", a.device_type);
    println!("driver       {}", a.driver);
    let l = gpu.limits();
    println!(
        "limits       max_storage_buffer_binding_size {} MiB, max_buffer_size {} MiB,",
        l.max_storage_buffer_binding_size >> 20,
        l.max_buffer_size >> 20
    );
    println!(
        "             {} storage buffers/stage, {} invocations/workgroup, {} workgroups/dim, {} B workgroup storage",
        l.max_storage_buffers_per_shader_stage,
        l.max_compute_invocations_per_workgroup,
        l.max_compute_workgroups_per_dimension,
        l.max_compute_workgroup_storage_size
    );
    let f = gpu.features();
    let has = |x: wgpu_features::Feature| if f.contains(x.0) { "yes" } else { "no" };
    println!(
        "features     subgroups {} (sizes {}-{}), timestamp queries {}, shader f16 {}",
        has(wgpu_features::SUBGROUP),
        gpu.info().subgroup_min_size,
        gpu.info().subgroup_max_size,
        has(wgpu_features::TIMESTAMP),
        has(wgpu_features::F16)
    );
    let forms: Vec<String> = gpu.f16_forms().iter().map(|f| f.to_string()).collect();
    println!(
        "16-bit reads {} (checked: {}; BITDANCE_F16=packed|arrays picks)",
        gpu.f16_form(),
        forms.join(", ")
    );
    println!();
    let only: Vec<&str> = args.only.iter().map(String::as_str).collect();
    let known: Vec<&str> = bitdance::conformance::families()
        .iter()
        .map(|f| f.name)
        .collect();
    if let Some(bad) = only.iter().find(|o| !known.contains(o)) {
        anyhow::bail!("unknown kernel family '{bad}'; known: {}", known.join(", "));
    }
    let start = Instant::now();
    let rows = pollster::block_on(bitdance::conformance::run(&gpu, &only));
    println!(
        "{:<34} {:<34} {:>12} {:>9}  result",
        "op", "shapes", "max rel err", "tolerance"
    );
    for r in &rows {
        let (err, tol) = match r.skipped {
            Some(_) => ("-".to_string(), "-".to_string()),
            None => (
                format!("{:.2e}", r.rel_error),
                format!("{:.0e}", r.tolerance),
            ),
        };
        println!(
            "{:<34} {:<34} {err:>12} {tol:>9}  {}",
            r.op,
            r.shapes,
            r.status()
        );
        if let Some(e) = &r.error {
            println!("    error: {e}");
        }
    }
    let failed = rows.iter().filter(|r| !r.passed()).count();
    let skipped = rows.iter().filter(|r| r.skipped.is_some()).count();
    println!(
        "\n{} passed, {} failed, {} skipped ({} checks in {:.1} s on {})",
        rows.len() - failed - skipped,
        failed,
        skipped,
        rows.len(),
        start.elapsed().as_secs_f64(),
        a.name
    );
    Ok(if failed == 0 && !rows.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The wgpu feature flags the doctor reports (re-exported through bitdance's wgpu).
mod wgpu_features {
    pub struct Feature(pub bitdance::gpu::Features);
    pub const SUBGROUP: Feature = Feature(bitdance::gpu::Features::SUBGROUP);
    pub const TIMESTAMP: Feature = Feature(bitdance::gpu::Features::TIMESTAMP_QUERY);
    pub const F16: Feature = Feature(bitdance::gpu::Features::SHADER_F16);
}
