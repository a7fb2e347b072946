//! The binary autoencoder's decoder (`vae.decoder.*`): ±1 latents [B, z, h, w] -> images
//! [B, 3, 16h, 16w] in [-1, 1] (before clamping), NCHW.

use super::ae_blocks::{AeBlocks, EPS, GROUPS};
use super::{AeConfig, ParamStore};
use crate::{ops, Error, Result, Tensor};

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

/// The decoder's layers: the shared ones plus AdaptiveGroupNorm.
struct Decoder<'a>(AeBlocks<'a>);

impl Decoder<'_> {
    fn p(&self, name: &str) -> Result<&Tensor> {
        self.0.p(name)
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
    let d = Decoder(AeBlocks {
        params,
        prefix: "vae.decoder",
    });
    let n = &d.0;
    let mut x = n.conv(&z, "conv_in", true, 1, 1)?;
    for j in 0..ae.num_res_blocks {
        x = n.res_block(&x, &format!("mid_block.{j}"))?;
    }
    for level in (0..ae.ch_mult.len()).rev() {
        x = d.adaptive(&x, level, &mean, &std)?;
        for j in 0..ae.num_res_blocks {
            x = n.res_block(&x, &format!("up.{level}.block.{j}"))?;
        }
        if level > 0 {
            x = n.conv(&x, &format!("up.{level}.upsample.conv1"), true, 1, 1)?;
            x = ops::depth_to_space(&x, 2)?;
        }
    }
    let x = n.norm_silu(&x, "norm_out")?;
    n.conv(&x, "conv_out", true, 1, 1)
}
