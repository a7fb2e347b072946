//! The binary autoencoder's encoder (`vae.encoder.*`): images [B, 3, H, W] in [-1, 1] -> the
//! pre-quantization latent [B, z, h, w], and the GFQ sign quantizer that turns it into ±1 codes
//! and per-group code indices.

use super::ae_graph::{norm_silu, res_block, ConvGraph};
use super::ae_weights::Encoder;
use super::graph::Eager;
use super::weights::{from_store, from_vars};
use super::{AeConfig, ParamStore, ParamVars};
use crate::autograd::{Tape, Var};
use crate::{ops, Error, Result, Tensor};

/// Spatial size after the encoder's `levels - 1` stride-2 3x3 convolutions (padding 1):
/// each maps n -> ceil(n / 2), so 256 -> 16 with the 5 levels of ae_d16c32.
pub fn encoded_size(ae: &AeConfig, n: usize) -> usize {
    (1..ae.ch_mult.len()).fold(n, |n, _| n.div_ceil(2))
}

/// Encodes images [B, 3, H, W] (NCHW, in [-1, 1]) into the pre-quantization latent
/// [B, z_channels, h, w] with h = `encoded_size(ae, H)` (likewise w): conv_in, per level
/// `num_res_blocks` ResBlocks and (except the last) a stride-2 `downsample`, the mid blocks,
/// norm_out, swish, 1x1 conv_out.
pub fn encode(ae: &AeConfig, params: &ParamStore, images: &Tensor) -> Result<Tensor> {
    check_images(images.shape())?;
    let weights = Encoder::fetch(ae, &mut from_store(params))?;
    encoder_graph(&Eager, &weights, images)
}

/// `encode` recorded on `tape` (training the tokenizer): images [B, 3, H, W] -> latent.
pub fn encoder_forward(tape: &Tape, ae: &AeConfig, params: &ParamVars, images: Var) -> Result<Var> {
    check_images(&tape.shape(images))?;
    let weights = Encoder::fetch(ae, &mut from_vars(params))?;
    encoder_graph(tape, &weights, &images)
}

fn check_images(s: &[usize]) -> Result<()> {
    if s.len() != 4 || s[1] != 3 || s.contains(&0) {
        return Err(Error::Shape {
            op: "encode",
            detail: format!("images {s:?}; expected [B, 3, H, W] with no zero dim"),
        });
    }
    Ok(())
}

/// The encoder on either backend: conv_in, per level its ResBlocks and (but the last) the
/// stride-2 downsample, the mid blocks, norm_out, swish, the 1x1 conv_out.
fn encoder_graph<G: ConvGraph>(
    g: &G,
    w: &Encoder<G::Value>,
    images: &G::Value,
) -> Result<G::Value> {
    let mut x = g.conv(images, &w.conv_in, 1, 1)?;
    for level in &w.levels {
        for block in &level.blocks {
            x = res_block(g, &x, block)?;
        }
        if let Some(down) = &level.downsample {
            x = g.conv(&x, down, 2, 1)?;
        }
    }
    for block in &w.mid {
        x = res_block(g, &x, block)?;
    }
    let x = norm_silu(g, &x, &w.norm_out)?;
    g.conv(&x, &w.conv_out, 1, 0)
}

/// The GFQ quantizer's outputs for a latent [B, z, h, w].
#[derive(Clone, Debug)]
pub struct Quantized {
    /// ±1 codes [B, z, h, w] (the decoder's input): +1 where the latent is > 0, else -1.
    pub codes: Tensor,
    /// The same codes as tokens [B, h*w, z], positions in raster order (the AR model's input).
    pub tokens: Tensor,
    /// u32 [B, h*w, z/8]: code index of each group of 8 consecutive channels, channel 8g + j
    /// being bit j (least significant first) set where the code is +1.
    pub indices: Tensor,
}

/// Quantizes a latent [B, z, h, w] (z a multiple of 8) as the official GFQ at inference:
/// `where(x > 0, 1, -1)` (0 maps to -1), and the index of each group of 8 bits per position.
pub fn quantize(latent: &Tensor) -> Result<Quantized> {
    let s = latent.shape();
    if s.len() != 4 {
        return Err(Error::Shape {
            op: "quantize",
            detail: format!("latent {s:?}; expected [B, z, h, w]"),
        });
    }
    let (b, z, hw) = (s[0], s[1], s[2] * s[3]);
    let codes = ops::sign_quantize(latent)?;
    // Channels-last: [B, z, hw] seen as z "heads" of hw rows of width 1, merged.
    let tokens = ops::merge_heads(&codes.reshape(&[b, z, hw, 1])?)?;
    let indices = ops::lfq_group_indices(&tokens)?;
    Ok(Quantized {
        codes,
        tokens,
        indices,
    })
}
