//! Class ids to pixels: AR sampling, the patch-raster order undone, the decoder, and the
//! official conversion to 8-bit RGB. Async only at the token readback (one path for web and
//! native).

use super::{decode, encode, latents_to_tokens, quantize, tokens_to_latents};
use super::{ModelConfig, ParamStore};
use crate::{Result, Tensor};

/// Decoded images (`decode_tokens`): B images of side S = `resolution`.
pub struct Generated {
    /// The decoder input: ±1 latents [B, latent_dim, S/16, S/16], row-major.
    pub tokens: Vec<f32>,
    /// The decoder output before clamping: [B, 3, S, S] in about [-1, 1], row-major.
    pub image: Vec<f32>,
    /// B, the number of images.
    pub count: usize,
}

/// Decodes tokens [B, T, token_dim] (model order; a `TokenSampler`'s tokens so far for a
/// preview) into images.
pub async fn decode_tokens(
    c: &ModelConfig,
    params: &ParamStore,
    tokens: &Tensor,
) -> Result<Generated> {
    let b = tokens.shape().first().copied().unwrap_or(0);
    let latents = tokens_to_latents(c, &tokens.to_vec_f32().await?)?;
    let g = c.grid();
    let image = decode(
        tokens.gpu(),
        &c.vae,
        params,
        &latents,
        [b, c.token_dim(), g, g],
    )?;
    Ok(Generated {
        tokens: latents,
        image: image.to_vec_f32().await?,
        count: b,
    })
}

/// Images [B, 3, R, R] in [-1, 1] -> the AR model's tokens [B, T, token_dim] (±1, model
/// order) through the encoder and the sign quantizer (`vae.encoder.*` must be loaded).
pub async fn encode_tokens(
    c: &ModelConfig,
    params: &ParamStore,
    images: &Tensor,
) -> Result<Vec<f32>> {
    let latent = encode(&c.vae, params, images)?;
    let codes = quantize(&latent)?.codes;
    let shape = codes.shape().to_vec();
    if shape[1] != c.token_dim() || shape[2] != c.grid() || shape[3] != c.grid() {
        return Err(crate::Error::Shape {
            op: "encode_tokens",
            detail: format!(
                "the encoder gives latents {shape:?}; the model needs [B, {}, {g}, {g}]",
                c.token_dim(),
                g = c.grid()
            ),
        });
    }
    latents_to_tokens(c, &codes.to_vec_f32().await?)
}

/// Decoder output [B, 3, H, W] -> 8-bit RGB [B, H, W, 3] as the official sampler converts it:
/// clamp(127.5 x + 128, 0, 255), truncated.
pub fn to_rgb8(image: &[f32], count: usize, height: usize, width: usize) -> Vec<u8> {
    let plane = height * width;
    let mut out = vec![0u8; count * plane * 3];
    for b in 0..count {
        for ch in 0..3 {
            let src = &image[(b * 3 + ch) * plane..(b * 3 + ch + 1) * plane];
            for (i, v) in src.iter().enumerate() {
                let level = (127.5 * v + 128.0).clamp(0.0, 255.0);
                // NaN clamps to NaN and casts to 0.
                out[(b * plane + i) * 3 + ch] = level as u8;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::to_rgb8;

    #[test]
    fn rgb_conversion_matches_the_official_rounding() {
        // One 1x2 image: R = [-1, 1], G = [0, 0.999], B = [-2, 5].
        let img = [-1.0, 1.0, 0.0, 0.999, -2.0, 5.0];
        assert_eq!(to_rgb8(&img, 1, 1, 2), vec![0, 128, 0, 255, 255, 255]);
    }
}
