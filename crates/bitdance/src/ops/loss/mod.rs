//! Loss kernels: MSE and L1 of the BitDance tokenizer, each backward reading its upstream
//! scalar gradient from a GPU tensor (no readback). Their uniform and launch helpers also
//! serve the quantizer's kernels (`ops/lfq`), whose WGSL is appended to `loss.wgsl`.

pub(crate) mod check;
pub(crate) mod reference;
mod tape;

use super::data::{reduce_columns, reduce_parts};
use super::same_shape;
use crate::gpu::Kernel;
use crate::{DType, Error, Result, Tensor};

shader! {
    /// `shaders/loss.wgsl`.
    LOSS = "loss", ["loss"], Params, crate::gpu::Variants::Listed(LOSS_VARIANTS), false;
}

/// The shaders of this family, for validation.
#[cfg(test)]
pub(crate) const SHADERS: &[&crate::gpu::Shader] = &[&LOSS];

uniform! {
    /// The uniform of `loss.wgsl`; each entry point gives p1..p3, a and b their meaning.
    struct Params {
        /// Work items of the dispatch.
        n: u32,
        p1: u32, p2: u32, p3: u32,
        a: f32, b: f32,
    }
}

kernels! { LOSS_KERNELS = LOSS, Params;
    MSE_PARTIAL = "mse_partial", [rw, r, r];
    MSE_BACKWARD = "mse_backward", [rw, r, r, r];
    L1_PARTIAL = "l1_partial", [rw, r, r];
    L1_BACKWARD = "l1_backward", [rw, r, r, r];
}

/// Define sets of `shaders/loss.wgsl` the runtime uses (validated by naga).
pub const LOSS_VARIANTS: &[&[(&str, u32)]] = &[&[]];

/// The uniform of a loss kernel over n work items.
pub(crate) fn params(n: usize, p: [usize; 3], a: f32, b: f32) -> Params {
    Params {
        n: n as u32,
        p1: p[0] as u32,
        p2: p[1] as u32,
        p3: p[2] as u32,
        a,
        b,
    }
}

/// Dispatches `kernel` over p.n work items (nothing when there are none).
pub(crate) fn launch(kernel: &Kernel, tensors: &[&Tensor], p: Params) -> Result<()> {
    if p.n == 0 {
        return Ok(());
    }
    let items = p.n as usize;
    tensors[0]
        .gpu()
        .dispatch_items(kernel, &[], tensors, &p, items)
}

pub(crate) fn check_scalar(op: &'static str, dloss: &Tensor) -> Result<()> {
    dloss.expect_dtype(op, "dloss", DType::F32)?;
    if dloss.numel() != 1 {
        return Err(Error::Shape {
            op,
            detail: format!("dloss must hold one value, found {:?}", dloss.shape()),
        });
    }
    Ok(())
}

fn check_pair(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    same_shape(op, a, b)?;
    a.expect_dtype(op, "a", DType::F32)?;
    b.expect_dtype(op, "b", DType::F32)?;
    if a.numel() == 0 {
        return Err(Error::Shape {
            op,
            detail: "empty operands".into(),
        });
    }
    Ok(())
}

/// `mean((a - b)^2)` over all elements -> [1] (deterministic two-stage sum).
/// The commitment loss of the quantizer is `mse_loss(x, sign_quantize(x))`.
pub fn mse_loss(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    mean_of_pairs("mse_loss", &MSE_PARTIAL, a, b)
}

/// Gradients of `mse_loss` given its upstream gradient `dloss` [1] (a GPU tensor):
/// (da, db) = (2 (a - b) / n * dloss, -da).
pub fn mse_loss_backward(a: &Tensor, b: &Tensor, dloss: &Tensor) -> Result<(Tensor, Tensor)> {
    pair_gradients("mse_loss_backward", &MSE_BACKWARD, 2.0, a, b, dloss)
}

/// `mean(|a - b|)` over all elements -> [1] (deterministic two-stage sum).
pub fn l1_loss(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    mean_of_pairs("l1_loss", &L1_PARTIAL, a, b)
}

/// Gradients of `l1_loss` given `dloss` [1]: (da, db) = (sign(a - b) / n * dloss, -da).
pub fn l1_loss_backward(a: &Tensor, b: &Tensor, dloss: &Tensor) -> Result<(Tensor, Tensor)> {
    pair_gradients("l1_loss_backward", &L1_BACKWARD, 1.0, a, b, dloss)
}

/// The mean over all elements of an element-pair term whose partial sums `partial_kernel`
/// writes (`mse_partial`, `l1_partial`), reduced in a fixed order.
fn mean_of_pairs(
    op: &'static str,
    partial_kernel: &Kernel,
    a: &Tensor,
    b: &Tensor,
) -> Result<Tensor> {
    check_pair(op, a, b)?;
    let n = a.numel();
    let parts = reduce_parts(n);
    let partial = Tensor::empty(a.gpu(), &[parts], DType::F32)?;
    launch(
        partial_kernel,
        &[&partial, a, b],
        params(parts, [n, parts, 0], 0.0, 0.0),
    )?;
    reduce_columns(&partial, parts, 1, false, 1.0 / n as f32)
}

/// (da, db) of a pair loss from `grad_kernel` (`mse_backward`, `l1_backward`), which writes
/// `coef * term'(a - b) * dloss`; da takes coef = scale / n, db its negation.
fn pair_gradients(
    op: &'static str,
    grad_kernel: &Kernel,
    scale: f64,
    a: &Tensor,
    b: &Tensor,
    dloss: &Tensor,
) -> Result<(Tensor, Tensor)> {
    check_pair(op, a, b)?;
    check_scalar(op, dloss)?;
    let n = a.numel();
    let grad = |coef: f32| -> Result<Tensor> {
        let out = Tensor::empty(a.gpu(), a.shape(), DType::F32)?;
        launch(
            grad_kernel,
            &[&out, a, b, dloss],
            params(n, [0, 0, 0], coef, 0.0),
        )?;
        Ok(out)
    };
    let coef = scale / n as f64;
    Ok((grad(coef as f32)?, grad(-coef as f32)?))
}

/// Every kernel this family declares, for the binding contract test.
#[cfg(test)]
pub(crate) const KERNELS: &[&[crate::gpu::Kernel]] = &[LOSS_KERNELS];
