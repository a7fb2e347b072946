//! Normalisation and modulation: RMSNorm, LayerNorm (with or without affine weights), row
//! softmax, adaLN modulation `x*(1+scale)+shift` and gated residual `x + gate*h`, with backwards.

use crate::gpu::{Access, Kernel};
use crate::shaders::NORM;
use crate::{DType, Error, Result, Tensor};

/// Define sets of `shaders/norm.wgsl` the runtime uses (validated by naga).
pub const NORM_VARIANTS: &[&[(&str, u32)]] = &[&[]];

const RW: Access = Access::ReadWrite;
const R: Access = Access::Read;
const S: Access = Access::Skip;
const RMS: Kernel = Kernel {
    shader: &NORM,
    entry: "rms_norm",
    bindings: &[RW, RW, R, R],
};
const RMS_BACKWARD: Kernel = Kernel {
    shader: &NORM,
    entry: "rms_norm_backward",
    bindings: &[RW, S, R, R, R, R],
};
const LN: Kernel = Kernel {
    shader: &NORM,
    entry: "layer_norm",
    bindings: &[RW, RW, R, R, R],
};
const LN_BACKWARD: Kernel = Kernel {
    shader: &NORM,
    entry: "layer_norm_backward",
    bindings: &[RW, S, R, R, R, R],
};
const WEIGHT_GRAD: Kernel = Kernel {
    shader: &NORM,
    entry: "norm_weight_grad",
    bindings: &[RW, S, R, R, R],
};
const SOFTMAX: Kernel = Kernel {
    shader: &NORM,
    entry: "softmax",
    bindings: &[RW, S, R],
};
const SOFTMAX_BACKWARD: Kernel = Kernel {
    shader: &NORM,
    entry: "softmax_backward",
    bindings: &[RW, S, R, R],
};
const MODULATE: Kernel = Kernel {
    shader: &NORM,
    entry: "modulate",
    bindings: &[RW, S, R, R, R],
};
const GATED: Kernel = Kernel {
    shader: &NORM,
    entry: "gated_residual",
    bindings: &[RW, S, R, R, R],
};
const BCAST_MUL: Kernel = Kernel {
    shader: &NORM,
    entry: "bcast_mul",
    bindings: &[RW, S, R, R],
};
const GROUP_DOT: Kernel = Kernel {
    shader: &NORM,
    entry: "group_dot",
    bindings: &[RW, S, R, R],
};

fn params(rows: usize, d: usize, t: usize, flag: bool, eps: f32) -> [u32; 5] {
    [rows as u32, d as u32, t as u32, flag as u32, eps.to_bits()]
}

fn launch(kernel: &Kernel, tensors: &[&Tensor], p: [u32; 5], threads: usize) -> Result<()> {
    let gpu = tensors[0].gpu();
    let grid = gpu.grid(kernel.entry, (threads as u32).div_ceil(64))?;
    gpu.dispatch(kernel, &[], tensors, &p, grid)
}

fn rows_width(op: &'static str, x: &Tensor) -> Result<(usize, usize)> {
    match x.shape().last() {
        Some(&d) if d > 0 => Ok((x.numel() / d, d)),
        _ => Err(Error::Shape {
            op,
            detail: format!("input {:?} needs a non-empty last dim", x.shape()),
        }),
    }
}

fn check_vec(op: &'static str, what: &str, t: Option<&Tensor>, d: usize) -> Result<()> {
    match t {
        Some(t) if t.numel() != d => Err(Error::Shape {
            op,
            detail: format!("{what} {:?} must hold {d} values", t.shape()),
        }),
        _ => Ok(()),
    }
}

/// RMSNorm over the last dim: x [.., D], weight [D] -> (y [.., D], rstd [rows]).
pub fn rms_norm(x: &Tensor, weight: Option<&Tensor>, eps: f32) -> Result<(Tensor, Tensor)> {
    let (rows, d) = rows_width("rms_norm", x)?;
    check_vec("rms_norm", "weight", weight, d)?;
    let y = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    let rstd = Tensor::empty(x.gpu(), &[rows], DType::F32)?;
    launch(
        &RMS,
        &[&y, &rstd, x, weight.unwrap_or(x)],
        params(rows, d, 0, weight.is_some(), eps),
        rows,
    )?;
    Ok((y, rstd))
}

/// Backward of `rms_norm`: (dx, dweight when a weight was used).
pub fn rms_norm_backward(
    x: &Tensor,
    weight: Option<&Tensor>,
    rstd: &Tensor,
    dy: &Tensor,
) -> Result<(Tensor, Option<Tensor>)> {
    let (rows, d) = rows_width("rms_norm_backward", x)?;
    same("rms_norm_backward", x, dy)?;
    let dx = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    let p = params(rows, d, 0, weight.is_some(), 0.0);
    launch(
        &RMS_BACKWARD,
        &[&dx, x, weight.unwrap_or(x), rstd, dy],
        p,
        rows,
    )?;
    let dw = match weight {
        Some(_) => Some(weight_grad(x, dy, rstd, false, rows, d)?),
        None => None,
    };
    Ok((dx, dw))
}

fn weight_grad(
    x: &Tensor,
    dy: &Tensor,
    stats: &Tensor,
    has_mean: bool,
    rows: usize,
    d: usize,
) -> Result<Tensor> {
    let dw = Tensor::empty(x.gpu(), &[d], DType::F32)?;
    launch(
        &WEIGHT_GRAD,
        &[&dw, x, dy, stats],
        params(rows, d, 0, has_mean, 0.0),
        d,
    )?;
    Ok(dw)
}

fn same(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    super::same_shape(op, a, b)
}

/// LayerNorm over the last dim, affine when weight and bias are given:
/// -> (y, stats [2, rows] = mean then rstd).
pub fn layer_norm(
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f32,
) -> Result<(Tensor, Tensor)> {
    let (rows, d) = rows_width("layer_norm", x)?;
    check_vec("layer_norm", "weight", weight, d)?;
    check_vec("layer_norm", "bias", bias, d)?;
    if weight.is_some() != bias.is_some() {
        return Err(Error::Invalid(
            "layer_norm: give both weight and bias, or neither".into(),
        ));
    }
    let y = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    let stats = Tensor::empty(x.gpu(), &[2, rows], DType::F32)?;
    let p = params(rows, d, 0, weight.is_some(), eps);
    launch(
        &LN,
        &[&y, &stats, x, weight.unwrap_or(x), bias.unwrap_or(x)],
        p,
        rows,
    )?;
    Ok((y, stats))
}

/// Backward of `layer_norm`: (dx, dweight, dbias), the last two when affine.
pub fn layer_norm_backward(
    x: &Tensor,
    weight: Option<&Tensor>,
    stats: &Tensor,
    dy: &Tensor,
) -> Result<(Tensor, Option<Tensor>, Option<Tensor>)> {
    let (rows, d) = rows_width("layer_norm_backward", x)?;
    same("layer_norm_backward", x, dy)?;
    let dx = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    let p = params(rows, d, 0, weight.is_some(), 0.0);
    launch(
        &LN_BACKWARD,
        &[&dx, x, weight.unwrap_or(x), stats, dy],
        p,
        rows,
    )?;
    if weight.is_none() {
        return Ok((dx, None, None));
    }
    let dw = weight_grad(x, dy, stats, true, rows, d)?;
    let db = super::sum_rows(dy)?;
    Ok((dx, Some(dw), Some(db)))
}

/// Softmax over the last dim.
pub fn softmax(x: &Tensor) -> Result<Tensor> {
    let (rows, d) = rows_width("softmax", x)?;
    let y = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    launch(&SOFTMAX, &[&y, x], params(rows, d, 0, false, 0.0), rows)?;
    Ok(y)
}

/// Backward of `softmax` from its output `y`: dx = y * (dy - Σ y dy).
pub fn softmax_backward(y: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let (rows, d) = rows_width("softmax_backward", y)?;
    same("softmax_backward", y, dy)?;
    let dx = Tensor::empty(y.gpu(), y.shape(), DType::F32)?;
    launch(
        &SOFTMAX_BACKWARD,
        &[&dx, y, dy],
        params(rows, d, 0, false, 0.0),
        rows,
    )?;
    Ok(dx)
}

/// (G, T, C) of x [G, T, C] (or [G, C], T = 1) against per-group vectors [G, C].
fn groups(op: &'static str, x: &Tensor, per_group: &Tensor) -> Result<(usize, usize, usize)> {
    let (_, c) = rows_width(op, x)?;
    let g = per_group.numel() / c.max(1);
    let ok = per_group.shape().last() == Some(&c) && g > 0 && x.numel().is_multiple_of(g * c);
    if !ok {
        return Err(Error::Shape {
            op,
            detail: format!(
                "x {:?} must be [G, T, C] for per-group {:?} = [G, C]",
                x.shape(),
                per_group.shape()
            ),
        });
    }
    Ok((g, x.numel() / (g * c), c))
}

/// adaLN modulation `x * (1 + scale) + shift`: x [G, T, C], shift and scale [G, C] broadcast over T.
pub fn modulate(x: &Tensor, shift: &Tensor, scale: &Tensor) -> Result<Tensor> {
    let (g, t, c) = groups("modulate", x, shift)?;
    same("modulate", shift, scale)?;
    let y = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    launch(
        &MODULATE,
        &[&y, x, shift, scale],
        params(x.numel(), c, t, false, 0.0),
        g * t * c,
    )?;
    Ok(y)
}

/// Backward of `modulate`: (dx, dshift, dscale).
pub fn modulate_backward(
    x: &Tensor,
    scale: &Tensor,
    dy: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (g, t, c) = groups("modulate_backward", x, scale)?;
    same("modulate_backward", x, dy)?;
    let dx = bcast_mul(dy, scale, 1.0, t, c)?;
    let dshift = group_dot(dy, None, g, t, c)?;
    let dscale = group_dot(dy, Some(x), g, t, c)?;
    Ok((dx, dshift, dscale))
}

/// Gated residual `x + gate * h`: x and h [G, T, C], gate [G, C] broadcast over T.
pub fn gated_residual(x: &Tensor, gate: &Tensor, h: &Tensor) -> Result<Tensor> {
    let (g, t, c) = groups("gated_residual", x, gate)?;
    same("gated_residual", x, h)?;
    let y = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    launch(
        &GATED,
        &[&y, x, gate, h],
        params(x.numel(), c, t, false, 0.0),
        g * t * c,
    )?;
    Ok(y)
}

/// Backward of `gated_residual`: (dx = dy, dgate, dh).
pub fn gated_residual_backward(
    gate: &Tensor,
    h: &Tensor,
    dy: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (g, t, c) = groups("gated_residual_backward", h, gate)?;
    same("gated_residual_backward", h, dy)?;
    let dgate = group_dot(dy, Some(h), g, t, c)?;
    let dh = bcast_mul(dy, gate, 0.0, t, c)?;
    Ok((dy.clone(), dgate, dh))
}

fn bcast_mul(x: &Tensor, s: &Tensor, beta: f32, t: usize, c: usize) -> Result<Tensor> {
    let y = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    launch(
        &BCAST_MUL,
        &[&y, x, s],
        params(x.numel(), c, t, false, beta),
        x.numel(),
    )?;
    Ok(y)
}

fn group_dot(x: &Tensor, w: Option<&Tensor>, g: usize, t: usize, c: usize) -> Result<Tensor> {
    let y = Tensor::empty(x.gpu(), &[g, c], DType::F32)?;
    launch(
        &GROUP_DOT,
        &[&y, x, w.unwrap_or(x)],
        params(g * c, c, t, w.is_some(), 0.0),
        g * c,
    )?;
    Ok(y)
}
