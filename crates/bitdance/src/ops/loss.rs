//! Losses: mean squared error, sign quantization (lookup-free) with its straight-through
//! gradient, the LFQ group indices and the group-wise entropy loss of BitDance's GFQ.

use crate::gpu::{Access, Kernel};
use crate::shaders::LOSS;
use crate::{ops, DType, Error, Result, Tensor};

/// Define sets of `shaders/loss.wgsl` the runtime uses (validated by naga).
pub const LOSS_VARIANTS: &[&[(&str, u32)]] = &[&[]];

/// Bits per LFQ group (codes per group: 256).
pub const LFQ_GROUP_BITS: usize = 8;

const RW: Access = Access::ReadWrite;
const R: Access = Access::Read;
const S: Access = Access::Skip;
const SIGN: Kernel = Kernel {
    shader: &LOSS,
    entry: "sign_quantize",
    bindings: &[RW, S, R],
};
const INDICES: Kernel = Kernel {
    shader: &LOSS,
    entry: "group_indices",
    bindings: &[S, S, R, S, S, RW],
};
const PROBS: Kernel = Kernel {
    shader: &LOSS,
    entry: "entropy_probs",
    bindings: &[RW, RW, R],
};
const FINALIZE: Kernel = Kernel {
    shader: &LOSS,
    entry: "entropy_finalize",
    bindings: &[RW, RW, S, R, R],
};
const BACKWARD: Kernel = Kernel {
    shader: &LOSS,
    entry: "entropy_backward",
    bindings: &[RW, S, R, R, R],
};

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

fn launch(kernel: &Kernel, tensors: &[&Tensor], p: [u32; 4], threads: usize) -> Result<()> {
    let gpu = tensors[0].gpu();
    let grid = gpu.grid(kernel.entry, (threads as u32).div_ceil(64))?;
    gpu.dispatch(kernel, &[], tensors, &p, grid)
}

/// Sign quantization: +1 where x > 0, else -1 (0 maps to -1, as the official quantizer).
/// In training the straight-through estimator passes the gradient through unchanged
/// (`x + (q - x).detach()`), so its backward is the identity and needs no kernel.
pub fn sign_quantize(x: &Tensor) -> Result<Tensor> {
    let q = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    launch(&SIGN, &[&q, x], [x.numel() as u32, 0, 0, 0], x.numel())?;
    Ok(q)
}

/// (rows, channels, samples) of an LFQ input [.., C] with C a multiple of 8.
fn lfq_geometry(op: &'static str, x: &Tensor) -> Result<(usize, usize, usize)> {
    let c = *x.shape().last().unwrap_or(&0);
    if c == 0 || !c.is_multiple_of(LFQ_GROUP_BITS) {
        return Err(Error::Shape {
            op,
            detail: format!(
                "last dim of {:?} must be a non-zero multiple of 8",
                x.shape()
            ),
        });
    }
    let n = x.numel() / c;
    Ok((n, c, n * c / LFQ_GROUP_BITS))
}

/// Code index of every group of 8 bits: x [.., C] -> u32 [.., C/8] with index =
/// Σ_d [x_d > 0] · 2^d (bit d of the group is channel 8g + d), as the official GFQ.
pub fn lfq_group_indices(x: &Tensor) -> Result<Tensor> {
    let (_, c, samples) = lfq_geometry("lfq_group_indices", x)?;
    let mut shape = x.shape().to_vec();
    *shape.last_mut().unwrap_or(&mut 0) = c / LFQ_GROUP_BITS;
    let out = Tensor::empty(x.gpu(), &shape, DType::U32)?;
    launch(
        &INDICES,
        &[x, &out],
        [0, c as u32, samples as u32, 0],
        samples,
    )?;
    Ok(out)
}

/// Result of `lfq_entropy_loss`: the loss and what its backward needs.
pub struct LfqEntropy {
    /// [3]: loss = mean sample entropy − codebook entropy, then those two terms.
    pub terms: Tensor,
    /// dA/da for the 256 codes (A = codebook entropy of the mean distribution).
    codebook_grad: Tensor,
    temperature: f32,
}

impl LfqEntropy {
    /// The loss as a [1] tensor (the first element of `terms`).
    pub fn loss(&self) -> Result<Tensor> {
        ops::slice(&self.terms, 0, 0, 1)
    }
}

/// The GFQ entropy loss of x [.., C]: per sample (row, group of 8) the distribution
/// p = softmax(2 x·c / temperature) over the 256 codes; loss = mean over samples of H(p)
/// − H(mean over all samples and groups of p), with H(a) = −Σ a log(a + 1e-5) for the latter.
pub fn lfq_entropy_loss(x: &Tensor, temperature: f32) -> Result<LfqEntropy> {
    let (_, c, samples) = lfq_geometry("lfq_entropy_loss", x)?;
    if temperature <= 0.0 || !temperature.is_finite() {
        return Err(Error::Invalid(format!(
            "lfq_entropy_loss: temperature {temperature} must be positive"
        )));
    }
    let gpu = x.gpu();
    let p = [0, c as u32, samples as u32, (1.0 / temperature).to_bits()];
    let probs = Tensor::empty(gpu, &[samples, 256], DType::F32)?;
    let entropy = Tensor::empty(gpu, &[samples], DType::F32)?;
    launch(&PROBS, &[&probs, &entropy, x], p, samples)?;
    let sums = ops::sum_rows(&probs)?;
    let mean_entropy = ops::mean_all(&entropy)?;
    let terms = Tensor::empty(gpu, &[3], DType::F32)?;
    let codebook_grad = Tensor::empty(gpu, &[256], DType::F32)?;
    gpu.dispatch(
        &FINALIZE,
        &[],
        &[&terms, &codebook_grad, &sums, &mean_entropy],
        &p,
        [1, 1, 1],
    )?;
    Ok(LfqEntropy {
        terms,
        codebook_grad,
        temperature,
    })
}

/// Gradient of the entropy loss w.r.t. x, scaled by the upstream [1] gradient `dloss`.
pub fn lfq_entropy_loss_backward(x: &Tensor, saved: &LfqEntropy, dloss: &Tensor) -> Result<Tensor> {
    let (_, c, samples) = lfq_geometry("lfq_entropy_loss_backward", x)?;
    let dx = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    let p = [
        0,
        c as u32,
        samples as u32,
        (1.0 / saved.temperature).to_bits(),
    ];
    launch(
        &BACKWARD,
        &[&dx, x, &saved.codebook_grad, dloss],
        p,
        samples,
    )?;
    Ok(dx)
}
