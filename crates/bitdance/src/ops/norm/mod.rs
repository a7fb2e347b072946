//! Row-wise normalisation ops: RMSNorm, LayerNorm, row softmax, row sums and statistics,
//! forward and backward. Rows are the product of the leading dims, D the last dim;
//! every row is independent. Parameter gradients are deterministic column sums (no atomics).

pub(crate) mod check;
pub(crate) mod reference;
mod tape;

mod row_stats;

pub use row_stats::{row_stats, row_stats_backward};

use super::{check_same, shape_err};
use crate::gpu::{Kernel, VEC};
use crate::{DType, Result, Tensor};

/// Declares a row-kernel shader twice: `norm_common` + `$file` + the row reductions through
/// workgroup memory (`$plain`), and the same with subgroup reductions (`$sg`, CPU adapters).
macro_rules! row_shader {
    ($plain:ident, $sg:ident = $file:literal) => {
        shader! {
            #[doc = concat!("`shaders/", $file, ".wgsl` with row sums through workgroup memory.")]
            $plain = $file, ["norm_common", $file, "norm_reduce"], Params,
                crate::gpu::Variants::Listed(NORM_VARIANTS), false;
        }
        shader! {
            #[doc = concat!("`shaders/", $file, ".wgsl` with row sums as subgroup operations.")]
            $sg = concat!($file, "_sg"), ["norm_common", $file, "norm_reduce_sg"], Params,
                crate::gpu::Variants::Listed(NORM_SG_VARIANTS), true;
        }
    };
}

row_shader!(RMS_NORM_SHADER, RMS_NORM_SG = "rms_norm");
row_shader!(LAYER_NORM_SHADER, LAYER_NORM_SG = "layer_norm");
row_shader!(SOFTMAX_SHADER, SOFTMAX_SG = "softmax");
row_shader!(ROW_SUMS_SHADER, ROW_SUMS_SG = "row_sums");

/// Each row-kernel shader with its subgroup build.
const SUBGROUP_BUILDS: [(&crate::gpu::Shader, &crate::gpu::Shader); 4] = [
    (&RMS_NORM_SHADER, &RMS_NORM_SG),
    (&LAYER_NORM_SHADER, &LAYER_NORM_SG),
    (&SOFTMAX_SHADER, &SOFTMAX_SG),
    (&ROW_SUMS_SHADER, &ROW_SUMS_SG),
];

/// The subgroup build of a row-kernel shader of this family.
pub(crate) fn subgroup_build(shader: &crate::gpu::Shader) -> Option<&'static crate::gpu::Shader> {
    SUBGROUP_BUILDS
        .iter()
        .find(|(plain, _)| std::ptr::eq(*plain, shader))
        .map(|(_, sg)| *sg)
}

/// The shaders of this family, for validation.
#[cfg(test)]
pub(crate) const SHADERS: &[&crate::gpu::Shader] = &[
    &RMS_NORM_SHADER,
    &RMS_NORM_SG,
    &LAYER_NORM_SHADER,
    &LAYER_NORM_SG,
    &SOFTMAX_SHADER,
    &SOFTMAX_SG,
    &ROW_SUMS_SHADER,
    &ROW_SUMS_SG,
];

/// Define sets of the row-kernel shaders the runtime uses (validated by naga): threads per row
/// (CPU, GPU) times the element width.
pub const NORM_VARIANTS: &[&[(&str, u32)]] = &[
    &[ROW_WG_CPU_DEFINE, (VEC, 1)],
    &[ROW_WG_CPU_DEFINE, (VEC, 4)],
    &[ROW_WG_GPU_DEFINE, (VEC, 1)],
    &[ROW_WG_GPU_DEFINE, (VEC, 4)],
];
/// Define sets of the subgroup-reduction builds of the row-kernel shaders (CPU adapters only).
pub const NORM_SG_VARIANTS: &[&[(&str, u32)]] = &[
    &[ROW_WG_CPU_DEFINE, (VEC, 1)],
    &[ROW_WG_CPU_DEFINE, (VEC, 4)],
];

/// Threads per row on CPU adapters (llvmpipe): one SIMD vector, cheap barriers and final sums.
const ROW_WG_CPU: u32 = 8;
const ROW_WG_CPU_DEFINE: (&str, u32) = ("ROW_WG", ROW_WG_CPU);
/// Threads per row on GPUs.
const ROW_WG_GPU_DEFINE: (&str, u32) = ("ROW_WG", 64);

uniform! {
    /// The uniform of the row-kernel shaders (`norm_common.wgsl`).
    struct Params {
        /// Rows (row kernels) or threads (element kernels), the row length in V elements, and
        /// epsilon.
        rows: u32, d: u32, eps: f32,
        /// Rows per chunk (param grads).
        aux: u32,
        /// Rows of the input of the param-grad and column-sum kernels.
        total: u32,
        /// `layer_norm_modulated`: 1 when the weight and bias are bound.
        affine: u32,
    }
}

kernels! { RMS_NORM_KERNELS = RMS_NORM_SHADER, Params;
    RMS_NORM = "rms_norm", [rw, rw, r, r];
    RMS_NORM_BACKWARD = "rms_norm_backward", [rw, r, r, r, r];
    RMS_PARAM_GRAD = "rms_param_grad", [rw, r, skip, r, r];
}
kernels! { LAYER_NORM_KERNELS = LAYER_NORM_SHADER, Params;
    LAYER_NORM = "layer_norm", [rw, rw, rw, r, r, r];
    LAYER_NORM_BACKWARD = "layer_norm_backward", [rw, r, r, r, r, r];
    LN_PARAM_GRAD = "ln_param_grad", [rw, r, skip, r, r, r, rw];
    LAYER_NORM_MODULATED = "layer_norm_modulated", [rw, skip, skip, r, r, r, skip, r, r];
    RESIDUAL_LAYER_NORM_MODULATED = "residual_layer_norm_modulated",
        [rw, rw, skip, r, r, r, skip, r, r, r, r];
}
kernels! { SOFTMAX_KERNELS = SOFTMAX_SHADER, Params;
    SOFTMAX = "softmax", [rw, r];
    SOFTMAX_BACKWARD = "softmax_backward", [rw, r, r];
}
kernels! { ROW_SUMS_KERNELS = ROW_SUMS_SHADER, Params;
    COL_SUM = "col_sum", [rw, r];
    ROW_SUM = "row_sum", [rw, r];
}

/// The uniform of a norm kernel.
fn params(rows: usize, d: usize, eps: f32, aux: usize, total: usize) -> Params {
    Params {
        rows: rows as u32,
        d: d as u32,
        eps,
        aux: aux as u32,
        total: total as u32,
        affine: 0,
    }
}

/// (rows, D) of `x [.., D]`; D must be non-zero.
fn rows_of(op: &'static str, x: &Tensor) -> Result<(usize, usize)> {
    x.expect_dtype(op, "x", DType::F32)?;
    let d = *x.shape().last().unwrap_or(&0);
    if d == 0 {
        return Err(shape_err(
            op,
            format!("x {:?} needs a non-empty last dim", x.shape()),
        ));
    }
    Ok((x.numel() / d, d))
}

/// Checks that `t` has shape `[n]` (any shape with n elements is accepted).
fn check_len(op: &'static str, what: &str, t: &Tensor, n: usize) -> Result<()> {
    if t.numel() != n {
        return Err(shape_err(
            op,
            format!("{what} {:?} must have {n} elements", t.shape()),
        ));
    }
    Ok(())
}

/// One workgroup per row, as a 2D grid when rows exceed the per-dimension limit, at element
/// width `width` (1 or 4; p.d counts elements of that width). On CPU adapters whose
/// subgroups hold a row's 8 threads, the row sums are subgroup operations.
fn row_dispatch(
    kernel: &Kernel,
    width: u32,
    tensors: &[&Tensor],
    p: Params,
    rows: usize,
) -> Result<()> {
    let gpu = tensors[0].gpu();
    let defines = defines(gpu, width);
    let groups = rows as u32;
    if let (true, Some(sg)) = (
        gpu.is_cpu() && gpu.has_subgroups(ROW_WG_CPU),
        subgroup_build(kernel.shader),
    ) {
        let kernel = Kernel {
            shader: sg,
            ..*kernel
        };
        return gpu.dispatch_groups(&kernel, &defines, tensors, &p, groups);
    }
    gpu.dispatch_groups(kernel, &defines, tensors, &p, groups)
}

/// `row_dispatch` over vec4s when the row length p.d is a multiple of 4 (d then counted in
/// vec4s), else over scalars.
fn row_dispatch_vec(
    kernel: &Kernel,
    tensors: &[&Tensor],
    mut p: Params,
    rows: usize,
) -> Result<()> {
    let width = if p.d.is_multiple_of(4) { 4 } else { 1 };
    p.d /= width;
    row_dispatch(kernel, width, tensors, p, rows)
}

/// The define set of this adapter at element width `width` (one module per adapter and width
/// serves every entry point).
fn defines(gpu: &crate::Gpu, width: u32) -> [(&'static str, u32); 2] {
    let row_wg = if gpu.is_cpu() {
        ROW_WG_CPU_DEFINE
    } else {
        ROW_WG_GPU_DEFINE
    };
    [row_wg, (VEC, width)]
}

/// One thread per item (workgroups of 256), over scalars.
fn item_dispatch(kernel: &Kernel, tensors: &[&Tensor], p: Params, items: usize) -> Result<()> {
    let gpu = tensors[0].gpu();
    gpu.dispatch_items(kernel, &defines(gpu, 1), tensors, &p, items)
}

/// `weight`, or ones of length d when absent (after checking its length).
fn weight_or(
    op: &'static str,
    w: Option<&Tensor>,
    x: &Tensor,
    d: usize,
    fill: f32,
) -> Result<Tensor> {
    match w {
        Some(w) => {
            check_len(op, "weight", w, d)?;
            Ok(w.clone())
        }
        None => Tensor::full(x.gpu(), &[d], fill),
    }
}

/// Rows per chunk of the two-stage parameter-gradient sums: about sqrt(rows), at least 16.
fn chunk_rows(rows: usize) -> usize {
    ((rows as f64).sqrt().ceil() as usize).max(16)
}

/// Sums the partials `[chunks, d]` over chunks into `[d]` (identity when there is one chunk).
fn finish_col_sum(part: Tensor, chunks: usize, d: usize) -> Result<Tensor> {
    if chunks == 1 {
        return part.reshape(&[d]);
    }
    let out = Tensor::empty(part.gpu(), &[d], DType::F32)?;
    item_dispatch(&COL_SUM, &[&out, &part], params(d, d, 0.0, 0, chunks), d)?;
    Ok(out)
}

/// RMSNorm: `y = x * rsqrt(mean(x²) + eps) * w` over the last dim. x [.., D], weight [D]
/// (ones when `None`). Returns `(y [.., D], rstd [rows])`.
pub fn rms_norm(x: &Tensor, weight: Option<&Tensor>, eps: f32) -> Result<(Tensor, Tensor)> {
    let (rows, d) = rows_of("rms_norm", x)?;
    let w = weight_or("rms_norm", weight, x, d, 1.0)?;
    let y = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    let rstd = Tensor::empty(x.gpu(), &[rows], DType::F32)?;
    row_dispatch_vec(
        &RMS_NORM,
        &[&y, &rstd, x, &w],
        params(rows, d, eps, 0, rows),
        rows,
    )?;
    Ok((y, rstd))
}

/// Backward of `rms_norm` given the saved `rstd [rows]` and `dy [.., D]`.
/// Returns `(dx [.., D], dweight [D])`, dweight only when `weight` is given.
pub fn rms_norm_backward(
    x: &Tensor,
    weight: Option<&Tensor>,
    rstd: &Tensor,
    dy: &Tensor,
) -> Result<(Tensor, Option<Tensor>)> {
    const OP: &str = "rms_norm_backward";
    let (rows, d) = rows_of(OP, x)?;
    check_same(OP, "dy", dy, x)?;
    check_len(OP, "rstd", rstd, rows)?;
    let w = weight_or(OP, weight, x, d, 1.0)?;
    let dx = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    row_dispatch_vec(
        &RMS_NORM_BACKWARD,
        &[&dx, x, &w, rstd, dy],
        params(rows, d, 0.0, 0, rows),
        rows,
    )?;
    if weight.is_none() {
        return Ok((dx, None));
    }
    let ch = chunk_rows(rows);
    let chunks = rows.div_ceil(ch).max(1);
    let part = Tensor::empty(x.gpu(), &[chunks, d], DType::F32)?;
    item_dispatch(
        &RMS_PARAM_GRAD,
        &[&part, x, rstd, dy],
        params(chunks * d, d, 0.0, ch, rows),
        chunks * d,
    )?;
    Ok((dx, Some(finish_col_sum(part, chunks, d)?)))
}

/// LayerNorm: `y = (x - mean) * rsqrt(var + eps) * w + b` over the last dim (biased variance).
/// x [.., D], weight and bias [D] (ones / zeros when `None`).
/// Returns `(y [.., D], mean [rows], rstd [rows])`.
pub fn layer_norm(
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f32,
) -> Result<(Tensor, Tensor, Tensor)> {
    const OP: &str = "layer_norm";
    let (rows, d) = rows_of(OP, x)?;
    let w = weight_or(OP, weight, x, d, 1.0)?;
    let b = match bias {
        Some(b) => {
            check_len(OP, "bias", b, d)?;
            b.clone()
        }
        None => Tensor::zeros(x.gpu(), &[d])?,
    };
    let y = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    let mean = Tensor::empty(x.gpu(), &[rows], DType::F32)?;
    let rstd = Tensor::empty(x.gpu(), &[rows], DType::F32)?;
    row_dispatch_vec(
        &LAYER_NORM,
        &[&y, &mean, &rstd, x, &w, &b],
        params(rows, d, eps, 0, rows),
        rows,
    )?;
    Ok((y, mean, rstd))
}

/// The operands of adaLN before a sub-layer, `layer_norm(x, w, b) * (1 + scale) + shift`:
/// the LayerNorm's (weight, bias) [D] or none, its epsilon, and shift and scale [G, D] (one row
/// per group of x's rows). `V` is a tensor, or a tape value in `model::Graph`.
pub struct AdaLn<'a, V = Tensor> {
    /// The LayerNorm's (weight, bias), or none.
    pub affine: Option<(&'a V, &'a V)>,
    /// LayerNorm epsilon.
    pub eps: f32,
    /// Added after the scaling, [G, D].
    pub shift: &'a V,
    /// `1 + scale` multiplies the normalized rows, [G, D].
    pub scale: &'a V,
}

/// adaLN before a sub-layer (inference) in one pass: x [G, T, D] (or [G, D]), the shift and
/// scale rows of group g broadcast over its T rows. Returns y shaped as x.
pub fn layer_norm_modulated(x: &Tensor, m: AdaLn) -> Result<Tensor> {
    const OP: &str = "layer_norm_modulated";
    let ada = ada_ln_operands(OP, x, &m, &[])?;
    let y = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    let tensors = [&y, x, ada.weight, ada.bias, m.shift, m.scale];
    row_dispatch_vec(&LAYER_NORM_MODULATED, &tensors, ada.params, ada.rows)?;
    Ok(y)
}

/// A gated residual and the adaLN before the next sub-layer (inference) in one pass:
/// `x + gate * sublayer` (x, sublayer [G, T, D], gate [G, D]) and `layer_norm_modulated` of it
/// with `m`. Returns (the residual sum, the modulated rows), both shaped as x.
pub fn residual_layer_norm_modulated(
    x: &Tensor,
    gate: &Tensor,
    sublayer: &Tensor,
    m: AdaLn,
) -> Result<(Tensor, Tensor)> {
    const OP: &str = "residual_layer_norm_modulated";
    check_same(OP, "sublayer", sublayer, x)?;
    let ada = ada_ln_operands(OP, x, &m, &[("gate", gate)])?;
    let sum = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    let y = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    let (shift, scale) = (m.shift, m.scale);
    let tensors = [
        &y, &sum, x, ada.weight, ada.bias, shift, scale, gate, sublayer,
    ];
    row_dispatch_vec(
        &RESIDUAL_LAYER_NORM_MODULATED,
        &tensors,
        ada.params,
        ada.rows,
    )?;
    Ok((sum, y))
}

/// What the adaLN kernels bind besides their tensors: the LayerNorm's weight and bias (the
/// shift where there is no affine: bound, not read), the rows and the uniform.
struct AdaLnOperands<'a> {
    weight: &'a Tensor,
    bias: &'a Tensor,
    rows: usize,
    params: Params,
}

/// Checks x [G, T, D] (or [G, D]) against the adaLN operands `m` and the other per-group
/// rows `more` ([G, D] each).
fn ada_ln_operands<'a>(
    op: &'static str,
    x: &Tensor,
    m: &AdaLn<'a>,
    more: &[(&'static str, &Tensor)],
) -> Result<AdaLnOperands<'a>> {
    let mut per_group = vec![("shift", m.shift), ("scale", m.scale)];
    per_group.extend_from_slice(more);
    let (groups, _, d) = super::modulate::groups(op, x, &per_group)?;
    let rows = x.numel() / d;
    let (weight, bias) = match m.affine {
        Some((w, b)) => {
            check_len(op, "weight", w, d)?;
            check_len(op, "bias", b, d)?;
            (w, b)
        }
        // Bound but not read (params.affine = 0).
        None => (m.shift, m.shift),
    };
    let params = Params {
        affine: m.affine.is_some() as u32,
        ..params(rows, d, m.eps, rows / groups, rows)
    };
    Ok(AdaLnOperands {
        weight,
        bias,
        rows,
        params,
    })
}

/// Backward of `layer_norm` given the saved `mean`, `rstd [rows]` and `dy [.., D]`.
/// Returns `(dx, dweight [D], dbias [D])`; the parameter gradients are computed only when
/// `weight` is given (affine LayerNorm). For a bias-only LayerNorm, dbias is the column sum of dy.
pub fn layer_norm_backward(
    x: &Tensor,
    weight: Option<&Tensor>,
    mean: &Tensor,
    rstd: &Tensor,
    dy: &Tensor,
) -> Result<(Tensor, Option<Tensor>, Option<Tensor>)> {
    const OP: &str = "layer_norm_backward";
    let (rows, d) = rows_of(OP, x)?;
    check_same(OP, "dy", dy, x)?;
    check_len(OP, "mean", mean, rows)?;
    check_len(OP, "rstd", rstd, rows)?;
    let w = weight_or(OP, weight, x, d, 1.0)?;
    let dx = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    row_dispatch_vec(
        &LAYER_NORM_BACKWARD,
        &[&dx, x, &w, mean, rstd, dy],
        params(rows, d, 0.0, 0, rows),
        rows,
    )?;
    if weight.is_none() {
        return Ok((dx, None, None));
    }
    let ch = chunk_rows(rows);
    let chunks = rows.div_ceil(ch).max(1);
    let dw_part = Tensor::empty(x.gpu(), &[chunks, d], DType::F32)?;
    let db_part = Tensor::empty(x.gpu(), &[chunks, d], DType::F32)?;
    item_dispatch(
        &LN_PARAM_GRAD,
        &[&dw_part, x, mean, rstd, dy, &db_part],
        params(chunks * d, d, 0.0, ch, rows),
        chunks * d,
    )?;
    let dw = finish_col_sum(dw_part, chunks, d)?;
    let db = finish_col_sum(db_part, chunks, d)?;
    Ok((dx, Some(dw), Some(db)))
}

/// Numerically stable softmax over the last dim: x [.., D] -> y [.., D].
pub fn softmax(x: &Tensor) -> Result<Tensor> {
    let (rows, d) = rows_of("softmax", x)?;
    let y = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    row_dispatch(&SOFTMAX, 1, &[&y, x], params(rows, d, 0.0, 0, rows), rows)?;
    Ok(y)
}

/// Sums over the last dim: x [.., D] -> [..] (one workgroup per row, a fixed order).
pub fn sum_last(x: &Tensor) -> Result<Tensor> {
    let (rows, d) = rows_of("sum_last", x)?;
    let shape = &x.shape()[..x.shape().len() - 1];
    let out = Tensor::empty(
        x.gpu(),
        if shape.is_empty() { &[1] } else { shape },
        DType::F32,
    )?;
    row_dispatch_vec(&ROW_SUM, &[&out, x], params(rows, d, 0.0, 0, rows), rows)?;
    Ok(out)
}

/// Backward of `softmax` from its output `y` and `dy` (both [.., D]): `dx = y * (dy - Σ y·dy)`.
pub fn softmax_backward(y: &Tensor, dy: &Tensor) -> Result<Tensor> {
    const OP: &str = "softmax_backward";
    let (rows, d) = rows_of(OP, y)?;
    if dy.shape() != y.shape() {
        return Err(shape_err(
            OP,
            format!("dy {:?} differs from y {:?}", dy.shape(), y.shape()),
        ));
    }
    let dx = Tensor::empty(y.gpu(), y.shape(), DType::F32)?;
    row_dispatch(
        &SOFTMAX_BACKWARD,
        1,
        &[&dx, y, dy],
        params(rows, d, 0.0, 0, rows),
        rows,
    )?;
    Ok(dx)
}

/// Every kernel this family declares, for the binding contract test.
#[cfg(test)]
pub(crate) const KERNELS: &[&[crate::gpu::Kernel]] = &[
    RMS_NORM_KERNELS,
    LAYER_NORM_KERNELS,
    SOFTMAX_KERNELS,
    ROW_SUMS_KERNELS,
    row_stats::ROW_STATS_KERNELS,
];
