//! Per-adapter choice of the matmul configuration: defaults, a process-wide cache keyed by
//! adapter, a small autotune and a GFLOP/s benchmark.

use std::collections::BTreeMap;
use std::sync::Mutex;

#[cfg(not(target_arch = "wasm32"))]
use super::matmul_with;
use super::{MatmulConfig, MATMUL_CONFIGS};
use crate::{Gpu, Result};

/// Chosen configuration per adapter (name, backend, driver).
static CHOSEN: Mutex<BTreeMap<String, MatmulConfig>> = Mutex::new(BTreeMap::new());

fn key(gpu: &Gpu) -> String {
    let s = gpu.adapter();
    format!("{} | {} | {}", s.name, s.backend, s.driver)
}

fn chosen() -> std::sync::MutexGuard<'static, BTreeMap<String, MatmulConfig>> {
    CHOSEN.lock().unwrap_or_else(|p| p.into_inner())
}

/// The configuration used by default on this kind of adapter, before any autotune.
pub fn default_matmul_config(gpu: &Gpu) -> MatmulConfig {
    if gpu.is_cpu() && MatmulConfig::CPU_SUBGROUP_DEFAULT.runs_on(gpu) {
        MatmulConfig::CPU_SUBGROUP_DEFAULT
    } else if gpu.is_cpu() {
        MatmulConfig::CPU_DEFAULT
    } else {
        MatmulConfig::GPU_DEFAULT
    }
}

/// The configuration `matmul` uses on `gpu`: the cached (tuned or set) one, else the default.
pub fn matmul_config(gpu: &Gpu) -> MatmulConfig {
    chosen()
        .get(&key(gpu))
        .copied()
        .unwrap_or_else(|| default_matmul_config(gpu))
}

/// Makes `matmul` use `config` on every `Gpu` of this adapter from now on.
pub fn set_matmul_config(gpu: &Gpu, config: MatmulConfig) {
    chosen().insert(key(gpu), config);
}

/// The configurations worth timing on this adapter.
pub fn matmul_candidates(gpu: &Gpu) -> Vec<MatmulConfig> {
    MATMUL_CONFIGS
        .iter()
        .copied()
        .filter(|c| c.runs_on(gpu))
        .filter(|c| gpu.is_cpu() != matches!(c, MatmulConfig::Tiled { .. }))
        .collect()
}

/// Times every candidate once on a mid-size linear-layer shape and caches the fastest for
/// this adapter (returns the cached choice at once on later calls; the default on wasm32).
pub fn autotune_matmul(gpu: &Gpu) -> Result<MatmulConfig> {
    if let Some(c) = chosen().get(&key(gpu)) {
        return Ok(*c);
    }
    let best = tune(gpu)?;
    set_matmul_config(gpu, best);
    Ok(best)
}

#[cfg(target_arch = "wasm32")]
fn tune(gpu: &Gpu) -> Result<MatmulConfig> {
    Ok(default_matmul_config(gpu))
}

#[cfg(not(target_arch = "wasm32"))]
fn tune(gpu: &Gpu) -> Result<MatmulConfig> {
    // A linear layer x[256, 512] · w[768, 512]ᵀ: big enough to rank, small enough for lavapipe.
    let (m, k, n) = (256, 512, 768);
    let mut best = (f64::INFINITY, default_matmul_config(gpu));
    for config in matmul_candidates(gpu) {
        // Best of three single runs: robust to a busy machine.
        let mut secs = f64::INFINITY;
        for _ in 0..3 {
            secs = secs.min(time_linear(gpu, m, k, n, config)?);
        }
        log::debug!(
            "matmul autotune {config:?}: {:.2} GFLOP/s",
            gflops(m, k, n) / secs
        );
        if secs < best.0 {
            best = (secs, config);
        }
    }
    log::info!("matmul autotune on {}: {:?}", key(gpu), best.1);
    Ok(best.1)
}

#[cfg(not(target_arch = "wasm32"))]
fn gflops(m: usize, k: usize, n: usize) -> f64 {
    2.0 * (m * k * n) as f64 / 1e9
}

/// Seconds of one linear-layer call `a[m,k] · w[n,k]ᵀ` under `config`, after one warm-up call.
#[cfg(not(target_arch = "wasm32"))]
fn time_linear(gpu: &Gpu, m: usize, k: usize, n: usize, config: MatmulConfig) -> Result<f64> {
    let mut rng = crate::rng::Rng::new(7);
    let a = crate::Tensor::from_f32(gpu, &[m, k], &rng.normal_vec(m * k))?;
    let w = crate::Tensor::from_f32(gpu, &[n, k], &rng.normal_vec(k * n))?;
    drop(matmul_with(&a, &w, None, false, true, config)?);
    gpu.synchronize()?;
    let start = std::time::Instant::now();
    drop(matmul_with(&a, &w, None, false, true, config)?);
    gpu.synchronize()?;
    Ok(start.elapsed().as_secs_f64())
}
