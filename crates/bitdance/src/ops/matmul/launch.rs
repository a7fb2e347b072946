//! Records the dispatches of one matmul for a given kernel configuration.

use super::geometry::Geometry;
use super::MatmulConfig;
use super::{MATMUL, MATMUL_B16, MATMUL_SG, MATMUL_SG8_B16, MATMUL_SG_B16};
use crate::gpu::Kernel;
use crate::{DType, Result, Tensor};

kernels! { MATMUL_KERNELS = MATMUL, Params;
    MM_RB = "mm_rb", [rw, r, r, r];
    MM_TILED = "mm_tiled", [rw, r, r, r];
    PACK = "pack", [rw, r];
}
kernels! { MATMUL_SG_KERNELS = MATMUL_SG, Params;
    MM_SG = "mm_sg", [rw, r, r, r];
}
kernels! { MATMUL_B16_KERNELS = MATMUL_B16, Params;
    MM_RB_B16 = "mm_rb", [rw, r, r, r];
    MM_TILED_B16 = "mm_tiled", [rw, r, r, r];
}
kernels! { MATMUL_SG_B16_KERNELS = MATMUL_SG_B16, Params;
    MM_SG_B16 = "mm_sg", [rw, r, r, r];
}
kernels! { MATMUL_SG8_B16_KERNELS = MATMUL_SG8_B16, Params;
    MM_SG8_B16 = "mm_sg8", [rw, r, r, r];
}

/// A strided operand: element (b, r, k) or (b, k, s) at `b*batch + r*rs + k*ks`.
#[derive(Clone, Copy)]
struct View<'a> {
    t: &'a Tensor,
    batch: usize,
    rs: usize,
    ks: usize,
}

uniform! {
    /// The uniform of `matmul.wgsl` (and its generated forms).
    struct Params {
        /// R: output rows (pack: rows of X).
        rows: u32,
        /// S: output columns (pack: padded row length).
        cols: u32,
        /// K: reduction length (mm_rb: vec4 steps, ceil(K / 4)).
        k: u32,
        /// Workgroups along S (pack: total elements written).
        s_blocks: u32,
        /// X strides (mm_rb: in vec4s, as P): batch, rows, K.
        x_batch: u32,
        x_rs: u32,
        x_ks: u32,
        /// Y strides (mm_rb: in vec4s, as Q): batch, K, columns.
        y_batch: u32,
        y_ks: u32,
        y_ss: u32,
        /// Output strides: batch, rows, columns.
        o_batch: u32,
        o_rs: u32,
        o_ss: u32,
        /// 1: bias indexed by the row, 0: by the column.
        bias_on_rows: u32,
        /// mm_rb: P is read along its rows (1) or along K (0).
        p_rc: u32,
        /// mm_rb: Q is read along its columns (1) or along K (0).
        q_sc: u32,
        /// 1: add bias (else the bias binding is a dummy).
        has_bias: u32,
    }
}

impl Params {
    /// The uniform of a product: `[rows, cols, k, s_blocks]`, X strides `[batch, rows, K]`,
    /// Y strides `[batch, K, columns]`, output strides `[batch, rows, columns]`.
    fn product(
        [rows, cols, k, s_blocks]: [usize; 4],
        x: [usize; 3],
        y: [usize; 3],
        o: [usize; 3],
        has_bias: bool,
    ) -> Params {
        let u = |v: usize| v as u32;
        Params {
            rows: u(rows),
            cols: u(cols),
            k: u(k),
            s_blocks: u(s_blocks),
            x_batch: u(x[0]),
            x_rs: u(x[1]),
            x_ks: u(x[2]),
            y_batch: u(y[0]),
            y_ks: u(y[1]),
            y_ss: u(y[2]),
            o_batch: u(o[0]),
            o_rs: u(o[1]),
            o_ss: u(o[2]),
            has_bias: has_bias as u32,
            ..Default::default()
        }
    }
}

/// One product to record: `out = a·b (+ bias)` laid out as `g` describes.
#[derive(Clone, Copy)]
struct Product<'a> {
    g: &'a Geometry,
    a: &'a Tensor,
    b: &'a Tensor,
    bias: Option<&'a Tensor>,
    out: &'a Tensor,
}

/// Records `out = a·b (+ bias)` with `config`; `out` has the shape of `g.out_shape`.
pub(super) fn record(
    g: &Geometry,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    out: &Tensor,
    config: MatmulConfig,
) -> Result<()> {
    let product = Product { g, a, b, bias, out };
    match config {
        MatmulConfig::Register { .. } | MatmulConfig::Subgroup { .. } => register(product, config),
        MatmulConfig::Tiled { ts, .. } => tiled(product, config, ts * 4),
    }
}

/// An operand as mm_rb reads it: vec4s along K (`rs`: vec4s between rows), or along its rows
/// when `rows_contiguous` (`ks`: vec4s between K indices); `batch` in vec4s.
struct Vec4Operand<'a> {
    t: &'a Tensor,
    batch: usize,
    rs: usize,
    ks: usize,
    rows_contiguous: bool,
}

/// `v` (`count` batch entries of `rows` x K) readable as vec4s: as it is when K or its rows
/// are contiguous in multiples of 4, else packed K-contiguous and zero-padded (kept in `holder`).
fn vec4_operand<'a>(
    v: View<'a>,
    count: usize,
    rows: usize,
    k: usize,
    holder: &'a mut Option<Tensor>,
) -> Result<Vec4Operand<'a>> {
    if k.is_multiple_of(4) && v.ks == 1 {
        return Ok(Vec4Operand {
            t: v.t,
            batch: v.batch / 4,
            rs: v.rs / 4,
            ks: 0,
            rows_contiguous: false,
        });
    }
    if k.is_multiple_of(4) && v.rs == 1 && rows.is_multiple_of(4) {
        return Ok(Vec4Operand {
            t: v.t,
            batch: v.batch / 4,
            rs: 0,
            ks: v.ks / 4,
            rows_contiguous: true,
        });
    }
    let kq = k.div_ceil(4);
    let gpu = v.t.gpu();
    let packed = Tensor::empty(gpu, &[count, rows, kq * 4], DType::F32)?;
    let total = packed.numel();
    let x = [v.batch, v.rs, v.ks];
    let params = Params::product([rows, kq * 4, k, total], x, [0; 3], [0; 3], false);
    // Pack does not depend on the configuration: one pipeline serves them all.
    let defines = MatmulConfig::CPU_DEFAULT.defines();
    gpu.dispatch_items(&PACK, &defines, &[&packed, v.t], &params, total)?;
    Ok(Vec4Operand {
        t: holder.insert(packed),
        batch: if v.batch == 0 { 0 } else { rows * kq },
        rs: kq,
        ks: 0,
        rows_contiguous: false,
    })
}

/// Records mm_rb or mm_sg (`config` is `Register` or `Subgroup`).
fn register(product: Product, config: MatmulConfig) -> Result<()> {
    let Product { g, a, b, bias, out } = product;
    let gpu = out.gpu();
    // 16-bit weights are always streamed as P, the operand matmul_b16.wgsl reads in halves.
    let half_b = b.dtype() == DType::F16;
    let (kernel, wg, t, rp) = match (config, half_b) {
        (MatmulConfig::Register { wg, t, rp }, false) => (&MM_RB, wg, t, rp),
        (MatmulConfig::Register { wg, t, rp }, true) => (&MM_RB_B16, wg, t, rp),
        (MatmulConfig::Subgroup { wg, t, rp }, false) => (&MM_SG, wg, t, rp),
        (MatmulConfig::Subgroup { wg, t, rp }, true) => (&MM_SG_B16, wg, t, rp),
        (MatmulConfig::Tiled { .. }, _) => unreachable!("register() records register blocks"),
    };
    if !config.runs_on(gpu) {
        return Err(crate::Error::Invalid(format!(
            "matmul configuration '{config}' needs subgroups of 8+ lanes; this adapter has none"
        )));
    }
    let (wg, t, rp) = (wg as usize, t as usize, rp as usize);
    let av = View {
        t: a,
        batch: g.a_batch,
        rs: g.a_ms,
        ks: g.a_ks,
    };
    let bv = View {
        t: b,
        batch: g.b_batch,
        rs: g.b_ns,
        ks: g.b_ks,
    };
    let b_count = if g.b_batch == 0 { 1 } else { g.batch };
    let (mut ha, mut hb) = (None, None);
    let ap = vec4_operand(av, g.batch, g.m, g.k, &mut ha)?;
    let bp = vec4_operand(bv, b_count, g.n, g.k, &mut hb)?;
    // Invocations stream the operand whose rows waste fewer lanes when rounded to blocks.
    let padded =
        |rows: usize, cols: usize| rows.div_ceil(wg * rp) * wg * rp * (cols.div_ceil(t) * t);
    let b_lanes = half_b || padded(g.n, g.m) < padded(g.m, g.n);
    let (x, y, rows, cols, o_rs, o_ss) = if b_lanes {
        (bp, ap, g.n, g.m, 1, g.n)
    } else {
        (ap, bp, g.m, g.n, g.n, 1)
    };
    // The block actually run (narrowed to few columns) sizes the grid.
    let config = config.narrowed(cols);
    let (wg, t, rp) = match config {
        MatmulConfig::Register { wg, t, rp } | MatmulConfig::Subgroup { wg, t, rp } => {
            (wg as usize, t as usize, rp as usize)
        }
        MatmulConfig::Tiled { .. } => unreachable!("narrowing keeps the kind"),
    };
    let s_blocks = cols.div_ceil(t);
    let params = Params {
        bias_on_rows: b_lanes as u32,
        p_rc: x.rows_contiguous as u32,
        q_sc: y.rows_contiguous as u32,
        ..Params::product(
            [rows, cols, g.k.div_ceil(4), s_blocks],
            [x.batch, x.rs, x.ks],
            [y.batch, y.ks, y.rs],
            [g.m * g.n, o_rs, o_ss],
            bias.is_some(),
        )
    };
    let groups = rows.div_ceil(wg * rp) * s_blocks;
    // 16-bit weights along K in whole 8-half runs, activations along K: one load per two K
    // steps and no layout selects (mm_sg8; 3-7% less CPU time in the B-4x head on lavapipe).
    let eight_halves = |v: usize| v.is_multiple_of(2);
    let kernel = if std::ptr::eq(kernel, &MM_SG_B16)
        && !x.rows_contiguous
        && !y.rows_contiguous
        && g.k.is_multiple_of(8)
        && eight_halves(x.rs)
        && eight_halves(x.batch)
    {
        &MM_SG8_B16
    } else {
        kernel
    };
    dispatch(
        kernel,
        config,
        [out, x.t, y.t],
        bias,
        &params,
        groups,
        g.batch,
    )
}

fn tiled(product: Product, config: MatmulConfig, tile: u32) -> Result<()> {
    let Product { g, a, b, bias, out } = product;
    let tile = tile as usize;
    let s_blocks = g.n.div_ceil(tile);
    let params = Params::product(
        [g.m, g.n, g.k, s_blocks],
        [g.a_batch, g.a_ms, g.a_ks],
        [g.b_batch, g.b_ks, g.b_ns],
        [g.m * g.n, g.n, 1],
        bias.is_some(),
    );
    let groups = g.m.div_ceil(tile) * s_blocks;
    let kernel = if b.dtype() == DType::F16 {
        &MM_TILED_B16
    } else {
        &MM_TILED
    };
    dispatch(kernel, config, [out, a, b], bias, &params, groups, g.batch)
}

/// Dispatches `kernel` on [out, x, y, bias] over `groups` workgroups for each of `batch`
/// entries; without a bias a one-element dummy is bound (read only when `has_bias`).
fn dispatch(
    kernel: &Kernel,
    config: MatmulConfig,
    [out, x, y]: [&Tensor; 3],
    bias: Option<&Tensor>,
    params: &Params,
    groups: usize,
    batch: usize,
) -> Result<()> {
    let gpu = out.gpu();
    let [gx, gy, _] = gpu.grid("matmul", groups as u32)?;
    let dummy;
    let bias = match bias {
        Some(bias) => bias,
        None => {
            dummy = Tensor::empty(gpu, &[1], DType::F32)?;
            &dummy
        }
    };
    gpu.dispatch(
        kernel,
        &config.defines(),
        &[out, x, y, bias],
        params,
        [gx, gy, batch as u32],
    )
}
