//! The binary autoencoder's decoder (`vae.decoder.*`): ±1 latents [B, z, h, w] -> images
//! [B, 3, 16h, 16w] in [-1, 1] (before clamping), NCHW.

use super::{AeConfig, ParamStore};
use crate::{ops, Error, Result, Tensor};

/// GroupNorm groups and epsilon of every norm in the autoencoder.
const GROUPS: usize = 32;
const EPS: f32 = 1e-6;

/// Per-(image, channel) statistics of the latent for AdaptiveGroupNorm: (mean, sqrt(var + 1e-6))
/// over the h*w positions, with the UNBIASED variance (torch `var` default), each [B, z].
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

struct Decoder<'a> {
    params: &'a ParamStore,
}

impl Decoder<'_> {
    fn p(&self, name: &str) -> Result<&Tensor> {
        self.params.get(&format!("vae.decoder.{name}"))
    }

    /// A convolution; a weight held in output-channel chunks runs chunk by chunk.
    fn conv(&self, x: &Tensor, name: &str, bias: bool, pad: usize) -> Result<Tensor> {
        let b = if bias {
            Some(self.p(&format!("{name}.bias"))?)
        } else {
            None
        };
        let chunks = self
            .params
            .get_chunks(&format!("vae.decoder.{name}.weight"))?;
        if chunks.len() == 1 {
            return ops::conv2d(x, chunks[0], b, 1, pad);
        }
        let mut outputs = Vec::with_capacity(chunks.len());
        let mut first = 0;
        for w in chunks {
            let n = w.shape()[0];
            let bias = b.map(|b| ops::slice(b, 0, first, n)).transpose()?;
            outputs.push(ops::conv2d(x, w, bias.as_ref(), 1, pad)?);
            first += n;
        }
        let refs: Vec<&Tensor> = outputs.iter().collect();
        ops::concat(&refs, 1)
    }

    fn norm_silu(&self, x: &Tensor, name: &str) -> Result<Tensor> {
        let y = ops::group_norm(
            x,
            GROUPS,
            Some(self.p(&format!("{name}.weight"))?),
            Some(self.p(&format!("{name}.bias"))?),
            EPS,
        )?;
        ops::silu(&y)
    }

    fn res_block(&self, x: &Tensor, name: &str) -> Result<Tensor> {
        let h = self.norm_silu(x, &format!("{name}.norm1"))?;
        let h = self.conv(&h, &format!("{name}.conv1"), false, 1)?;
        let h = self.norm_silu(&h, &format!("{name}.norm2"))?;
        let h = self.conv(&h, &format!("{name}.conv2"), false, 1)?;
        let shortcut = format!("{name}.nin_shortcut");
        let residual = if self
            .params
            .get(&format!("vae.decoder.{shortcut}.weight"))
            .is_ok()
        {
            self.conv(x, &shortcut, false, 0)?
        } else {
            x.clone()
        };
        ops::add(&h, &residual)
    }

    /// AdaptiveGroupNorm: GroupNorm without affine, then `gamma(std) * x + beta(mean)` per channel.
    fn adaptive(&self, x: &Tensor, level: usize, mean: &Tensor, std: &Tensor) -> Result<Tensor> {
        let s = x.shape();
        let (b, c, hw) = (s[0], s[1], s[2] * s[3]);
        let linear = |input: &Tensor, name: &str| -> Result<Tensor> {
            let n = format!("adaptive.{level}.{name}");
            ops::matmul(
                input,
                self.p(&format!("{n}.weight"))?,
                Some(self.p(&format!("{n}.bias"))?),
                false,
                true,
            )
        };
        let scale = linear(std, "gamma")?;
        let shift = linear(mean, "beta")?;
        // modulate computes x * (1 + s) + shift over [G, T, 1] rows: pass s = scale - 1.
        let scale_minus_one = ops::axpby(
            1.0,
            &scale,
            -1.0,
            &Tensor::full(x.gpu(), scale.shape(), 1.0)?,
        )?;
        let y = ops::group_norm(x, GROUPS, None, None, EPS)?;
        let y = ops::modulate(
            &y.reshape(&[b * c, hw, 1])?,
            &shift.reshape(&[b * c, 1])?,
            &scale_minus_one.reshape(&[b * c, 1])?,
        )?;
        y.reshape(s)
    }
}

/// Decodes ±1 latents `z` [B, z_channels, h, w] given on the host (row-major) into images
/// [B, 3, H, W] on `gpu`. The AdaptiveGroupNorm statistics of z are computed on the host in f64;
/// the latents are uploaded once.
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
    let (b, zc, hw) = (s[0], s[1], s[2] * s[3]);
    let (means, stds) = latent_statistics(z, b, zc, hw);
    let z = Tensor::from_f32(gpu, &s, z)?;
    let mean = Tensor::from_f32(gpu, &[b, zc], &means)?;
    let std = Tensor::from_f32(gpu, &[b, zc], &stds)?;
    let d = Decoder { params };
    let mut x = d.conv(&z, "conv_in", true, 1)?;
    for j in 0..ae.num_res_blocks {
        x = d.res_block(&x, &format!("mid_block.{j}"))?;
    }
    for level in (0..ae.ch_mult.len()).rev() {
        x = d.adaptive(&x, level, &mean, &std)?;
        for j in 0..ae.num_res_blocks {
            x = d.res_block(&x, &format!("up.{level}.block.{j}"))?;
        }
        if level > 0 {
            x = d.conv(&x, &format!("up.{level}.upsample.conv1"), true, 1)?;
            x = ops::depth_to_space(&x, 2)?;
        }
    }
    let x = d.norm_silu(&x, "norm_out")?;
    d.conv(&x, "conv_out", true, 1)
}
