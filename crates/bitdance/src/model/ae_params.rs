//! The official parameter names and shapes of the binary autoencoder (`vae.encoder.*`,
//! `vae.decoder.*`), so generation can load only the decoder and training only what it needs.

use super::{AeConfig, ParamSpec};

fn p(list: &mut Vec<ParamSpec>, name: String, shape: &[usize]) {
    list.push(ParamSpec {
        name,
        shape: shape.to_vec(),
    });
}

/// GroupNorm affine weight and bias of `c` channels.
fn norm(list: &mut Vec<ParamSpec>, prefix: &str, c: usize) {
    p(list, format!("{prefix}.weight"), &[c]);
    p(list, format!("{prefix}.bias"), &[c]);
}

/// A ResBlock: norm1, conv1 (3x3, no bias), norm2, conv2, and a 1x1 `nin_shortcut` when the
/// channel count changes.
fn res_block(list: &mut Vec<ParamSpec>, prefix: &str, cin: usize, cout: usize) {
    norm(list, &format!("{prefix}.norm1"), cin);
    p(list, format!("{prefix}.conv1.weight"), &[cout, cin, 3, 3]);
    norm(list, &format!("{prefix}.norm2"), cout);
    p(list, format!("{prefix}.conv2.weight"), &[cout, cout, 3, 3]);
    if cin != cout {
        p(
            list,
            format!("{prefix}.nin_shortcut.weight"),
            &[cout, cin, 1, 1],
        );
    }
}

/// `vae.encoder.*`: images [B, 3, H, W] -> latents [B, z_channels, H/16, W/16].
pub fn encoder_parameters(ae: &AeConfig) -> Vec<ParamSpec> {
    let mut v = Vec::new();
    let e = "vae.encoder";
    p(&mut v, format!("{e}.conv_in.weight"), &[ae.ch, 3, 3, 3]);
    let levels = ae.ch_mult.len();
    let mut block_in = ae.ch;
    for (i, mult) in ae.ch_mult.iter().enumerate() {
        let block_out = ae.ch * mult;
        for j in 0..ae.num_res_blocks {
            res_block(
                &mut v,
                &format!("{e}.down.{i}.block.{j}"),
                block_in,
                block_out,
            );
            block_in = block_out;
        }
        if i + 1 < levels {
            p(
                &mut v,
                format!("{e}.down.{i}.downsample.weight"),
                &[block_out, block_out, 3, 3],
            );
            p(
                &mut v,
                format!("{e}.down.{i}.downsample.bias"),
                &[block_out],
            );
        }
    }
    for j in 0..ae.num_res_blocks {
        res_block(&mut v, &format!("{e}.mid_block.{j}"), block_in, block_in);
    }
    norm(&mut v, &format!("{e}.norm_out"), block_in);
    p(
        &mut v,
        format!("{e}.conv_out.weight"),
        &[ae.z_channels, block_in, 1, 1],
    );
    p(&mut v, format!("{e}.conv_out.bias"), &[ae.z_channels]);
    v
}

/// `vae.decoder.*`: ±1 latents [B, z_channels, h, w] -> images [B, 3, 16h, 16w].
pub fn decoder_parameters(ae: &AeConfig) -> Vec<ParamSpec> {
    let mut v = Vec::new();
    let d = "vae.decoder";
    let z = ae.z_channels;
    let mut block_in = ae.ch * ae.ch_mult.last().copied().unwrap_or(1);
    p(&mut v, format!("{d}.conv_in.weight"), &[block_in, z, 3, 3]);
    p(&mut v, format!("{d}.conv_in.bias"), &[block_in]);
    for j in 0..ae.num_res_blocks {
        res_block(&mut v, &format!("{d}.mid_block.{j}"), block_in, block_in);
    }
    for i in (0..ae.ch_mult.len()).rev() {
        let block_out = ae.ch * ae.ch_mult[i];
        for lin in ["gamma", "beta"] {
            p(
                &mut v,
                format!("{d}.adaptive.{i}.{lin}.weight"),
                &[block_in, z],
            );
            p(&mut v, format!("{d}.adaptive.{i}.{lin}.bias"), &[block_in]);
        }
        for j in 0..ae.num_res_blocks {
            res_block(
                &mut v,
                &format!("{d}.up.{i}.block.{j}"),
                block_in,
                block_out,
            );
            block_in = block_out;
        }
        if i > 0 {
            p(
                &mut v,
                format!("{d}.up.{i}.upsample.conv1.weight"),
                &[4 * block_in, block_in, 3, 3],
            );
            p(
                &mut v,
                format!("{d}.up.{i}.upsample.conv1.bias"),
                &[4 * block_in],
            );
        }
    }
    norm(&mut v, &format!("{d}.norm_out"), block_in);
    p(&mut v, format!("{d}.conv_out.weight"), &[3, block_in, 3, 3]);
    p(&mut v, format!("{d}.conv_out.bias"), &[3]);
    v
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
        eprintln!(
            "encoder {:.1}M, decoder {:.1}M, total {total:.1}M",
            enc as f64 / 1e6,
            dec as f64 / 1e6
        );
        assert!(
            (total - 460.0).abs() / 460.0 < 0.02,
            "{total:.1}M parameters, expected about 460M"
        );
        assert!(decoder_parameters(&ae)
            .iter()
            .any(|p| p.name == "vae.decoder.up.4.upsample.conv1.weight"));
        assert!(!decoder_parameters(&ae)
            .iter()
            .any(|p| p.name.starts_with("vae.decoder.up.0.upsample")));
    }
}
