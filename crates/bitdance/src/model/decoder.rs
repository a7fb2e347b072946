//! The binary autoencoder's decoder (`vae.decoder.*`): ±1 latents [B, z, h, w] -> images
//! [B, 3, 16h, 16w] in [-1, 1] (before clamping), NCHW.

use super::ae_graph::{AeGraph, Infer, Train};
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
/// GPU in f32, as the official code does).
pub fn decode(
    gpu: &crate::Gpu,
    ae: &AeConfig,
    params: &ParamStore,
    z: &[f32],
    shape: [usize; 4],
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
    let z = Tensor::from_f32(gpu, &s, z)?;
    let g = Infer {
        params,
        prefix: "vae.decoder",
    };
    decoder_graph(&g, ae, &z)
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
    let g = Train {
        tape,
        params,
        prefix: "vae.decoder",
    };
    decoder_graph(&g, ae, &z)
}

/// The decoder on either backend: conv_in, mid blocks, then per level (deepest first) the
/// AdaptiveGroupNorm, ResBlocks and (but the last) the 2x depth-to-space upsampler; norm_out,
/// swish, conv_out.
fn decoder_graph<G: AeGraph>(g: &G, ae: &AeConfig, z: &G::V) -> Result<G::V> {
    let (mean, std) = g.channel_stats(z)?;
    let mut x = g.conv(z, "conv_in", true, 1, 1)?;
    for j in 0..ae.num_res_blocks {
        x = g.res_block(&x, &format!("mid_block.{j}"))?;
    }
    for level in (0..ae.ch_mult.len()).rev() {
        x = g.adaptive(&x, level, &mean, &std)?;
        for j in 0..ae.num_res_blocks {
            x = g.res_block(&x, &format!("up.{level}.block.{j}"))?;
        }
        if level > 0 {
            x = g.conv(&x, &format!("up.{level}.upsample.conv1"), true, 1, 1)?;
            x = g.depth_to_space(&x, 2)?;
        }
    }
    let x = g.norm_silu(&x, "norm_out")?;
    g.conv(&x, "conv_out", true, 1, 1)
}
