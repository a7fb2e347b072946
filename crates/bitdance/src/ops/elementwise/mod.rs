//! Element-wise ops: fill, a*x+b*y, mul, scale, row-broadcast add, SiLU and SwiGLU gating.

pub(crate) mod check;
pub(crate) mod reference;
mod tape;

use super::same_shape;
use crate::gpu::{Kernel, VEC};
use crate::{DType, Error, Result, Tensor};

shader! {
    /// `shaders/elementwise.wgsl`.
    ELEMENTWISE = "elementwise", ["elementwise"], Params,
        crate::gpu::Variants::Listed(crate::ops::VEC_VARIANTS), false;
}

/// The shaders of this family, for validation.
#[cfg(test)]
pub(crate) const SHADERS: &[&crate::gpu::Shader] = &[&ELEMENTWISE];

kernels! { ELEMENTWISE_KERNELS = ELEMENTWISE, Params;
    FILL = "fill", [rw];
    AXPBY = "axpby", [rw, r, r];
    AXPBY_INPLACE = "axpby_inplace", [rw, r];
    MUL = "mul", [rw, r, r];
    SCALE = "scale", [rw, r];
    ADD_BCAST = "add_bcast", [rw, r, r];
    SCALE_BY_SCALAR = "scale_by_scalar", [rw, r, r];
    SILU = "silu", [rw, r];
    SILU_BACKWARD = "silu_backward", [rw, r, r];
    SWIGLU = "swiglu", [rw, r];
    SWIGLU_BACKWARD = "swiglu_backward", [rw, r, r];
}

uniform! {
    /// The uniform of `elementwise.wgsl`.
    struct Params {
        /// Elements of the output.
        n: u32,
        /// Broadcast period (add_bcast) or half width (swiglu).
        m: u32,
        alpha: f32,
        beta: f32,
        /// Fill pattern.
        bits: u32,
    }
}

/// The uniform of an element-wise op.
fn params(n: usize, m: usize, alpha: f32, beta: f32, bits: u32) -> Params {
    Params {
        n: n as u32,
        m: m as u32,
        alpha,
        beta,
        bits,
    }
}

/// `launch` over vec4s when the element count n and the period m are multiples of 4 (both
/// then counted in vec4s), else over scalars.
fn launch_vec(kernel: &Kernel, out: &Tensor, inputs: &[&Tensor], mut p: Params) -> Result<()> {
    if p.n.is_multiple_of(4) && p.m.is_multiple_of(4) {
        p.n /= 4;
        p.m /= 4;
        launch(kernel, 4, out, inputs, p)
    } else {
        launch(kernel, 1, out, inputs, p)
    }
}

/// Dispatches `kernel` at element width `width` (1 or 4) over p.n elements.
fn launch(kernel: &Kernel, width: u32, out: &Tensor, inputs: &[&Tensor], p: Params) -> Result<()> {
    let mut all = vec![out];
    all.extend_from_slice(inputs);
    let items = p.n as usize;
    out.gpu()
        .dispatch_items(kernel, &[(VEC, width)], &all, &p, items)
}

/// Fills every element of `t` with the 32-bit pattern `bits` (f32 or u32).
pub fn fill_bits(t: &Tensor, bits: u32) -> Result<()> {
    launch_vec(&FILL, t, &[], params(t.numel(), 0, 0.0, 0.0, bits))
}

/// `alpha * a + beta * b`, same shapes.
pub fn axpby(alpha: f32, a: &Tensor, beta: f32, b: &Tensor) -> Result<Tensor> {
    same_shape("axpby", a, b)?;
    let out = Tensor::empty(a.gpu(), a.shape(), DType::F32)?;
    launch_vec(&AXPBY, &out, &[a, b], params(a.numel(), 0, alpha, beta, 0))?;
    Ok(out)
}

/// `a + b`, same shapes.
pub fn add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    axpby(1.0, a, 1.0, b)
}

/// `a - b`, same shapes.
pub fn sub(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    axpby(1.0, a, -1.0, b)
}

/// In place: `acc = alpha * acc + beta * a` (gradient accumulation, EMA).
pub fn axpby_inplace(alpha: f32, acc: &Tensor, beta: f32, a: &Tensor) -> Result<()> {
    same_shape("axpby_inplace", acc, a)?;
    if acc.same_storage(a) {
        return Err(Error::Invalid(
            "axpby_inplace: accumulator and operand share storage".into(),
        ));
    }
    launch_vec(
        &AXPBY_INPLACE,
        acc,
        &[a],
        params(a.numel(), 0, alpha, beta, 0),
    )
}

/// `a * b` element-wise, same shapes.
pub fn mul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    same_shape("mul", a, b)?;
    let out = Tensor::empty(a.gpu(), a.shape(), DType::F32)?;
    launch_vec(&MUL, &out, &[a, b], params(a.numel(), 0, 0.0, 0.0, 0))?;
    Ok(out)
}

/// `alpha * a`.
pub fn scale(a: &Tensor, alpha: f32) -> Result<Tensor> {
    let out = Tensor::empty(a.gpu(), a.shape(), DType::F32)?;
    launch_vec(&SCALE, &out, &[a], params(a.numel(), 0, alpha, 0.0, 0))?;
    Ok(out)
}

/// `alpha * s[0] * a` with `s` a GPU tensor of at least one element (no readback).
pub fn scale_by_scalar(a: &Tensor, s: &Tensor, alpha: f32) -> Result<Tensor> {
    if s.numel() == 0 {
        return Err(Error::Shape {
            op: "scale_by_scalar",
            detail: "empty scalar tensor".into(),
        });
    }
    let out = Tensor::empty(a.gpu(), a.shape(), DType::F32)?;
    launch_vec(
        &SCALE_BY_SCALAR,
        &out,
        &[a, s],
        params(a.numel(), 0, alpha, 0.0, 0),
    )?;
    Ok(out)
}

/// `a[.., j] + bias[j]`: a [.., n], bias [n].
pub fn add_bias(a: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let n = *a.shape().last().unwrap_or(&1);
    if bias.numel() != n || n == 0 {
        return Err(Error::Shape {
            op: "add_bias",
            detail: format!(
                "bias {:?} does not match the last dim of {:?}",
                bias.shape(),
                a.shape()
            ),
        });
    }
    let out = Tensor::empty(a.gpu(), a.shape(), DType::F32)?;
    launch_vec(
        &ADD_BCAST,
        &out,
        &[a, bias],
        params(a.numel(), n, 0.0, 0.0, 0),
    )?;
    Ok(out)
}

/// `x * sigmoid(x)`.
pub fn silu(x: &Tensor) -> Result<Tensor> {
    let out = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    launch_vec(&SILU, &out, &[x], params(x.numel(), 0, 0.0, 0.0, 0))?;
    Ok(out)
}

/// Gradient of `silu` at `x` given the output gradient `dy`.
pub fn silu_backward(x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    same_shape("silu_backward", x, dy)?;
    let out = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    launch_vec(
        &SILU_BACKWARD,
        &out,
        &[x, dy],
        params(x.numel(), 0, 0.0, 0.0, 0),
    )?;
    Ok(out)
}

fn swiglu_half(op: &'static str, x: &Tensor) -> Result<(usize, usize)> {
    let w = *x.shape().last().unwrap_or(&0);
    if w == 0 || !w.is_multiple_of(2) {
        return Err(Error::Shape {
            op,
            detail: format!("last dim of {:?} must be even and non-zero", x.shape()),
        });
    }
    Ok((x.numel() / w, w / 2))
}

/// SwiGLU gating on the two halves of the last dim: x [.., 2h] -> silu(x[.., :h]) * x[.., h:].
pub fn swiglu(x: &Tensor) -> Result<Tensor> {
    let (rows, h) = swiglu_half("swiglu", x)?;
    let mut shape = x.shape().to_vec();
    *shape.last_mut().unwrap_or(&mut 0) = h;
    let out = Tensor::empty(x.gpu(), &shape, DType::F32)?;
    launch_vec(&SWIGLU, &out, &[x], params(rows * h, h, 0.0, 0.0, 0))?;
    Ok(out)
}

/// Gradient of `swiglu` w.r.t. x [.., 2h] given dy [.., h].
pub fn swiglu_backward(x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let (rows, h) = swiglu_half("swiglu_backward", x)?;
    if dy.numel() != rows * h {
        return Err(Error::Shape {
            op: "swiglu_backward",
            detail: format!(
                "dy {:?} does not match x {:?} halved",
                dy.shape(),
                x.shape()
            ),
        });
    }
    let out = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    launch_vec(
        &SWIGLU_BACKWARD,
        &out,
        &[x, dy],
        params(dy.numel(), h, 0.0, 0.0, 0),
    )?;
    Ok(out)
}

/// Every kernel this family declares, for the binding contract test.
#[cfg(test)]
pub(crate) const KERNELS: &[&[crate::gpu::Kernel]] = &[ELEMENTWISE_KERNELS];
