//! Loss kernels: MSE, sign quantization (LFQ/GFQ), LFQ code indices and the group-wise LFQ
//! entropy loss of the BitDance tokenizer, each backward reading its upstream scalar gradient
//! from a GPU tensor (no readback).

pub(crate) mod reference;
pub(crate) mod check;
mod tape;

use super::data::{reduce_columns, reduce_parts};
use super::same_shape;
use crate::gpu::Kernel;
use crate::{DType, Error, Result, Tensor};

shader!(
    /// `shaders/loss.wgsl`.
    LOSS = "loss",
    ["loss"],
    crate::gpu::Variants::Listed(LOSS_VARIANTS),
    false
);

/// The shaders of this family, for validation.
#[cfg(test)]
pub(crate) const SHADERS: &[&crate::gpu::Shader] = &[&LOSS];



uniform! {
    /// The uniform of `loss.wgsl`; each entry point gives p1..p3, a and b their meaning.
    struct Params {
        /// Work items of the dispatch.
        n: u32,
        p1: u32,
        p2: u32,
        p3: u32,
        a: f32,
        b: f32,
    }
}

kernels! { LOSS_KERNELS = LOSS, Params;
    SIGN_QUANTIZE = "sign_quantize", [rw, r];
    LFQ_GROUP_INDICES = "lfq_group_indices", [rw, r];
    MSE_PARTIAL = "mse_partial", [rw, r, r];
    MSE_BACKWARD = "mse_backward", [rw, r, r, r];
    L1_PARTIAL = "l1_partial", [rw, r, r];
    L1_BACKWARD = "l1_backward", [rw, r, r, r];
    LFQ_ENTROPY_PARTIAL = "lfq_entropy_partial", [rw, r];
    LFQ_ENTROPY_FINISH = "lfq_entropy_finish", [rw, r];
    LFQ_ENTROPY_WEIGHTS = "lfq_entropy_weights", [rw, r];
    LFQ_ENTROPY_BACKWARD = "lfq_entropy_backward", [rw, r, r, r];
}

/// Define sets of `shaders/loss.wgsl` the runtime uses (validated by naga).
pub const LOSS_VARIANTS: &[&[(&str, u32)]] = &[&[]];

/// Bits per LFQ group (code indices in 0..256), as in the official tokenizer.
pub const LFQ_GROUP_BITS: usize = 8;

/// Most bits per group `lfq_entropy_loss` accepts (2^8 codes).
const MAX_GROUP_BITS: usize = 8;

/// Rows one thread of the entropy partial sums visits.
const ENTROPY_CHUNK: usize = 64;

/// The uniform of a loss kernel over n work items.
fn params(n: usize, p: [usize; 3], a: f32, b: f32) -> Params {
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
fn launch(kernel: &Kernel, tensors: &[&Tensor], p: Params) -> Result<()> {
    if p.n == 0 {
        return Ok(());
    }
    let items = p.n as usize;
    tensors[0].gpu().dispatch_items(kernel, &[], tensors, &p, items)
}

fn check_scalar(op: &'static str, dloss: &Tensor) -> Result<()> {
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

/// Every kernel this family declares, for the binding contract test.
#[cfg(test)]
pub(crate) const KERNELS: &[&[crate::gpu::Kernel]] = &[LOSS_KERNELS];
