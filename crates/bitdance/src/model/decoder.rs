//! The binary autoencoder's decoder (`vae.decoder.*`): ±1 latents [B, z, h, w] -> images
//! [B, 3, 16h, 16w] in [-1, 1] (before clamping), NCHW.

use super::ae_graph::{linear, norm_silu, res_block, ConvGraph};
use super::ae_weights::Decoder;
use super::graph::Eager;
use super::weights::{from_store, from_vars};
use super::{AeConfig, ParamStore, ParamVars};
use crate::autograd::{Tape, Var};
use crate::{Error, Result, Tensor};

/// Per-(image, channel) statistics of the latent for AdaptiveGroupNorm: (mean, sqrt(var + 1e-6))
/// over the h*w positions, with the UNBIASED variance (torch `var` default), each [B, z];
/// computed on the host in f64 (a reference for the GPU path).
pub fn latent_statistics(z: &[f32], b: usize, channels: usize, hw: usize) -> (Vec<f32>, Vec<f32>) {
    let mut means = Vec::with_capacity(b * channels);
    let mut stds = Vec::with_capacity(b * channels);
    for row in z.chunks(hw).take(b * channels) {
        let mean = row.iter().map(|v| *v as f64).sum::<f64>() / hw as f64;
        let var =
            row.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / (hw.max(2) - 1) as f64;
        means.push(mean as f32);
        stds.push((var + 1e-6).sqrt() as f32);
    }
    (means, stds)
}

/// Decodes ±1 latents `z` [B, z_channels, h, w] given on the host (row-major) into images
/// [B, 3, H, W] on `gpu` (uploaded once; the AdaptiveGroupNorm statistics are computed on the
/// GPU in f32, as the official code does). Images are decoded in groups small enough that every
/// activation fits one storage binding (a 256x256 image's widest one is 64 MiB).
pub fn decode(
    gpu: &crate::Gpu,
    ae: &AeConfig,
    params: &ParamStore,
    z: &[f32],
    shape: [usize; 4],
) -> Result<Tensor> {
    let limit = gpu.limits().max_storage_buffer_binding_size;
    // The feature maps share no sizes with other work (nor between levels): what the decoder
    // pools is freed level by level and at its end, leaving the sampler's buffers as they are
    // (a preview decodes between AR steps).
    let _phase = gpu.pool_phase();
    decode_grouped(gpu, ae, params, z, shape, limit)
}

/// `decode` with `max_bytes` as the budget of one group's widest activation (and its padded
/// packed copy).
pub fn decode_grouped(
    gpu: &crate::Gpu,
    ae: &AeConfig,
    params: &ParamStore,
    z: &[f32],
    shape: [usize; 4],
    max_bytes: u64,
) -> Result<Tensor> {
    let s = shape;
    if s[1] != ae.z_channels || z.len() != s.iter().product::<usize>() {
        return Err(Error::Shape {
            op: "decode",
            detail: format!(
                "{} latent values for shape {s:?}; expected [B, {}, h, w]",
                z.len(),
                ae.z_channels
            ),
        });
    }
    let weights = Decoder::fetch(ae, &mut from_store(params))?;
    let per_image = widest_activation(ae, s[2], s[3]) * 4;
    // Half the budget: the convolutions also hold a zero-padded, channel-packed copy.
    let limit = max_bytes as usize / 2;
    let group = (limit / per_image.max(1)).clamp(1, s[0].max(1));
    let plane = s[1] * s[2] * s[3];
    let mut parts = Vec::new();
    for start in (0..s[0]).step_by(group) {
        let n = group.min(s[0] - start);
        let chunk = Tensor::from_f32(
            gpu,
            &[n, s[1], s[2], s[3]],
            &z[start * plane..(start + n) * plane],
        )?;
        parts.push(decoder_graph(&Eager, &weights, &chunk)?);
    }
    if parts.len() == 1 {
        return Ok(parts.remove(0));
    }
    let refs: Vec<&Tensor> = parts.iter().collect();
    crate::ops::concat(&refs, 0)
}

/// Elements of the decoder's widest activation for one image of latent size h x w: the
/// upsampling convolutions' 4C-channel outputs, or a level's C channels at its resolution.
fn widest_activation(ae: &AeConfig, h: usize, w: usize) -> usize {
    let levels = ae.ch_mult.len();
    (0..levels)
        .map(|level| {
            let side = 1usize << (levels - 1 - level);
            let c = ae.ch * ae.ch_mult[level];
            let at = c * h * w * side * side;
            if level > 0 {
                4 * at
            } else {
                at
            }
        })
        .max()
        .unwrap_or(0)
}

/// `decode` recorded on `tape` (training the tokenizer): latents [B, z, h, w] -> images.
pub fn decoder_forward(tape: &Tape, ae: &AeConfig, params: &ParamVars, z: Var) -> Result<Var> {
    let s = tape.shape(z);
    if s.len() != 4 || s[1] != ae.z_channels {
        return Err(Error::Shape {
            op: "decode",
            detail: format!("latents {s:?}; expected [B, {}, h, w]", ae.z_channels),
        });
    }
    let weights = Decoder::fetch(ae, &mut from_vars(params))?;
    decoder_graph(tape, &weights, &z)
}

/// The decoder on either backend: conv_in, mid blocks, then per level (deepest first) the
/// AdaptiveGroupNorm from the latent's statistics, ResBlocks and (but the last) the 2x
/// depth-to-space upsampler; norm_out, swish, conv_out.
fn decoder_graph<G: ConvGraph>(g: &G, w: &Decoder<G::Value>, z: &G::Value) -> Result<G::Value> {
    let (mean, std) = g.channel_stats(z)?;
    let mut x = g.conv(z, &w.conv_in, 1, 1)?;
    for block in &w.mid {
        x = res_block(g, &x, block)?;
    }
    for level in &w.levels {
        let scale = linear(g, &std, &level.gamma)?;
        let shift = linear(g, &mean, &level.beta)?;
        x = g.adaptive_group_norm(&x, &scale, &shift)?;
        for block in &level.blocks {
            x = res_block(g, &x, block)?;
        }
        if let Some(upsample) = &level.upsample {
            x = g.conv(&x, upsample, 1, 1)?;
            x = g.depth_to_space(&x, 2)?;
            g.next_level(&x);
        }
    }
    let x = norm_silu(g, &x, &w.norm_out)?;
    g.conv(&x, &w.conv_out, 1, 1)
}
