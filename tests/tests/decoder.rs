//! The autoencoder decoder against an f64 reference built from the kernel references.

use bitdance::model::{decode, decoder_parameters, latent_statistics, AeConfig, ParamStore};
use bitdance::reference::{self as cpu, ConvDims};
use bitdance::rng::Rng;
use bitdance_tests::gpu;

type Host = Vec<(String, Vec<f64>)>;

fn get<'a>(h: &'a Host, name: &str) -> &'a [f64] {
    &h.iter()
        .find(|(n, _)| n == &format!("vae.decoder.{name}"))
        .unwrap_or_else(|| panic!("{name}"))
        .1
}

fn has(h: &Host, name: &str) -> bool {
    h.iter().any(|(n, _)| n == &format!("vae.decoder.{name}"))
}

/// 3x3 (pad 1) convolution of x [1, cin, hh, ww], or 1x1 (pad 0) for shortcuts.
fn conv(
    h: &Host,
    x: &[f64],
    name: &str,
    cin: usize,
    hh: usize,
    ww: usize,
    bias: bool,
) -> (Vec<f64>, usize) {
    let w = get(h, &format!("{name}.weight"));
    let k = if name.ends_with("nin_shortcut") { 1 } else { 3 };
    let cout = w.len() / (cin * k * k);
    let p = k / 2;
    let d = ConvDims {
        b: 1,
        cin,
        h: hh,
        w: ww,
        cout,
        kh: k,
        kw: k,
        stride: 1,
        pad: [p, p, p, p],
    };
    (
        cpu::conv2d(x, w, bias.then(|| get(h, &format!("{name}.bias"))), d),
        cout,
    )
}

fn norm_silu(h: &Host, x: &[f64], name: &str, c: usize, hw: usize) -> Vec<f64> {
    let y = cpu::group_norm(
        x,
        c,
        hw,
        32,
        Some(get(h, &format!("{name}.weight"))),
        Some(get(h, &format!("{name}.bias"))),
        1e-6,
    );
    cpu::silu(&y)
}

fn res_block(
    h: &Host,
    x: &[f64],
    name: &str,
    cin: usize,
    hh: usize,
    ww: usize,
) -> (Vec<f64>, usize) {
    let a = norm_silu(h, x, &format!("{name}.norm1"), cin, hh * ww);
    let (a, cout) = conv(h, &a, &format!("{name}.conv1"), cin, hh, ww, false);
    let a = norm_silu(h, &a, &format!("{name}.norm2"), cout, hh * ww);
    let (a, _) = conv(h, &a, &format!("{name}.conv2"), cout, hh, ww, false);
    let r = if has(h, &format!("{name}.nin_shortcut.weight")) {
        conv(h, x, &format!("{name}.nin_shortcut"), cin, hh, ww, false).0
    } else {
        x.to_vec()
    };
    (a.iter().zip(&r).map(|(p, q)| p + q).collect(), cout)
}

#[test]
fn decoder_matches_the_f64_reference() {
    let ae = AeConfig {
        ch: 32,
        ch_mult: vec![1, 2],
        num_res_blocks: 1,
        z_channels: 32,
    };
    let mut rng = Rng::new(17);
    let g = gpu();
    let store = ParamStore::random(&g, &decoder_parameters(&ae), &mut rng, 0.1).unwrap();
    let host: Host = store
        .iter()
        .map(|(n, t)| (n.to_string(), cpu::widen(&t.read_f32().unwrap())))
        .collect();
    let (zh, zw) = (3, 2);
    let z: Vec<f32> = (0..32 * zh * zw)
        .map(|_| if rng.uniform() < 0.5 { -1.0 } else { 1.0 })
        .collect();
    let got = decode(&g, &ae, &store, &z, [1, 32, zh, zw]).unwrap();
    assert_eq!(got.shape(), &[1, 3, 2 * zh, 2 * zw]);
    let got = got.read_f32().unwrap();

    let (means, stds) = latent_statistics(&z, 1, 32, zh * zw);
    let (mut x, mut c) = conv(&host, &cpu::widen(&z), "conv_in", 32, zh, zw, true);
    let (mut hh, mut ww) = (zh, zw);
    (x, c) = res_block(&host, &x, "mid_block.0", c, hh, ww);
    for level in [1usize, 0] {
        let lin = |name: &str, input: &[f32]| -> Vec<f64> {
            let w = get(&host, &format!("adaptive.{level}.{name}.weight"));
            let b = get(&host, &format!("adaptive.{level}.{name}.bias"));
            (0..c)
                .map(|o| {
                    b[o] + (0..32)
                        .map(|i| w[o * 32 + i] * input[i] as f64)
                        .sum::<f64>()
                })
                .collect()
        };
        let (scale, shift) = (lin("gamma", &stds), lin("beta", &means));
        let y = cpu::group_norm(&x, c, hh * ww, 32, None, None, 1e-6);
        x = y
            .iter()
            .enumerate()
            .map(|(i, v)| v * scale[i / (hh * ww)] + shift[i / (hh * ww)])
            .collect();
        (x, c) = res_block(&host, &x, &format!("up.{level}.block.0"), c, hh, ww);
        if level > 0 {
            let (u, cu) = conv(
                &host,
                &x,
                &format!("up.{level}.upsample.conv1"),
                c,
                hh,
                ww,
                true,
            );
            x = cpu::depth_to_space(&u, 1, cu / 4, hh, ww, 2);
            c = cu / 4;
            hh *= 2;
            ww *= 2;
        }
    }
    let a = norm_silu(&host, &x, "norm_out", c, hh * ww);
    let (want, _) = conv(&host, &a, "conv_out", c, hh, ww, true);
    let err = cpu::relative_error(&got, &want);
    assert!(err < 1e-4, "decoder relative error {err:e}");
}

#[test]
fn chunked_conv_weights_give_the_same_image() {
    // A weight larger than one storage binding is held in output-channel chunks.
    let ae = AeConfig {
        ch: 32,
        ch_mult: vec![1, 2],
        num_res_blocks: 1,
        z_channels: 32,
    };
    let g = gpu();
    let whole = ParamStore::random(&g, &decoder_parameters(&ae), &mut Rng::new(3), 0.1).unwrap();
    let chunked =
        ParamStore::random_chunked(&g, &decoder_parameters(&ae), &mut Rng::new(3), 0.1, 40_000)
            .unwrap();
    assert!(
        chunked
            .get_chunks("vae.decoder.up.1.upsample.conv1.weight")
            .unwrap()
            .len()
            > 1
    );
    let z: Vec<f32> = (0..32 * 4)
        .map(|i| if i % 3 == 0 { 1.0 } else { -1.0 })
        .collect();
    let a = decode(&g, &ae, &whole, &z, [1, 32, 2, 2])
        .unwrap()
        .read_f32()
        .unwrap();
    let b = decode(&g, &ae, &chunked, &z, [1, 32, 2, 2])
        .unwrap()
        .read_f32()
        .unwrap();
    assert!(cpu::relative_error(&b, &cpu::widen(&a)) < 1e-6);
}

#[test]
fn images_decoded_in_groups_equal_one_batch() {
    let c = bitdance_tests::tiny_config(1);
    let g = bitdance_tests::gpu();
    let store = ParamStore::random(
        &g,
        &decoder_parameters(&c.vae),
        &mut bitdance::rng::Rng::new(8),
        0.2,
    )
    .unwrap();
    let mut rng = bitdance::rng::Rng::new(9);
    let z: Vec<f32> = (0..3 * 32 * 16)
        .map(|_| if rng.below(2) == 1 { 1.0 } else { -1.0 })
        .collect();
    let whole = decode(&g, &c.vae, &store, &z, [3, 32, 4, 4])
        .unwrap()
        .read_f32()
        .unwrap();
    // Each image's widest activation is 8 KiB: a 16 KiB budget (half for it) decodes 1 + 1 + 1.
    let grouped =
        bitdance::model::decode_grouped(&g, &c.vae, &store, &z, [3, 32, 4, 4], 16_384).unwrap();
    assert_eq!(grouped.shape(), &[3, 3, 8, 8]);
    let grouped = grouped.read_f32().unwrap();
    let err = bitdance::reference::relative_error(&grouped, &bitdance::reference::widen(&whole));
    assert!(err < 1e-6, "grouped decode differs: {err:e}");
}
