//! Losses: mean squared error, sign quantization with its straight-through gradient, the
//! LFQ group indices and the group-wise LFQ entropy loss.

use crate::{ops, Result, Tensor};

/// Define sets of `shaders/loss.wgsl` the runtime uses (validated by naga).
pub const LOSS_VARIANTS: &[&[(&str, u32)]] = &[&[]];

/// mean((a - b)²) -> [1].
pub fn mse_loss(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let diff = ops::sub(a, b)?;
    ops::sum_squares_scaled(&diff, 1.0 / a.numel().max(1) as f32)
}

/// Gradients of `mse_loss` w.r.t. a and b given the upstream [1] gradient `dloss`:
/// da = 2 (a - b) dloss / n, db = -da.
pub fn mse_loss_backward(a: &Tensor, b: &Tensor, dloss: &Tensor) -> Result<(Tensor, Tensor)> {
    let diff = ops::sub(a, b)?;
    let n = a.numel().max(1) as f32;
    Ok((
        ops::scale_by_scalar(&diff, dloss, 2.0 / n)?,
        ops::scale_by_scalar(&diff, dloss, -2.0 / n)?,
    ))
}
