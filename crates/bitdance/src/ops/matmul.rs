//! Batched matmul with optional transposes and a fused bias, tile configuration per adapter.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::gpu::{Access, Kernel};
use crate::shaders::MATMUL;
use crate::{DType, Error, Gpu, Result, Tensor};

/// Register-blocking configuration: `tm x tn` outputs per invocation, `wgx x wgy` invocations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MatmulConfig {
    /// Rows per invocation.
    pub tm: u32,
    /// Columns per invocation (strided by `wgx`).
    pub tn: u32,
    /// Invocations along columns.
    pub wgx: u32,
    /// Invocations along rows.
    pub wgy: u32,
}

impl MatmulConfig {
    const fn new(tm: u32, tn: u32, wgx: u32, wgy: u32) -> Self {
        Self { tm, tn, wgx, wgy }
    }

    fn defines(&self, trans_a: bool, trans_b: bool) -> [(&'static str, u32); 6] {
        [
            ("TM", self.tm),
            ("TN", self.tn),
            ("WGX", self.wgx),
            ("WGY", self.wgy),
            ("TRANS_A", trans_a as u32),
            ("TRANS_B", trans_b as u32),
        ]
    }
}

/// The configurations the runtime may pick from; every one is checked by the conformance suite.
pub const MATMUL_CONFIGS: [MatmulConfig; 7] = [
    MatmulConfig::new(4, 4, 16, 16), // real GPUs: 64x64 outputs per workgroup
    MatmulConfig::new(4, 4, 16, 4),
    MatmulConfig::new(8, 2, 16, 4),
    MatmulConfig::new(2, 4, 32, 2),
    MatmulConfig::new(4, 2, 8, 8),
    MatmulConfig::new(8, 4, 16, 8),
    MatmulConfig::new(4, 8, 8, 16),
];

macro_rules! variants {
    ($($c:literal),*) => {
        &[$(
            &[("TM", MATMUL_CONFIGS[$c].tm), ("TN", MATMUL_CONFIGS[$c].tn), ("WGX", MATMUL_CONFIGS[$c].wgx), ("WGY", MATMUL_CONFIGS[$c].wgy), ("TRANS_A", 0), ("TRANS_B", 0)],
            &[("TM", MATMUL_CONFIGS[$c].tm), ("TN", MATMUL_CONFIGS[$c].tn), ("WGX", MATMUL_CONFIGS[$c].wgx), ("WGY", MATMUL_CONFIGS[$c].wgy), ("TRANS_A", 0), ("TRANS_B", 1)],
            &[("TM", MATMUL_CONFIGS[$c].tm), ("TN", MATMUL_CONFIGS[$c].tn), ("WGX", MATMUL_CONFIGS[$c].wgx), ("WGY", MATMUL_CONFIGS[$c].wgy), ("TRANS_A", 1), ("TRANS_B", 0)],
            &[("TM", MATMUL_CONFIGS[$c].tm), ("TN", MATMUL_CONFIGS[$c].tn), ("WGX", MATMUL_CONFIGS[$c].wgx), ("WGY", MATMUL_CONFIGS[$c].wgy), ("TRANS_A", 1), ("TRANS_B", 1)],
        )*]
    };
}

/// Define sets of `shaders/matmul.wgsl` the runtime uses (validated by naga).
pub const MATMUL_VARIANTS: &[&[(&str, u32)]] = variants!(0, 1, 2, 3, 4, 5, 6);

const RW: Access = Access::ReadWrite;
const R: Access = Access::Read;
const MATMUL_KERNEL: Kernel = Kernel {
    shader: &MATMUL,
    entry: "matmul",
    bindings: &[RW, R, R],
};
const MATMUL_BIAS: Kernel = Kernel {
    shader: &MATMUL,
    entry: "matmul_bias",
    bindings: &[RW, R, R, R],
};

/// Tuned configuration per adapter (name + backend), set by `autotune_matmul`.
static TUNED: Mutex<Option<HashMap<String, MatmulConfig>>> = Mutex::new(None);

fn adapter_key(gpu: &Gpu) -> String {
    format!("{} / {:?}", gpu.info().name, gpu.info().backend)
}

/// The configuration used on `gpu`: the autotuned one if any, else a default by device type.
pub fn matmul_config(gpu: &Gpu) -> MatmulConfig {
    let tuned = TUNED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = tuned.as_ref().and_then(|m| m.get(&adapter_key(gpu))) {
        return *c;
    }
    MATMUL_CONFIGS[0]
}

/// Shapes of one matmul call, resolved from the operands.
struct Plan {
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    stride_a: usize,
    stride_b: usize,
    out_shape: Vec<usize>,
}

fn plan(
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    trans_a: bool,
    trans_b: bool,
) -> Result<Plan> {
    let err = |detail: String| Error::Shape {
        op: "matmul",
        detail,
    };
    let (sa, sb) = (a.shape(), b.shape());
    if sa.len() < 2 || sb.len() < 2 {
        return Err(err(format!(
            "operands must be at least 2-D, found {sa:?} and {sb:?}"
        )));
    }
    let (ra, ca) = (sa[sa.len() - 2], sa[sa.len() - 1]);
    let (rb, cb) = (sb[sb.len() - 2], sb[sb.len() - 1]);
    let (m, k) = if trans_a { (ca, ra) } else { (ra, ca) };
    let (kb, n) = if trans_b { (cb, rb) } else { (rb, cb) };
    if k != kb {
        return Err(err(format!(
            "inner dimensions differ: A {sa:?}{} gives K={k}, B {sb:?}{} gives K={kb}",
            if trans_a { "ᵀ" } else { "" },
            if trans_b { "ᵀ" } else { "" }
        )));
    }
    let batch_a = &sa[..sa.len() - 2];
    let batch_b = &sb[..sb.len() - 2];
    let batch: usize = batch_a.iter().product();
    if !batch_b.is_empty() && batch_b != batch_a {
        return Err(err(format!("batch dimensions differ: A {sa:?}, B {sb:?}")));
    }
    if let Some(bias) = bias {
        if bias.numel() != n || bias.shape().len() != 1 {
            return Err(err(format!("bias {:?} must be [{n}]", bias.shape())));
        }
    }
    let mut out_shape = batch_a.to_vec();
    out_shape.extend([m, n]);
    let shared_b = batch_b.is_empty();
    // A row-major batch against a shared B is one tall matmul.
    if shared_b && !trans_a {
        return Ok(Plan {
            batch: 1,
            m: batch * m,
            k,
            n,
            stride_a: 0,
            stride_b: 0,
            out_shape,
        });
    }
    Ok(Plan {
        batch,
        m,
        k,
        n,
        stride_a: m * k,
        stride_b: if shared_b { 0 } else { k * n },
        out_shape,
    })
}

/// `op(a) @ op(b) (+ bias)`: a [..batch, M, K] (or [..batch, K, M] with `trans_a`), b [..batch, K, N]
/// (or [..batch, N, K] with `trans_b`) or a 2-D b shared by every batch; bias [N]; out [..batch, M, N].
/// A PyTorch linear layer is `matmul(x, weight, Some(bias), false, true)`.
pub fn matmul(
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    trans_a: bool,
    trans_b: bool,
) -> Result<Tensor> {
    let config = matmul_config(a.gpu());
    matmul_with(config, a, b, bias, trans_a, trans_b)
}

/// `matmul` with an explicit tile configuration (conformance checks and autotuning).
pub fn matmul_with(
    config: MatmulConfig,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    trans_a: bool,
    trans_b: bool,
) -> Result<Tensor> {
    a.expect_dtype("matmul", "a", DType::F32)?;
    b.expect_dtype("matmul", "b", DType::F32)?;
    let p = plan(a, b, bias, trans_a, trans_b)?;
    let gpu = a.gpu();
    let out = Tensor::empty(gpu, &p.out_shape, DType::F32)?;
    if p.m == 0 || p.n == 0 {
        return Ok(out);
    }
    if p.k == 0 {
        return match bias {
            Some(bias) => crate::ops::add_bias(&Tensor::zeros(gpu, &p.out_shape)?, bias),
            None => Tensor::zeros(gpu, &p.out_shape),
        };
    }
    let groups_x = p.n.div_ceil((config.wgx * config.tn) as usize) as u32;
    let groups_y = p.m.div_ceil((config.wgy * config.tm) as usize) as u32;
    let params = [p.m, p.n, p.k, p.stride_a, p.stride_b, p.m * p.n].map(|v| v as u32);
    let defines = config.defines(trans_a, trans_b);
    let grid = [groups_x, groups_y, p.batch as u32];
    match bias {
        Some(bias) => gpu.dispatch(&MATMUL_BIAS, &defines, &[&out, a, b, bias], &params, grid)?,
        None => gpu.dispatch(&MATMUL_KERNEL, &defines, &[&out, a, b], &params, grid)?,
    }
    Ok(out)
}

/// GFLOP/s of `config` on an [m, k] x [k, n] product (best of `iters` after a warm-up).
#[cfg(not(target_arch = "wasm32"))]
pub fn bench_matmul_with(
    gpu: &Gpu,
    config: MatmulConfig,
    m: usize,
    k: usize,
    n: usize,
    iters: usize,
) -> Result<f64> {
    let mut rng = crate::rng::Rng::new(1);
    let a = Tensor::from_f32(gpu, &[m, k], &rng.uniform_vec(m * k, -1.0, 1.0))?;
    let b = Tensor::from_f32(gpu, &[k, n], &rng.uniform_vec(k * n, -1.0, 1.0))?;
    drop(matmul_with(config, &a, &b, None, false, false)?);
    gpu.synchronize()?;
    let mut best = f64::INFINITY;
    for _ in 0..iters.max(1) {
        let start = std::time::Instant::now();
        drop(matmul_with(config, &a, &b, None, false, false)?);
        gpu.synchronize()?;
        best = best.min(start.elapsed().as_secs_f64());
    }
    Ok(2.0 * (m * k * n) as f64 / best / 1e9)
}

/// GFLOP/s of the configuration in use on `gpu` for an [m, k] x [k, n] product.
#[cfg(not(target_arch = "wasm32"))]
pub fn bench_matmul(gpu: &Gpu, m: usize, k: usize, n: usize, iters: usize) -> Result<f64> {
    bench_matmul_with(gpu, matmul_config(gpu), m, k, n, iters)
}

/// Times every configuration on a BitDance-sized product, keeps the fastest for this adapter
/// (for the rest of the process) and returns it with the GFLOP/s of each candidate.
#[cfg(not(target_arch = "wasm32"))]
pub fn autotune_matmul(gpu: &Gpu) -> Result<(MatmulConfig, Vec<(MatmulConfig, f64)>)> {
    let mut timings = Vec::new();
    for config in MATMUL_CONFIGS {
        timings.push((config, bench_matmul_with(gpu, config, 256, 768, 768, 2)?));
    }
    let best = timings
        .iter()
        .copied()
        .fold(timings[0], |best, t| if t.1 > best.1 { t } else { best })
        .0;
    TUNED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(adapter_key(gpu), best);
    Ok((best, timings))
}
