//! The lookup-free quantizer of the BitDance tokenizer (GFQ): sign quantization, the code
//! index of each group of 8 bits, and the group-wise LFQ entropy loss with its gradient (read
//! from a GPU tensor, no readback). Its WGSL, `lfq.wgsl`, is appended to `loss.wgsl` and shares
//! its uniform.

pub(crate) mod check;
pub(crate) mod reference;
mod tape;

use super::data::reduce_columns;
use super::loss::{check_scalar, launch, params, Params, LOSS_VARIANTS};
use crate::{DType, Error, Result, Tensor};

shader! {
    /// `shaders/loss.wgsl` followed by `shaders/lfq.wgsl`.
    LFQ = "lfq", ["loss", "lfq"], Params, crate::gpu::Variants::Listed(LOSS_VARIANTS), false;
}

/// The shaders of this family, for validation.
#[cfg(test)]
pub(crate) const SHADERS: &[&crate::gpu::Shader] = &[&LFQ];

kernels! { LFQ_KERNELS = LFQ, Params;
    SIGN_QUANTIZE = "sign_quantize", [rw, r];
    LFQ_GROUP_INDICES = "lfq_group_indices", [rw, r];
    LFQ_ENTROPY_PARTIAL = "lfq_entropy_partial", [rw, r];
    LFQ_ENTROPY_FINISH = "lfq_entropy_finish", [rw, r];
    LFQ_ENTROPY_WEIGHTS = "lfq_entropy_weights", [rw, r];
    LFQ_ENTROPY_BACKWARD = "lfq_entropy_backward", [rw, r, r, r];
}

/// Every kernel this family declares, for the binding contract test.
#[cfg(test)]
pub(crate) const KERNELS: &[&[crate::gpu::Kernel]] = &[LFQ_KERNELS];

/// Bits per LFQ group (code indices in 0..256), as in the official tokenizer.
pub const LFQ_GROUP_BITS: usize = 8;

/// Most bits per group `lfq_entropy_loss` accepts (2^8 codes).
const MAX_GROUP_BITS: usize = 8;

/// Rows one thread of the entropy partial sums visits.
const ENTROPY_CHUNK: usize = 64;

/// Sign quantization: +1 where x > 0, else -1 (so 0 maps to -1, as the official GFQ's
/// `where(x > 0, 1, -1)`). Training uses the straight-through estimator
/// `x + (q - x).detach()`, whose backward is the identity: no kernel, pass dy through.
pub fn sign_quantize(x: &Tensor) -> Result<Tensor> {
    x.expect_dtype("sign_quantize", "x", DType::F32)?;
    let out = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    launch(
        &SIGN_QUANTIZE,
        &[&out, x],
        params(x.numel(), [0, 0, 0], 0.0, 0.0),
    )?;
    Ok(out)
}

/// LFQ code index of each group of 8 channels: x [.., C] (C % 8 == 0) -> u32 [.., C/8] with
/// index = sum_j [x[8g + j] > 0] << j: channel j of a group is bit j, least significant first,
/// exactly the official GFQ's `sum((q > 0) * 2^arange(8))` over `b n (c d)` groups.
pub fn lfq_group_indices(x: &Tensor) -> Result<Tensor> {
    x.expect_dtype("lfq_group_indices", "x", DType::F32)?;
    let c = x.shape().last().copied().unwrap_or(0);
    if c == 0 || !c.is_multiple_of(LFQ_GROUP_BITS) {
        return Err(Error::Shape {
            op: "lfq_group_indices",
            detail: format!(
                "last dim of {:?} must be a non-zero multiple of {LFQ_GROUP_BITS}",
                x.shape()
            ),
        });
    }
    let mut shape = x.shape().to_vec();
    *shape.last_mut().unwrap_or(&mut 0) = c / LFQ_GROUP_BITS;
    let out = Tensor::empty(x.gpu(), &shape, DType::U32)?;
    let groups = x.numel() / LFQ_GROUP_BITS;
    let p = params(groups, [LFQ_GROUP_BITS, 0, 0], 0.0, 0.0);
    launch(&LFQ_GROUP_INDICES, &[&out, x], p)?;
    Ok(out)
}

/// What `lfq_entropy_loss_backward` needs from the forward pass.
#[derive(Clone, Debug)]
pub struct LfqEntropySaved {
    /// [K + 1]: the batch-mean code distribution A (K = 2^bits), then the mean per-sample
    /// entropy S; loss = S - H(A).
    pub stats: Tensor,
    /// Shape of x in the forward pass.
    pub shape: Vec<usize>,
    /// Bits per group (C / groups).
    pub bits: usize,
    /// Softmax temperature.
    pub temperature: f32,
}

/// Group-wise LFQ entropy loss of the official GFQ (`entropy_loss`, weights 1): x [.., C] is
/// split into `groups` groups of d = C/groups bits (1..=8); each (sample, group) row has
/// p = softmax(2 x.c / T) over the 2^d codes c in {-1,1}^d (bit j = channel j). Loss [1] =
/// mean over all rows of the entropy of p, minus H(A) = -sum_k A_k ln(A_k + 1e-5) of the
/// distribution A averaged over all rows: samples AND groups pooled into one distribution,
/// as the official `reduce(probs, "... D -> D", "mean")` does. Returns the state for backward.
pub fn lfq_entropy_loss(
    x: &Tensor,
    groups: usize,
    temperature: f32,
) -> Result<(Tensor, LfqEntropySaved)> {
    const OP: &str = "lfq_entropy_loss";
    x.expect_dtype(OP, "x", DType::F32)?;
    let c = x.shape().last().copied().unwrap_or(0);
    let bits = if groups > 0 && c.is_multiple_of(groups) {
        c / groups
    } else {
        0
    };
    if !(1..=MAX_GROUP_BITS).contains(&bits) || x.numel() == 0 {
        return Err(Error::Shape {
            op: OP,
            detail: format!(
                "x {:?} must be non-empty with a last dim split into {groups} groups of 1..={MAX_GROUP_BITS} bits",
                x.shape()
            ),
        });
    }
    if !(temperature.is_finite() && temperature > 0.0) {
        return Err(Error::Invalid(format!(
            "{OP}: temperature must be positive and finite, found {temperature}"
        )));
    }
    let rows = x.numel() / bits;
    let codes = 1usize << bits;
    let parts = rows.div_ceil(ENTROPY_CHUNK).max(1);
    let partial = Tensor::empty(x.gpu(), &[parts, codes + 1], DType::F32)?;
    let z_scale = (4.0 / temperature as f64) as f32;
    let p = params(parts * (codes + 1), [bits, rows, parts], z_scale, 0.0);
    launch(&LFQ_ENTROPY_PARTIAL, &[&partial, x], p)?;
    let stats = reduce_columns(
        &partial,
        parts,
        codes + 1,
        false,
        (1.0 / rows as f64) as f32,
    )?;
    let loss = Tensor::empty(x.gpu(), &[1], DType::F32)?;
    launch(
        &LFQ_ENTROPY_FINISH,
        &[&loss, &stats],
        params(1, [codes, 0, 0], 0.0, 0.0),
    )?;
    let saved = LfqEntropySaved {
        stats,
        shape: x.shape().to_vec(),
        bits,
        temperature,
    };
    Ok((loss, saved))
}

/// Gradient of `lfq_entropy_loss` w.r.t. x (same shape) given its upstream gradient
/// `dloss` [1] (a GPU tensor) and the forward's saved state.
pub fn lfq_entropy_loss_backward(
    x: &Tensor,
    saved: &LfqEntropySaved,
    dloss: &Tensor,
) -> Result<Tensor> {
    const OP: &str = "lfq_entropy_loss_backward";
    x.expect_dtype(OP, "x", DType::F32)?;
    check_scalar(OP, dloss)?;
    if x.shape() != saved.shape.as_slice() {
        return Err(Error::Shape {
            op: OP,
            detail: format!("x {:?} is not the forward's {:?}", x.shape(), saved.shape),
        });
    }
    let bits = saved.bits;
    let codes = 1usize << bits;
    let rows = x.numel() / bits;
    let weights = Tensor::empty(x.gpu(), &[codes], DType::F32)?;
    launch(
        &LFQ_ENTROPY_WEIGHTS,
        &[&weights, &saved.stats],
        params(codes, [0, 0, 0], 0.0, 0.0),
    )?;
    let dx = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    let z_scale = (4.0 / saved.temperature as f64) as f32;
    let p = params(rows, [bits, 0, 0], z_scale, (1.0 / rows as f64) as f32);
    launch(&LFQ_ENTROPY_BACKWARD, &[&dx, x, &weights, dloss], p)?;
    Ok(dx)
}
