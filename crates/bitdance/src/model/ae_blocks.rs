//! Layers shared by the autoencoder's encoder and decoder: convolutions whose weights may be
//! held in row chunks, GroupNorm + swish, and the ResBlock, all reading official names under
//! one prefix (`vae.encoder` or `vae.decoder`).

use super::ParamStore;
use crate::{ops, Result, Tensor};

/// GroupNorm groups and epsilon of every norm in the autoencoder.
pub(super) const GROUPS: usize = 32;
pub(super) const EPS: f32 = 1e-6;

/// The parameters of one autoencoder half, named `{prefix}.{name}`.
pub(super) struct AeBlocks<'a> {
    pub params: &'a ParamStore,
    pub prefix: &'static str,
}

impl AeBlocks<'_> {
    pub fn p(&self, name: &str) -> Result<&Tensor> {
        self.params.get(&format!("{}.{name}", self.prefix))
    }

    /// A convolution (symmetric padding `pad`); a weight held in output-channel chunks runs
    /// chunk by chunk.
    pub fn conv(
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
        if chunks.len() == 1 {
            return ops::conv2d(x, chunks[0], b, stride, pad);
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

    /// GroupNorm(32, eps 1e-6) with the affine `name.{weight,bias}`, then swish.
    pub fn norm_silu(&self, x: &Tensor, name: &str) -> Result<Tensor> {
        let y = ops::group_norm(
            x,
            GROUPS,
            Some(self.p(&format!("{name}.weight"))?),
            Some(self.p(&format!("{name}.bias"))?),
            EPS,
        )?;
        ops::silu(&y)
    }

    /// ResBlock: norm1 -> swish -> conv1 3x3 -> norm2 -> swish -> conv2 3x3, plus the input,
    /// through the 1x1 `nin_shortcut` when the channel count changes (as the official block
    /// decides; a missing or chunked shortcut weight is then found, never silently skipped).
    pub fn res_block(&self, x: &Tensor, name: &str) -> Result<Tensor> {
        let h = self.norm_silu(x, &format!("{name}.norm1"))?;
        let h = self.conv(&h, &format!("{name}.conv1"), false, 1, 1)?;
        let h = self.norm_silu(&h, &format!("{name}.norm2"))?;
        let h = self.conv(&h, &format!("{name}.conv2"), false, 1, 1)?;
        let residual = if h.shape()[1] != x.shape()[1] {
            self.conv(x, &format!("{name}.nin_shortcut"), false, 1, 0)?
        } else {
            x.clone()
        };
        ops::add(&h, &residual)
    }
}
