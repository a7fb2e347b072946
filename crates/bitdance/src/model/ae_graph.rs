//! The autoencoder's building blocks over two backends: plain tensors for inference (weights
//! may be held in row chunks; nothing is kept alive beyond its use) and tape values for
//! training. The encoder and decoder are written once against `AeGraph`.

use super::{ParamStore, ParamVars};
use crate::autograd::{Tape, Var};
use crate::{ops, Result, Tensor};

/// GroupNorm groups and epsilon of every norm in the autoencoder.
pub(super) const GROUPS: usize = 32;
pub(super) const EPS: f32 = 1e-6;

/// The operations of the autoencoder, reading parameters `{prefix}.{name}`.
pub(super) trait AeGraph {
    /// A value: a tensor, or a tape variable.
    type V: Clone;
    /// Shape of a value.
    fn shape(&self, x: &Self::V) -> Vec<usize>;
    /// Convolution with `{name}.weight` (and `{name}.bias`), symmetric padding.
    fn conv(
        &self,
        x: &Self::V,
        name: &str,
        bias: bool,
        stride: usize,
        pad: usize,
    ) -> Result<Self::V>;
    /// GroupNorm(32, eps 1e-6), with the affine `{name}.weight/bias` when `name` is given.
    fn group_norm(&self, x: &Self::V, name: Option<&str>) -> Result<Self::V>;
    /// Swish.
    fn silu(&self, x: &Self::V) -> Result<Self::V>;
    /// Sum.
    fn add(&self, a: &Self::V, b: &Self::V) -> Result<Self::V>;
    /// DCR depth-to-space by `block`.
    fn depth_to_space(&self, x: &Self::V, block: usize) -> Result<Self::V>;
    /// Linear `{name}` with bias: x [N, in] -> [N, out].
    fn linear(&self, x: &Self::V, name: &str) -> Result<Self::V>;
    /// GroupNorm(32, eps 1e-6) without affine, then `scale[b, c]` and `shift[b, c]` ([B, C]).
    fn adaptive_group_norm(&self, x: &Self::V, scale: &Self::V, shift: &Self::V)
        -> Result<Self::V>;
    /// Per-(batch, channel) mean and sqrt(unbiased variance + eps) of z [B, C, h, w], each [B, C].
    fn channel_stats(&self, z: &Self::V) -> Result<(Self::V, Self::V)>;
    /// View with another shape.
    fn reshape(&self, x: &Self::V, shape: &[usize]) -> Result<Self::V>;

    /// GroupNorm with affine `name`, then swish.
    fn norm_silu(&self, x: &Self::V, name: &str) -> Result<Self::V> {
        let y = self.group_norm(x, Some(name))?;
        self.silu(&y)
    }

    /// ResBlock: norm1 -> swish -> conv1 3x3 -> norm2 -> swish -> conv2 3x3, plus the input,
    /// through the 1x1 `nin_shortcut` when the channel count changes (the official rule).
    fn res_block(&self, x: &Self::V, name: &str) -> Result<Self::V> {
        let h = self.norm_silu(x, &format!("{name}.norm1"))?;
        let h = self.conv(&h, &format!("{name}.conv1"), false, 1, 1)?;
        let h = self.norm_silu(&h, &format!("{name}.norm2"))?;
        let h = self.conv(&h, &format!("{name}.conv2"), false, 1, 1)?;
        let residual = if self.shape(&h)[1] != self.shape(x)[1] {
            self.conv(x, &format!("{name}.nin_shortcut"), false, 1, 0)?
        } else {
            x.clone()
        };
        self.add(&h, &residual)
    }

    /// AdaptiveGroupNorm `adaptive.{level}`: GroupNorm without affine, then per (batch, channel)
    /// `gamma(std) * x + beta(mean)` from the latent's statistics (each [B, z]).
    fn adaptive(
        &self,
        x: &Self::V,
        level: usize,
        mean: &Self::V,
        std: &Self::V,
    ) -> Result<Self::V> {
        let scale = self.linear(std, &format!("adaptive.{level}.gamma"))?;
        let shift = self.linear(mean, &format!("adaptive.{level}.beta"))?;
        self.adaptive_group_norm(x, &scale, &shift)
    }
}

/// Inference on tensors; convolution weights may be held in output-channel chunks.
pub(super) struct Infer<'a> {
    pub params: &'a ParamStore,
    pub prefix: &'static str,
}

impl Infer<'_> {
    fn p(&self, name: &str) -> Result<&Tensor> {
        self.params.get(&format!("{}.{name}", self.prefix))
    }
}

impl AeGraph for Infer<'_> {
    type V = Tensor;

    fn shape(&self, x: &Tensor) -> Vec<usize> {
        x.shape().to_vec()
    }

    fn conv(
        &self,
        x: &Tensor,
        name: &str,
        bias: bool,
        stride: usize,
        pad: usize,
    ) -> Result<Tensor> {
        let b = if bias {
            Some(self.p(&format!("{name}.bias"))?)
        } else {
            None
        };
        let chunks = self
            .params
            .get_chunks(&format!("{}.{name}.weight", self.prefix))?;
        if let [w] = chunks[..] {
            return ops::conv2d(x, w, b, stride, pad);
        }
        let mut outputs = Vec::with_capacity(chunks.len());
        let mut first = 0;
        for w in chunks {
            let n = w.shape()[0];
            let bias = b.map(|b| ops::slice(b, 0, first, n)).transpose()?;
            outputs.push(ops::conv2d(x, w, bias.as_ref(), stride, pad)?);
            first += n;
        }
        let refs: Vec<&Tensor> = outputs.iter().collect();
        ops::concat(&refs, 1)
    }

    fn group_norm(&self, x: &Tensor, name: Option<&str>) -> Result<Tensor> {
        match name {
            Some(n) => ops::group_norm(
                x,
                GROUPS,
                Some(self.p(&format!("{n}.weight"))?),
                Some(self.p(&format!("{n}.bias"))?),
                EPS,
            ),
            None => ops::group_norm(x, GROUPS, None, None, EPS),
        }
    }

    fn silu(&self, x: &Tensor) -> Result<Tensor> {
        ops::silu(x)
    }

    fn add(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        ops::add(a, b)
    }

    fn depth_to_space(&self, x: &Tensor, block: usize) -> Result<Tensor> {
        ops::depth_to_space(x, block)
    }

    fn linear(&self, x: &Tensor, name: &str) -> Result<Tensor> {
        ops::matmul(
            x,
            self.p(&format!("{name}.weight"))?,
            Some(self.p(&format!("{name}.bias"))?),
            false,
            true,
        )
    }

    fn adaptive_group_norm(&self, x: &Tensor, scale: &Tensor, shift: &Tensor) -> Result<Tensor> {
        ops::adaptive_group_norm(x, GROUPS, scale, shift, EPS)
    }

    fn channel_stats(&self, z: &Tensor) -> Result<(Tensor, Tensor)> {
        let s = z.shape();
        let rows = z.reshape(&[s[0] * s[1], s[2] * s[3]])?;
        let (mean, std) = ops::row_stats(&rows, EPS)?;
        Ok((mean.reshape(&s[..2])?, std.reshape(&s[..2])?))
    }

    fn reshape(&self, x: &Tensor, shape: &[usize]) -> Result<Tensor> {
        x.reshape(shape)
    }
}

/// Training on a tape (parameters whole, not chunked).
pub(super) struct Train<'a, 'b> {
    pub tape: &'a Tape,
    pub params: &'a ParamVars<'b>,
    pub prefix: &'static str,
}

impl Train<'_, '_> {
    fn p(&self, name: &str) -> Result<Var> {
        self.params.get(&format!("{}.{name}", self.prefix))
    }
}

impl AeGraph for Train<'_, '_> {
    type V = Var;

    fn shape(&self, x: &Var) -> Vec<usize> {
        self.tape.shape(*x)
    }

    fn conv(&self, x: &Var, name: &str, bias: bool, stride: usize, pad: usize) -> Result<Var> {
        let b = bias.then(|| self.p(&format!("{name}.bias"))).transpose()?;
        let w = self.p(&format!("{name}.weight"))?;
        self.tape.conv2d(*x, w, b, stride, pad)
    }

    fn group_norm(&self, x: &Var, name: Option<&str>) -> Result<Var> {
        let affine = match name {
            Some(n) => Some((
                self.p(&format!("{n}.weight"))?,
                self.p(&format!("{n}.bias"))?,
            )),
            None => None,
        };
        self.tape.group_norm(*x, GROUPS, affine, EPS)
    }

    fn silu(&self, x: &Var) -> Result<Var> {
        self.tape.silu(*x)
    }

    fn add(&self, a: &Var, b: &Var) -> Result<Var> {
        self.tape.add(*a, *b)
    }

    fn depth_to_space(&self, x: &Var, block: usize) -> Result<Var> {
        self.tape.depth_to_space(*x, block)
    }

    fn linear(&self, x: &Var, name: &str) -> Result<Var> {
        let w = self.p(&format!("{name}.weight"))?;
        let b = self.p(&format!("{name}.bias"))?;
        self.tape.linear(*x, w, Some(b))
    }

    // Composed on the tape (the fused kernel has no backward): the GroupNorm, then the
    // per-(batch, channel) affine map as one per-row affine over the [B·C] rows.
    fn adaptive_group_norm(&self, x: &Var, scale: &Var, shift: &Var) -> Result<Var> {
        let s = self.tape.shape(*x);
        let y = self.group_norm(x, None)?;
        let rows = [s[0] * s[1]];
        let (scale, shift) = (self.reshape(scale, &rows)?, self.reshape(shift, &rows)?);
        self.tape.row_affine(y, scale, shift)
    }

    fn channel_stats(&self, z: &Var) -> Result<(Var, Var)> {
        let s = self.tape.shape(*z);
        let rows = self.tape.reshape(*z, &[s[0] * s[1], s[2] * s[3]])?;
        let (mean, std) = self.tape.row_stats(rows, EPS)?;
        Ok((
            self.tape.reshape(mean, &s[..2])?,
            self.tape.reshape(std, &s[..2])?,
        ))
    }

    fn reshape(&self, x: &Var, shape: &[usize]) -> Result<Var> {
        self.tape.reshape(*x, shape)
    }
}
