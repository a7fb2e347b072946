//! The autoencoder's operations over the same two backends as the transformer (`Graph`): the
//! autograd tape for training, `Eager` for inference (where a convolution's weight may be held
//! in output-channel chunks). `ConvGraph` adds the image ops to `Graph`; the ResBlock, the
//! norm + swish and the AdaptiveGroupNorm are written once over it, on typed weights.

use super::ae_weights::{Conv, ResBlock};
use super::graph::{Eager, Graph};
use super::weights::{Linear, NormAffine};
use crate::autograd::{Tape, Var};
use crate::{ops, Error, Result, Tensor};

/// GroupNorm groups and epsilon of every norm in the autoencoder.
pub(super) const GROUPS: usize = 32;
pub(super) const EPS: f32 = 1e-6;

/// The image operations of the autoencoder, beside those of `Graph`.
pub(super) trait ConvGraph: Graph {
    /// 2D convolution of x [B, Cin, H, W] by `conv` (symmetric zero padding `pad`).
    fn conv(
        &self,
        x: &Self::Value,
        conv: &Conv<Self::Value>,
        stride: usize,
        pad: usize,
    ) -> Result<Self::Value>;
    /// GroupNorm(32, eps 1e-6) of x [B, C, H, W], with the affine map when given.
    fn group_norm(
        &self,
        x: &Self::Value,
        affine: Option<&NormAffine<Self::Value>>,
    ) -> Result<Self::Value>;
    /// SiLU of `group_norm(x, Some(affine))` (one kernel on plain tensors).
    fn group_norm_silu(
        &self,
        x: &Self::Value,
        affine: &NormAffine<Self::Value>,
    ) -> Result<Self::Value>;
    /// GroupNorm(32, eps 1e-6) without affine, then `scale[b, c]` and `shift[b, c]` ([B, C]).
    fn adaptive_group_norm(
        &self,
        x: &Self::Value,
        scale: &Self::Value,
        shift: &Self::Value,
    ) -> Result<Self::Value>;
    /// DCR depth-to-space by `block`.
    fn depth_to_space(&self, x: &Self::Value, block: usize) -> Result<Self::Value>;
    /// Per-(batch, channel) mean and sqrt(unbiased variance + eps) of z [B, C, h, w], each [B, C].
    fn channel_stats(&self, z: &Self::Value) -> Result<(Self::Value, Self::Value)>;
    /// The decoder moved to a larger resolution, whose feature maps share no size with those
    /// before: inference frees the pooled buffers of the last level (`x`: the new input; see
    /// `Gpu::pool_phase`).
    fn next_level(&self, _x: &Self::Value) {}
}

/// Linear layer with its bias.
pub(super) fn linear<G: Graph>(g: &G, x: &G::Value, l: &Linear<G::Value>) -> Result<G::Value> {
    g.linear(x, &l.weight, l.bias.as_ref())
}

/// GroupNorm with its affine map, then swish.
pub(super) fn norm_silu<G: ConvGraph>(
    g: &G,
    x: &G::Value,
    norm: &NormAffine<G::Value>,
) -> Result<G::Value> {
    g.group_norm_silu(x, norm)
}

/// ResBlock: norm1 -> swish -> conv1 3x3 -> norm2 -> swish -> conv2 3x3, plus the input,
/// through the 1x1 `nin_shortcut` when the channel count changes.
pub(super) fn res_block<G: ConvGraph>(
    g: &G,
    x: &G::Value,
    b: &ResBlock<G::Value>,
) -> Result<G::Value> {
    let h = norm_silu(g, x, &b.norm1)?;
    let h = g.conv(&h, &b.conv1, 1, 1)?;
    let h = norm_silu(g, &h, &b.norm2)?;
    let h = g.conv(&h, &b.conv2, 1, 1)?;
    let residual = match &b.nin_shortcut {
        Some(shortcut) => g.conv(x, shortcut, 1, 0)?,
        None => x.clone(),
    };
    g.add(&h, &residual)
}

/// Eager: convolutions by chunks of output channels when the weight is split.
impl ConvGraph for Eager {
    fn conv(&self, x: &Tensor, conv: &Conv<Tensor>, stride: usize, pad: usize) -> Result<Tensor> {
        let b = conv.bias.as_ref();
        if let [w] = &conv.weight[..] {
            return ops::conv2d(x, w, b, stride, pad);
        }
        let mut outputs = Vec::with_capacity(conv.weight.len());
        let mut first = 0;
        for w in &conv.weight {
            let n = w.shape()[0];
            let bias = b.map(|b| ops::slice(b, 0, first, n)).transpose()?;
            outputs.push(ops::conv2d(x, w, bias.as_ref(), stride, pad)?);
            first += n;
        }
        let refs: Vec<&Tensor> = outputs.iter().collect();
        ops::concat(&refs, 1)
    }

    fn group_norm(&self, x: &Tensor, affine: Option<&NormAffine<Tensor>>) -> Result<Tensor> {
        let (w, b) = affine.map(|a| (&a.weight, &a.bias)).unzip();
        ops::group_norm(x, GROUPS, w, b, EPS)
    }

    fn group_norm_silu(&self, x: &Tensor, affine: &NormAffine<Tensor>) -> Result<Tensor> {
        ops::group_norm_silu(x, GROUPS, Some(&affine.weight), Some(&affine.bias), EPS)
    }
    fn adaptive_group_norm(&self, x: &Tensor, scale: &Tensor, shift: &Tensor) -> Result<Tensor> {
        ops::adaptive_group_norm(x, GROUPS, scale, shift, EPS)
    }

    fn depth_to_space(&self, x: &Tensor, block: usize) -> Result<Tensor> {
        ops::depth_to_space(x, block)
    }

    fn next_level(&self, x: &Tensor) {
        x.gpu().trim_phase();
    }

    fn channel_stats(&self, z: &Tensor) -> Result<(Tensor, Tensor)> {
        let s = z.shape();
        let rows = z.reshape(&[s[0] * s[1], s[2] * s[3]])?;
        let (mean, std) = ops::row_stats(&rows, EPS)?;
        Ok((mean.reshape(&s[..2])?, std.reshape(&s[..2])?))
    }
}

/// Training: weights whole (one chunk), every op recorded with its backward.
impl ConvGraph for Tape {
    fn conv(&self, x: &Var, conv: &Conv<Var>, stride: usize, pad: usize) -> Result<Var> {
        let [w] = conv.weight[..] else {
            return Err(Error::Invalid(
                "conv: a weight held in chunks is for inference, not for the autograd tape".into(),
            ));
        };
        self.conv2d(*x, w, conv.bias, stride, pad)
    }

    fn group_norm(&self, x: &Var, affine: Option<&NormAffine<Var>>) -> Result<Var> {
        Tape::group_norm(self, *x, GROUPS, affine.map(|a| (a.weight, a.bias)), EPS)
    }

    // Composed (the fused kernel has no backward): the GroupNorm, then the per-(batch, channel)
    // affine map as one per-row affine over the [B·C] rows.
    fn group_norm_silu(&self, x: &Var, affine: &NormAffine<Var>) -> Result<Var> {
        let y = ConvGraph::group_norm(self, x, Some(affine))?;
        Tape::silu(self, y)
    }
    fn adaptive_group_norm(&self, x: &Var, scale: &Var, shift: &Var) -> Result<Var> {
        let s = self.shape(*x);
        let y = Tape::group_norm(self, *x, GROUPS, None, EPS)?;
        let rows = [s[0] * s[1]];
        let (scale, shift) = (self.reshape(*scale, &rows)?, self.reshape(*shift, &rows)?);
        self.row_affine(y, scale, shift)
    }

    fn depth_to_space(&self, x: &Var, block: usize) -> Result<Var> {
        Tape::depth_to_space(self, *x, block)
    }

    fn channel_stats(&self, z: &Var) -> Result<(Var, Var)> {
        let s = self.shape(*z);
        let rows = self.reshape(*z, &[s[0] * s[1], s[2] * s[3]])?;
        let (mean, std) = self.row_stats(rows, EPS)?;
        Ok((self.reshape(mean, &s[..2])?, self.reshape(std, &s[..2])?))
    }
}
