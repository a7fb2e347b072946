//! The binary autoencoder's weights as typed structs (`vae.encoder.*`, `vae.decoder.*`), each
//! fetched once by its official name and shape, as `weights.rs` does for the AR model: the
//! same description loads inference tensors, puts training values on a tape and lists the
//! parameter specs, so generation can load only the decoder and training only what it needs.

use super::weights::{into_specs, Fetch, Linear, NormAffine};
use super::{AeConfig, ParamSpec};
use crate::Result;

/// A convolution `{prefix}.weight` [out, in, k, k] with an optional `{prefix}.bias` [out]. For
/// inference a weight larger than one storage binding is held in output-channel chunks.
pub struct Conv<V> {
    /// The weight, in chunks of output channels (one chunk unless split).
    pub weight: Vec<V>,
    /// [out].
    pub bias: Option<V>,
}

impl<V> Conv<V> {
    fn fetch(
        f: &mut Fetch<V>,
        prefix: &str,
        [out, inp, k]: [usize; 3],
        bias: bool,
    ) -> Result<Self> {
        let weight = f.chunks(format!("{prefix}.weight"), &[out, inp, k, k])?;
        let bias = if bias {
            Some(f.get(format!("{prefix}.bias"), &[out])?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }
}

/// A ResBlock: norm1 -> swish -> conv1 3x3 -> norm2 -> swish -> conv2 3x3, plus the input,
/// through the 1x1 `nin_shortcut` when the channel count changes (the official rule).
pub struct ResBlock<V> {
    /// GroupNorm before conv1 [in].
    pub norm1: NormAffine<V>,
    /// 3x3, no bias [out, in].
    pub conv1: Conv<V>,
    /// GroupNorm before conv2 [out].
    pub norm2: NormAffine<V>,
    /// 3x3, no bias [out, out].
    pub conv2: Conv<V>,
    /// 1x1, no bias [out, in], when in != out.
    pub nin_shortcut: Option<Conv<V>>,
}

impl<V> ResBlock<V> {
    fn fetch(f: &mut Fetch<V>, prefix: &str, cin: usize, cout: usize) -> Result<Self> {
        Ok(Self {
            norm1: NormAffine::fetch(f, &format!("{prefix}.norm1"), cin)?,
            conv1: Conv::fetch(f, &format!("{prefix}.conv1"), [cout, cin, 3], false)?,
            norm2: NormAffine::fetch(f, &format!("{prefix}.norm2"), cout)?,
            conv2: Conv::fetch(f, &format!("{prefix}.conv2"), [cout, cout, 3], false)?,
            nin_shortcut: (cin != cout)
                .then(|| Conv::fetch(f, &format!("{prefix}.nin_shortcut"), [cout, cin, 1], false))
                .transpose()?,
        })
    }

    /// `count` blocks `{prefix}.{j}`, the first from `cin` channels, all to `cout`.
    fn fetch_run(
        f: &mut Fetch<V>,
        prefix: &str,
        count: usize,
        cin: usize,
        cout: usize,
    ) -> Result<Vec<Self>> {
        (0..count)
            .map(|j| {
                let from = if j == 0 { cin } else { cout };
                Self::fetch(f, &format!("{prefix}.{j}"), from, cout)
            })
            .collect()
    }
}

/// One encoder level `down.{i}`: ResBlocks, then (all but the last level) a stride-2 3x3
/// `downsample` with bias.
pub struct EncoderLevel<V> {
    /// `block.{j}`.
    pub blocks: Vec<ResBlock<V>>,
    /// `downsample`.
    pub downsample: Option<Conv<V>>,
}

/// `vae.encoder`: images [B, 3, H, W] -> latents [B, z_channels, H/16, W/16].
pub struct Encoder<V> {
    /// 3x3 from 3 channels, no bias.
    pub conv_in: Conv<V>,
    /// `down.{i}`, shallowest first.
    pub levels: Vec<EncoderLevel<V>>,
    /// `mid_block.{j}`.
    pub mid: Vec<ResBlock<V>>,
    /// GroupNorm before the output.
    pub norm_out: NormAffine<V>,
    /// 1x1 to z_channels with bias.
    pub conv_out: Conv<V>,
}

impl<V> Encoder<V> {
    /// Fetches the encoder of `ae`.
    pub fn fetch(ae: &AeConfig, f: &mut Fetch<V>) -> Result<Self> {
        let e = "vae.encoder";
        let conv_in = Conv::fetch(f, &format!("{e}.conv_in"), [ae.ch, 3, 3], false)?;
        let last = ae.ch_mult.len() - 1;
        let mut block_in = ae.ch;
        let mut levels = Vec::with_capacity(ae.ch_mult.len());
        for (i, mult) in ae.ch_mult.iter().enumerate() {
            let out = ae.ch * mult;
            let prefix = format!("{e}.down.{i}.block");
            let blocks = ResBlock::fetch_run(f, &prefix, ae.num_res_blocks, block_in, out)?;
            block_in = out;
            let downsample = (i < last)
                .then(|| Conv::fetch(f, &format!("{e}.down.{i}.downsample"), [out, out, 3], true))
                .transpose()?;
            levels.push(EncoderLevel { blocks, downsample });
        }
        let mid_prefix = format!("{e}.mid_block");
        let mid = ResBlock::fetch_run(f, &mid_prefix, ae.num_res_blocks, block_in, block_in)?;
        Ok(Self {
            conv_in,
            levels,
            mid,
            norm_out: NormAffine::fetch(f, &format!("{e}.norm_out"), block_in)?,
            conv_out: Conv::fetch(
                f,
                &format!("{e}.conv_out"),
                [ae.z_channels, block_in, 1],
                true,
            )?,
        })
    }
}

/// One decoder level `up.{i}`: the AdaptiveGroupNorm `adaptive.{i}` (scale from the latent's
/// std, shift from its mean), ResBlocks, then (all but level 0) the 2x upsampler's conv.
pub struct DecoderLevel<V> {
    /// `adaptive.{i}.gamma` [C, z] with bias: the scale.
    pub gamma: Linear<V>,
    /// `adaptive.{i}.beta` [C, z] with bias: the shift.
    pub beta: Linear<V>,
    /// `up.{i}.block.{j}`.
    pub blocks: Vec<ResBlock<V>>,
    /// `up.{i}.upsample.conv1`: 3x3 to 4C channels with bias, before depth-to-space.
    pub upsample: Option<Conv<V>>,
}

/// `vae.decoder`: ±1 latents [B, z_channels, h, w] -> images [B, 3, 16h, 16w].
pub struct Decoder<V> {
    /// 3x3 from z_channels with bias.
    pub conv_in: Conv<V>,
    /// `mid_block.{j}`.
    pub mid: Vec<ResBlock<V>>,
    /// `up.{i}`, deepest first (the order they run in).
    pub levels: Vec<DecoderLevel<V>>,
    /// GroupNorm before the output.
    pub norm_out: NormAffine<V>,
    /// 3x3 to 3 channels with bias.
    pub conv_out: Conv<V>,
}

impl<V> Decoder<V> {
    /// Fetches the decoder of `ae`.
    pub fn fetch(ae: &AeConfig, f: &mut Fetch<V>) -> Result<Self> {
        let d = "vae.decoder";
        let z = ae.z_channels;
        let mut block_in = ae.ch * ae.ch_mult.last().copied().unwrap_or(1);
        let conv_in = Conv::fetch(f, &format!("{d}.conv_in"), [block_in, z, 3], true)?;
        let mid_prefix = format!("{d}.mid_block");
        let mid = ResBlock::fetch_run(f, &mid_prefix, ae.num_res_blocks, block_in, block_in)?;
        let mut levels = Vec::with_capacity(ae.ch_mult.len());
        for i in (0..ae.ch_mult.len()).rev() {
            let out = ae.ch * ae.ch_mult[i];
            let adaptive = format!("{d}.adaptive.{i}");
            let gamma = Linear::fetch(f, &format!("{adaptive}.gamma"), block_in, z, true)?;
            let beta = Linear::fetch(f, &format!("{adaptive}.beta"), block_in, z, true)?;
            let prefix = format!("{d}.up.{i}.block");
            let blocks = ResBlock::fetch_run(f, &prefix, ae.num_res_blocks, block_in, out)?;
            block_in = out;
            let upsample = (i > 0)
                .then(|| {
                    let name = format!("{d}.up.{i}.upsample.conv1");
                    Conv::fetch(f, &name, [4 * block_in, block_in, 3], true)
                })
                .transpose()?;
            levels.push(DecoderLevel {
                gamma,
                beta,
                blocks,
                upsample,
            });
        }
        Ok(Self {
            conv_in,
            mid,
            levels,
            norm_out: NormAffine::fetch(f, &format!("{d}.norm_out"), block_in)?,
            conv_out: Conv::fetch(f, &format!("{d}.conv_out"), [3, block_in, 3], true)?,
        })
    }
}

/// Every parameter of the encoder (`vae.encoder.*`), in a stable order.
pub fn encoder_parameters(ae: &AeConfig) -> Vec<ParamSpec> {
    let mut specs = Vec::new();
    // `into_specs` never fails.
    let _ = Encoder::fetch(ae, &mut into_specs(&mut specs));
    specs
}

/// The names of the encoder's convolution weights (the ones a fine-tuning run with a 16-bit
/// frozen base holds in 16 bits).
pub fn encoder_layer_weights(ae: &AeConfig) -> Vec<String> {
    let mut names = Vec::new();
    let _ = Encoder::fetch(ae, &mut super::weights::LayerWeightNames(&mut names));
    names
}

/// The names of the decoder's convolution and linear weights (the ones inference may hold in
/// 16 bits).
pub fn decoder_layer_weights(ae: &AeConfig) -> Vec<String> {
    let mut names = Vec::new();
    let _ = Decoder::fetch(ae, &mut super::weights::LayerWeightNames(&mut names));
    names
}

/// Every parameter of the decoder (`vae.decoder.*`), in a stable order.
pub fn decoder_parameters(ae: &AeConfig) -> Vec<ParamSpec> {
    let mut specs = Vec::new();
    let _ = Decoder::fetch(ae, &mut into_specs(&mut specs));
    specs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelConfig;

    #[test]
    fn autoencoder_matches_the_released_460m() {
        let ae = ModelConfig::builtin("B-4x").unwrap().vae;
        let count = |ps: Vec<ParamSpec>| {
            ps.iter()
                .map(|p| p.shape.iter().product::<usize>())
                .sum::<usize>()
        };
        let (enc, dec) = (
            count(encoder_parameters(&ae)),
            count(decoder_parameters(&ae)),
        );
        let total = (enc + dec) as f64 / 1e6;
        assert!(
            (total - 460.0).abs() / 460.0 < 0.02,
            "{total:.1}M parameters, expected about 460M"
        );
        let decoder = decoder_parameters(&ae);
        assert!(decoder
            .iter()
            .any(|p| p.name == "vae.decoder.up.4.upsample.conv1.weight"));
        assert!(!decoder
            .iter()
            .any(|p| p.name.starts_with("vae.decoder.up.0.upsample")));
    }
}
