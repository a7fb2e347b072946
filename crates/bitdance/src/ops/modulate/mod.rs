//! adaLN modulation and gated residuals of the diffusion head: x [G, T, C] with per-group
//! [G, C] operands broadcast over the T tokens of each group, forward and backward.

pub(crate) mod check;
pub(crate) mod reference;
mod tape;

use super::{check_same, shape_err};
use crate::gpu::{Kernel, VEC};
use crate::{DType, Result, Tensor};

shader! {
    /// `shaders/modulate.wgsl`.
    MODULATE_SHADER = "modulate", ["modulate"], Params,
        crate::gpu::Variants::Listed(crate::ops::VEC_VARIANTS), false;
}

/// The shaders of this family, for validation.
#[cfg(test)]
pub(crate) const SHADERS: &[&crate::gpu::Shader] = &[&MODULATE_SHADER];

uniform! {
    /// The uniform of `modulate.wgsl`.
    struct Params {
        /// Threads: G*T*C elements (forward) or G*C pairs (backward).
        n: u32,
        /// Channels C.
        c: u32,
        /// Tokens per group T.
        tokens: u32,
    }
}

kernels! { MODULATE_KERNELS = MODULATE_SHADER, Params;
    MODULATE = "modulate", [rw, r, r, r];
    MODULATE_BACKWARD = "modulate_backward", [rw, rw, rw, r, r, r];
    GATED_RESIDUAL = "gated_residual", [rw, r, r, r];
    GATED_RESIDUAL_BACKWARD = "gated_residual_backward", [rw, rw, rw, r, r, r];
}

/// Every kernel this family declares, for the binding contract test.
#[cfg(test)]
pub(crate) const KERNELS: &[&[Kernel]] = &[MODULATE_KERNELS];

/// Dispatches `kernel` over `items` threads for C = `c` channels and T = `tokens`: over vec4s
/// when C is a multiple of 4 (items and C then counted in vec4s), else over scalars.
fn launch(
    kernel: &Kernel,
    tensors: &[&Tensor],
    items: usize,
    c: usize,
    tokens: usize,
) -> Result<()> {
    let width = if c.is_multiple_of(4) { 4 } else { 1 };
    let p = Params {
        n: (items / width) as u32,
        c: (c / width) as u32,
        tokens: tokens as u32,
    };
    let defines = [(VEC, width as u32)];
    tensors[0]
        .gpu()
        .dispatch_items(kernel, &defines, tensors, &p, items / width)
}

/// (G, T, C) of `x [G, T.., C]` (T = 1 for [G, C]) with a per-group operand `[G, C]`
/// (any shape of G*C elements whose first dim is G and last dim is C).
pub(crate) fn groups(
    op: &'static str,
    x: &Tensor,
    per_group: &[(&str, &Tensor)],
) -> Result<(usize, usize, usize)> {
    x.expect_dtype(op, "x", DType::F32)?;
    let s = x.shape();
    if s.len() < 2 || s[0] == 0 || s[s.len() - 1] == 0 {
        return Err(shape_err(
            op,
            format!("x {s:?} must be [G, T, C] or [G, C] with G, C > 0"),
        ));
    }
    let (g, c) = (s[0], s[s.len() - 1]);
    let t = x.numel() / (g * c);
    for (what, p) in per_group {
        let ps = p.shape();
        if p.numel() != g * c || ps.first() != Some(&g) || ps.last() != Some(&c) {
            return Err(shape_err(
                op,
                format!("{what} {ps:?} must be [{g}, {c}] to broadcast over x {s:?}"),
            ));
        }
    }
    Ok((g, t, c))
}

/// adaLN modulation `x * (1 + scale) + shift`, arguments in the order (x, shift, scale):
/// x [G, T, C] (or [G, C], T = 1), shift and scale [G, C] broadcast over the T tokens of
/// group g. Returns y with the shape of x.
pub fn modulate(x: &Tensor, shift: &Tensor, scale: &Tensor) -> Result<Tensor> {
    let (g, t, c) = groups("modulate", x, &[("shift", shift), ("scale", scale)])?;
    let y = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    let n = g * t * c;
    launch(&MODULATE, &[&y, x, shift, scale], n, c, t)?;
    Ok(y)
}

/// Backward of `modulate`, arguments (x, scale, dy) with x, dy [G, T, C] and scale [G, C].
/// Returns `(dx [G, T, C], dshift [G, C], dscale [G, C])` (shift/scale-shaped like `scale`).
pub fn modulate_backward(
    x: &Tensor,
    scale: &Tensor,
    dy: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    const OP: &str = "modulate_backward";
    let (g, t, c) = groups(OP, x, &[("scale", scale)])?;
    check_same(OP, "dy", dy, x)?;
    let gpu = x.gpu();
    let dx = Tensor::empty(gpu, x.shape(), DType::F32)?;
    let dshift = Tensor::empty(gpu, scale.shape(), DType::F32)?;
    let dscale = Tensor::empty(gpu, scale.shape(), DType::F32)?;
    launch(
        &MODULATE_BACKWARD,
        &[&dx, &dshift, &dscale, x, scale, dy],
        g * c,
        c,
        t,
    )?;
    Ok((dx, dshift, dscale))
}

/// Gated residual `x + gate * h`, arguments in the order (x, gate, h): x and h [G, T, C]
/// (or [G, C]), gate [G, C] broadcast over the T tokens of group g.
pub fn gated_residual(x: &Tensor, gate: &Tensor, h: &Tensor) -> Result<Tensor> {
    const OP: &str = "gated_residual";
    let (g, t, c) = groups(OP, x, &[("gate", gate)])?;
    check_same(OP, "h", h, x)?;
    let y = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    let n = g * t * c;
    launch(&GATED_RESIDUAL, &[&y, x, gate, h], n, c, t)?;
    Ok(y)
}

/// Backward of `gated_residual`, arguments (gate, h, dy) with h, dy [G, T, C] and gate [G, C].
/// Returns `(dx, dgate, dh)`: dx is a fresh copy of dy, dgate [G, C], dh [G, T, C].
pub fn gated_residual_backward(
    gate: &Tensor,
    h: &Tensor,
    dy: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    const OP: &str = "gated_residual_backward";
    let (g, t, c) = groups(OP, h, &[("gate", gate)])?;
    if dy.shape() != h.shape() {
        return Err(shape_err(
            OP,
            format!("dy {:?} differs from h {:?}", dy.shape(), h.shape()),
        ));
    }
    let gpu = h.gpu();
    let dx = Tensor::empty(gpu, h.shape(), DType::F32)?;
    let dgate = Tensor::empty(gpu, gate.shape(), DType::F32)?;
    let dh = Tensor::empty(gpu, h.shape(), DType::F32)?;
    launch(
        &GATED_RESIDUAL_BACKWARD,
        &[&dx, &dgate, &dh, gate, h, dy],
        g * c,
        c,
        t,
    )?;
    Ok((dx, dgate, dh))
}
