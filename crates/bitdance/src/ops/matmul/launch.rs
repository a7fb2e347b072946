//! Records the dispatches of one matmul for a given kernel configuration.

use super::geometry::Geometry;
use super::MatmulConfig;
use crate::gpu::{Access, Kernel};
use super::{MATMUL, MATMUL_SG};
use crate::{DType, Result, Tensor};

const RW: Access = Access::ReadWrite;
const R: Access = Access::Read;

kernels! { MATMUL_KERNELS = MATMUL;
    MM_RB = "mm_rb", &[RW, R, R, R];
    MM_TILED = "mm_tiled", &[RW, R, R, R];
    PACK = "pack", &[RW, R];
}
kernels! { MATMUL_SG_KERNELS = MATMUL_SG;
    MM_SG = "mm_sg", &[RW, R, R, R];
}

/// A strided operand: element (b, r, k) or (b, k, s) at `b*batch + r*rs + k*ks`.
#[derive(Clone, Copy)]
struct View<'a> {
    t: &'a Tensor,
    batch: usize,
    rs: usize,
    ks: usize,
}

/// The uniform words of `matmul.wgsl` (field order of its `Params`).
#[derive(Default)]
struct Params {
    rows: usize,
    cols: usize,
    k: usize,
    s_blocks: usize,
    x_batch: usize,
    x_rs: usize,
    x_ks: usize,
    y_batch: usize,
    y_ks: usize,
    y_ss: usize,
    o_batch: usize,
    o_rs: usize,
    o_ss: usize,
    bias_on_rows: bool,
    p_rc: bool,
    q_sc: bool,
    has_bias: bool,
}

impl Params {
    fn words(&self) -> [u32; 17] {
        [
            self.rows,
            self.cols,
            self.k,
            self.s_blocks,
            self.x_batch,
            self.x_rs,
            self.x_ks,
            self.y_batch,
            self.y_ks,
            self.y_ss,
            self.o_batch,
            self.o_rs,
            self.o_ss,
            self.bias_on_rows as usize,
            self.p_rc as usize,
            self.q_sc as usize,
            self.has_bias as usize,
        ]
        .map(|v| v as u32)
    }
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
    match config {
        MatmulConfig::Register { .. } | MatmulConfig::Subgroup { .. } => {
            register(g, a, b, bias, out, config)
        }
        MatmulConfig::Tiled { ts, .. } => tiled(g, a, b, bias, out, config, ts * 4),
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
    let params = Params {
        rows,
        cols: kq * 4,
        k,
        s_blocks: total,
        x_batch: v.batch,
        x_rs: v.rs,
        x_ks: v.ks,
        ..Default::default()
    };
    let grid = crate::ops::grid_1d(&packed, "matmul pack", total)?;
    // Pack does not depend on the configuration: one pipeline serves them all.
    gpu.dispatch(
        &PACK,
        &MatmulConfig::CPU_DEFAULT.defines(),
        &[&packed, v.t],
        &params.words(),
        grid,
    )?;
    Ok(Vec4Operand {
        t: holder.insert(packed),
        batch: if v.batch == 0 { 0 } else { rows * kq },
        rs: kq,
        ks: 0,
        rows_contiguous: false,
    })
}

/// Records mm_rb or mm_sg (`config` is `Register` or `Subgroup`).
fn register(
    g: &Geometry,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    out: &Tensor,
    config: MatmulConfig,
) -> Result<()> {
    let gpu = out.gpu();
    let (kernel, wg, t, rp) = match config {
        MatmulConfig::Register { wg, t, rp } => (&MM_RB, wg, t, rp),
        MatmulConfig::Subgroup { wg, t, rp } => (&MM_SG, wg, t, rp),
        MatmulConfig::Tiled { .. } => unreachable!("register() records register blocks"),
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
    let b_lanes = padded(g.n, g.m) < padded(g.m, g.n);
    let (x, y, rows, cols, o_rs, o_ss) = if b_lanes {
        (bp, ap, g.n, g.m, 1, g.n)
    } else {
        (ap, bp, g.m, g.n, g.n, 1)
    };
    // The block actually run (narrowed to few columns) sizes the grid.
    let config = config.narrowed(cols);
    let (t, rp) = match config {
        MatmulConfig::Register { t, rp, .. } | MatmulConfig::Subgroup { t, rp, .. } => {
            (t as usize, rp as usize)
        }
        MatmulConfig::Tiled { .. } => unreachable!("narrowing keeps the kind"),
    };
    let s_blocks = cols.div_ceil(t);
    let params = Params {
        rows,
        cols,
        k: g.k.div_ceil(4),
        s_blocks,
        x_batch: x.batch,
        x_rs: x.rs,
        x_ks: x.ks,
        y_batch: y.batch,
        y_ks: y.ks,
        y_ss: y.rs,
        o_batch: g.m * g.n,
        o_rs,
        o_ss,
        bias_on_rows: b_lanes,
        p_rc: x.rows_contiguous,
        q_sc: y.rows_contiguous,
        has_bias: bias.is_some(),
    };
    let groups = rows.div_ceil(wg * rp) * s_blocks;
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

fn tiled(
    g: &Geometry,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    out: &Tensor,
    config: MatmulConfig,
    tile: u32,
) -> Result<()> {
    let tile = tile as usize;
    let s_blocks = g.n.div_ceil(tile);
    let params = Params {
        rows: g.m,
        cols: g.n,
        k: g.k,
        s_blocks,
        x_batch: g.a_batch,
        x_rs: g.a_ms,
        x_ks: g.a_ks,
        y_batch: g.b_batch,
        y_ks: g.b_ks,
        y_ss: g.b_ns,
        o_batch: g.m * g.n,
        o_rs: g.n,
        o_ss: 1,
        has_bias: bias.is_some(),
        ..Default::default()
    };
    let groups = g.m.div_ceil(tile) * s_blocks;
    dispatch(
        &MM_TILED,
        config,
        [out, a, b],
        bias,
        &params,
        groups,
        g.batch,
    )
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
        &params.words(),
        [gx, gy, batch as u32],
    )
}
