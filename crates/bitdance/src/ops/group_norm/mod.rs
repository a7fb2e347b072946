//! GroupNorm and its affine maps for the binary autoencoder: the fused `nn.GroupNorm` forward,
//! AdaptiveGroupNorm in one pass, and the per-row / per-channel affine maps with their
//! gradients (the tape's GroupNorm is a LayerNorm over each (batch, group) run followed by
//! `channel_affine`).

pub(crate) mod check;
pub(crate) mod reference;
mod tape;

use super::shape_err;
use crate::gpu::Kernel;
use crate::{DType, Result, Tensor};

shader! {
    /// `shaders/group_norm.wgsl`.
    GROUP_NORM_SHADER = "group_norm", ["group_norm"], Params,
        crate::gpu::Variants::Listed(GROUP_NORM_VARIANTS), false;
}

/// The shaders of this family, for validation.
#[cfg(test)]
pub(crate) const SHADERS: &[&crate::gpu::Shader] = &[&GROUP_NORM_SHADER];

/// Threads per (batch, group) of the GroupNorm kernels on CPU adapters (fewer invocations per
/// barrier win there).
pub(crate) const GN_WG_CPU: u32 = 16;
/// Threads per (batch, group) on GPUs.
pub(crate) const GN_WG_GPU: u32 = 256;

/// Define sets of `shaders/group_norm.wgsl` (validated by naga): the GroupNorm workgroup size.
pub const GROUP_NORM_VARIANTS: &[&[(&str, u32)]] =
    &[&[("GN_WG", GN_WG_CPU)], &[("GN_WG", GN_WG_GPU)]];

uniform! {
    /// The uniform of `group_norm.wgsl`.
    struct Params {
        /// Group norms: batch, channels, pixels per channel, groups, epsilon.
        n: u32, c: u32, hw: u32, groups: u32, eps: f32,
        /// group_norm: 1 applies SiLU to the output.
        silu: u32,
        /// Row affine: rows of x and their length; rows r and r + period share a scale and
        /// shift.
        rows: u32, len: u32, period: u32,
    }
}

kernels! { GROUP_NORM_KERNELS = GROUP_NORM_SHADER, Params;
    GROUP_NORM = "group_norm", [rw, r, r, r];
    ADAPTIVE_GROUP_NORM = "adaptive_group_norm", [rw, r, r, r];
    ROW_AFFINE = "row_affine", [rw, r, r, r];
    ROW_AFFINE_BACKWARD = "row_affine_backward", [rw, rw, rw, r, r, r];
}

/// Every kernel this family declares, for the binding contract test.
#[cfg(test)]
pub(crate) const KERNELS: &[&[Kernel]] = &[GROUP_NORM_KERNELS];

/// The GroupNorm workgroup size this adapter runs.
fn default_wg(gpu: &crate::Gpu) -> u32 {
    if gpu.is_cpu() {
        GN_WG_CPU
    } else {
        GN_WG_GPU
    }
}

/// GroupNorm, PyTorch `nn.GroupNorm` semantics (biased variance): x [B, C, H, W] with C divisible
/// by `groups`, weight and bias [C] (ones / zeros when `None`). Returns y [B, C, H, W].
pub fn group_norm(
    x: &Tensor,
    groups: usize,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f32,
) -> Result<Tensor> {
    group_norm_wg(x, groups, weight, bias, eps, default_wg(x.gpu()), false)
}

/// `silu(group_norm(x, ..))` in one pass (the autoencoders' norm before each convolution):
/// arguments and shapes as `group_norm`.
pub fn group_norm_silu(
    x: &Tensor,
    groups: usize,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f32,
) -> Result<Tensor> {
    group_norm_wg(x, groups, weight, bias, eps, default_wg(x.gpu()), true)
}

/// `group_norm` with `wg` threads per (batch, group), followed by SiLU when `silu`.
pub(crate) fn group_norm_wg(
    x: &Tensor,
    groups: usize,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f32,
    wg: u32,
    silu: bool,
) -> Result<Tensor> {
    let [_, c, _, _] = nchw("group_norm", x)?;
    let gpu = x.gpu();
    let or_fill = |t: Option<&Tensor>, fill: f32| match t {
        Some(t) => Ok(t.clone()),
        None => Tensor::full(gpu, &[c], fill),
    };
    let (w, b) = (or_fill(weight, 1.0)?, or_fill(bias, 0.0)?);
    let norm = GroupNormRun {
        groups,
        copies: 1,
        eps,
        wg,
        silu,
    };
    launch_group_norm(&GROUP_NORM, x, [&w, &b], norm)
}

/// AdaptiveGroupNorm in one pass: GroupNorm of x [B, C, H, W] without its own affine, then
/// `y * scale[b, c] + shift[b, c]` with scale and shift [B, C] (the decoder's per-image
/// modulation from the latent's statistics).
pub fn adaptive_group_norm(
    x: &Tensor,
    groups: usize,
    scale: &Tensor,
    shift: &Tensor,
    eps: f32,
) -> Result<Tensor> {
    adaptive_group_norm_wg(x, groups, scale, shift, eps, default_wg(x.gpu()))
}

/// `adaptive_group_norm` with `wg` threads per (batch, group).
pub(crate) fn adaptive_group_norm_wg(
    x: &Tensor,
    groups: usize,
    scale: &Tensor,
    shift: &Tensor,
    eps: f32,
    wg: u32,
) -> Result<Tensor> {
    let batch = x.shape().first().copied().unwrap_or(0);
    let norm = GroupNormRun {
        groups,
        copies: batch,
        eps,
        wg,
        silu: false,
    };
    launch_group_norm(&ADAPTIVE_GROUP_NORM, x, [scale, shift], norm)
}

/// `[B, C, H, W]` of a rank-4 f32 tensor with no zero dim.
fn nchw(op: &'static str, t: &Tensor) -> Result<[usize; 4]> {
    t.expect_dtype(op, "x", DType::F32)?;
    match *t.shape() {
        [b, c, h, w] if b * c * h * w > 0 => Ok([b, c, h, w]),
        ref s => Err(shape_err(
            op,
            format!("x {s:?} must be [B, C, H, W] with no zero dim"),
        )),
    }
}

/// How a group-norm kernel runs: its groups, the copies of its affine ([copies, C]), epsilon,
/// threads per (batch, group), and whether SiLU follows.
struct GroupNormRun {
    groups: usize,
    copies: usize,
    eps: f32,
    wg: u32,
    silu: bool,
}

/// Runs a GroupNorm kernel over x [B, C, H, W] as `norm` says, with `affine` (scale, shift)
/// of `copies` * C values each (per channel, or per (batch, channel)).
fn launch_group_norm(
    kernel: &Kernel,
    x: &Tensor,
    affine: [&Tensor; 2],
    norm: GroupNormRun,
) -> Result<Tensor> {
    let GroupNormRun {
        groups,
        copies,
        eps,
        wg,
        silu,
    } = norm;
    let op = kernel.entry;
    let [b, c, h, w] = nchw(op, x)?;
    if groups == 0 || c % groups != 0 {
        return Err(shape_err(
            op,
            format!(
                "{groups} groups do not divide the channels of x {:?}",
                x.shape()
            ),
        ));
    }
    for (t, what) in affine.iter().zip(["scale", "shift"]) {
        t.expect_dtype(op, what, DType::F32)?;
        if t.numel() != copies * c {
            return Err(shape_err(
                op,
                format!(
                    "{what} {:?} must have {} elements for x {:?}",
                    t.shape(),
                    copies * c,
                    x.shape()
                ),
            ));
        }
    }
    let gpu = x.gpu();
    let y = Tensor::empty(gpu, x.shape(), DType::F32)?;
    let rows = b * groups;
    let p = Params {
        n: b as u32,
        c: c as u32,
        hw: (h * w) as u32,
        groups: groups as u32,
        eps,
        silu: silu as u32,
        ..Default::default()
    };
    let tensors = [&y, x, affine[0], affine[1]];
    gpu.dispatch_groups(kernel, &[("GN_WG", wg)], &tensors, &p, rows as u32)?;
    Ok(y)
}

fn rows_len(op: &'static str, x: &Tensor, s: &Tensor, t: &Tensor) -> Result<(usize, usize)> {
    let rows = s.numel();
    if rows == 0 || t.numel() != rows || !x.numel().is_multiple_of(rows) {
        return Err(shape_err(
            op,
            format!(
                "x {:?} must split into one row per scale {:?} and shift {:?}",
                x.shape(),
                s.shape(),
                t.shape()
            ),
        ));
    }
    Ok((rows, x.numel() / rows))
}

/// `y = x * s[r] + t[r]` for each of the R rows of x (rows = the R equal slices of x in memory,
/// e.g. the (batch, channel) planes of NCHW): x [..], s and t with R elements. y has x's shape.
pub fn row_affine(x: &Tensor, s: &Tensor, t: &Tensor) -> Result<Tensor> {
    let (rows, _) = rows_len("row_affine", x, s, t)?;
    affine_rows(x, s, t, rows, rows)
}

/// Gradients of `row_affine` given dy: (dx = dy * s[r], ds[r] = Σ dy x, dt[r] = Σ dy).
pub fn row_affine_backward(
    x: &Tensor,
    s: &Tensor,
    dy: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (rows, _) = rows_len("row_affine_backward", x, s, s)?;
    affine_rows_backward(x, s, dy, rows, rows)
}

/// `y[b, c, ..] = x[b, c, ..] * weight[c] + bias[c]` for x [B, C, ..] (the affine part of
/// GroupNorm): the per-channel vectors are read in place, not repeated per batch entry.
pub fn channel_affine(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let (planes, c) = channel_planes("channel_affine", x, weight, bias)?;
    affine_rows(x, weight, bias, planes, c)
}

/// Gradients of `channel_affine` given dy: (dx, dweight [C], dbias [C]); the per-plane sums are
/// added over the batch in a fixed order (deterministic).
pub fn channel_affine_backward(
    x: &Tensor,
    weight: &Tensor,
    dy: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (planes, c) = channel_planes("channel_affine_backward", x, weight, weight)?;
    let (dx, ds, dt) = affine_rows_backward(x, weight, dy, planes, c)?;
    let per_channel = |t: Tensor| crate::ops::sum_rows(&t.reshape(&[planes / c, c])?);
    Ok((dx, per_channel(ds)?, per_channel(dt)?))
}

/// (planes B * C, C) of x [B, C, ..] whose per-channel vectors s and t hold C elements.
fn channel_planes(op: &'static str, x: &Tensor, s: &Tensor, t: &Tensor) -> Result<(usize, usize)> {
    x.expect_dtype(op, "x", DType::F32)?;
    match *x.shape() {
        [b, c, ..] if c > 0 && s.numel() == c && t.numel() == c => Ok((b * c, c)),
        _ => Err(shape_err(
            op,
            format!(
                "x {:?} must be [B, C, ..] with C = the {} and {} per-channel elements",
                x.shape(),
                s.numel(),
                t.numel()
            ),
        )),
    }
}

/// `x * s[r % period] + t[r % period]` over the `rows` equal rows of x.
fn affine_rows(x: &Tensor, s: &Tensor, t: &Tensor, rows: usize, period: usize) -> Result<Tensor> {
    let y = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    let p = Params {
        rows: rows as u32,
        len: (x.numel() / rows) as u32,
        period: period as u32,
        ..Default::default()
    };
    let defines = [("GN_WG", default_wg(x.gpu()))];
    x.gpu()
        .dispatch_items(&ROW_AFFINE, &defines, &[&y, x, s, t], &p, x.numel())?;
    Ok(y)
}

/// Backward of `affine_rows`: dx, and ds, dt per row ([rows], not yet summed per period).
fn affine_rows_backward(
    x: &Tensor,
    s: &Tensor,
    dy: &Tensor,
    rows: usize,
    period: usize,
) -> Result<(Tensor, Tensor, Tensor)> {
    if dy.shape() != x.shape() {
        return Err(shape_err(
            "row_affine_backward",
            format!("dy {:?} differs from x {:?}", dy.shape(), x.shape()),
        ));
    }
    let gpu = x.gpu();
    let dx = Tensor::empty(gpu, x.shape(), DType::F32)?;
    let ds = Tensor::empty(gpu, &[rows], DType::F32)?;
    let dt = Tensor::empty(gpu, &[rows], DType::F32)?;
    let p = Params {
        rows: rows as u32,
        len: (x.numel() / rows) as u32,
        period: period as u32,
        ..Default::default()
    };
    let tensors = [&dx, &ds, &dt, x, dy, s];
    let defines = [("GN_WG", default_wg(gpu))];
    gpu.dispatch_items(&ROW_AFFINE_BACKWARD, &defines, &tensors, &p, rows)?;
    Ok((dx, ds, dt))
}
