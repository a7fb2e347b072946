//! The autoencoder encoder against an f64 reference built from the kernel references, and the
//! GFQ sign quantizer against a host computation.

use bitdance::model::{encode, encoded_size, encoder_parameters, quantize, AeConfig, ParamStore};
use bitdance::reference::{self as cpu, ConvDims};
use bitdance::rng::Rng;
use bitdance::Tensor;
use bitdance_tests::gpu;

type Host = Vec<(String, Vec<f64>)>;

fn tiny() -> AeConfig {
    AeConfig {
        ch: 32,
        ch_mult: vec![1, 2],
        num_res_blocks: 1,
        z_channels: 16,
    }
}

fn get<'a>(h: &'a Host, name: &str) -> &'a [f64] {
    &h.iter()
        .find(|(n, _)| n == &format!("vae.encoder.{name}"))
        .unwrap_or_else(|| panic!("{name}"))
        .1
}

/// A square convolution of x [1, cin, hh, ww] with `name.weight` (kernel k inferred from the
/// weight size), padding k / 2; returns (y, cout, ho, wo).
fn conv(
    h: &Host,
    x: &[f64],
    name: &str,
    (cin, hh, ww): (usize, usize, usize),
    stride: usize,
    bias: bool,
    cout: usize,
) -> (Vec<f64>, usize, usize, usize) {
    let w = get(h, &format!("{name}.weight"));
    let k = ((w.len() / (cin * cout)) as f64).sqrt() as usize;
    assert_eq!(k * k * cin * cout, w.len(), "{name}");
    let p = k / 2;
    let d = ConvDims {
        b: 1,
        cin,
        h: hh,
        w: ww,
        cout,
        kh: k,
        kw: k,
        stride,
        pad: [p, p, p, p],
    };
    let (ho, wo) = d.out_hw();
    (
        cpu::conv2d(x, w, bias.then(|| get(h, &format!("{name}.bias"))), d),
        cout,
        ho,
        wo,
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

/// The official ResBlock: norm1, swish, conv1, norm2, swish, conv2, + (nin_shortcut) x.
fn res_block(
    h: &Host,
    x: &[f64],
    name: &str,
    cin: usize,
    cout: usize,
    hh: usize,
    ww: usize,
) -> Vec<f64> {
    let dims = (cin, hh, ww);
    let a = norm_silu(h, x, &format!("{name}.norm1"), cin, hh * ww);
    let (a, ..) = conv(h, &a, &format!("{name}.conv1"), dims, 1, false, cout);
    let a = norm_silu(h, &a, &format!("{name}.norm2"), cout, hh * ww);
    let (a, ..) = conv(
        h,
        &a,
        &format!("{name}.conv2"),
        (cout, hh, ww),
        1,
        false,
        cout,
    );
    let r = if cin != cout {
        conv(h, x, &format!("{name}.nin_shortcut"), dims, 1, false, cout).0
    } else {
        x.to_vec()
    };
    a.iter().zip(&r).map(|(p, q)| p + q).collect()
}

/// The encoder of `tiny()` composed from the f64 references, one image.
fn reference_encoder(h: &Host, img: &[f64], hh: usize, ww: usize) -> (Vec<f64>, usize, usize) {
    let ae = tiny();
    let (mut x, mut c, mut hh, mut ww) = conv(h, img, "conv_in", (3, hh, ww), 1, false, ae.ch);
    for (level, mult) in ae.ch_mult.iter().enumerate() {
        let cout = ae.ch * mult;
        x = res_block(h, &x, &format!("down.{level}.block.0"), c, cout, hh, ww);
        c = cout;
        if level + 1 < ae.ch_mult.len() {
            let name = format!("down.{level}.downsample");
            (x, c, hh, ww) = conv(h, &x, &name, (c, hh, ww), 2, true, c);
        }
    }
    x = res_block(h, &x, "mid_block.0", c, c, hh, ww);
    let a = norm_silu(h, &x, "norm_out", c, hh * ww);
    let (z, ..) = conv(h, &a, "conv_out", (c, hh, ww), 1, true, ae.z_channels);
    (z, hh, ww)
}

fn host_params(store: &ParamStore) -> Host {
    store
        .iter()
        .map(|(n, t)| (n.to_string(), cpu::widen(&t.read_f32().unwrap())))
        .collect()
}

#[test]
fn encoder_matches_the_f64_reference() {
    let ae = tiny();
    let mut rng = Rng::new(29);
    let g = gpu();
    let store = ParamStore::random(&g, &encoder_parameters(&ae), &mut rng, 0.1).unwrap();
    let host = host_params(&store);
    // Odd sizes: the stride-2 downsample (padding 1) maps 7 -> 4 and 5 -> 3.
    let (b, hh, ww) = (2, 7, 5);
    let img = rng.uniform_vec(b * 3 * hh * ww, -1.0, 1.0);
    let images = Tensor::from_f32(&g, &[b, 3, hh, ww], &img).unwrap();
    let got = encode(&ae, &store, &images).unwrap();
    let (zh, zw) = (encoded_size(&ae, hh), encoded_size(&ae, ww));
    assert_eq!((zh, zw), (4, 3));
    assert_eq!(got.shape(), &[b, ae.z_channels, zh, zw]);
    let got = got.read_f32().unwrap();

    let per_image = 3 * hh * ww;
    let mut want = Vec::new();
    for i in 0..b {
        let one = cpu::widen(&img[i * per_image..(i + 1) * per_image]);
        let (z, h2, w2) = reference_encoder(&host, &one, hh, ww);
        assert_eq!((h2, w2), (zh, zw));
        want.extend(z);
    }
    let err = cpu::relative_error(&got, &want);
    assert!(err < 1e-4, "encoder relative error {err:e}");
}

#[test]
fn chunked_conv_weights_give_the_same_latent() {
    let ae = tiny();
    let g = gpu();
    let specs = encoder_parameters(&ae);
    let whole = ParamStore::random(&g, &specs, &mut Rng::new(5), 0.1).unwrap();
    let chunked = ParamStore::random_chunked(&g, &specs, &mut Rng::new(5), 0.1, 30_000).unwrap();
    for name in [
        "vae.encoder.down.0.downsample.weight",
        "vae.encoder.down.1.block.0.conv2.weight",
        "vae.encoder.mid_block.0.conv1.weight",
    ] {
        assert!(chunked.get_chunks(name).unwrap().len() > 1, "{name}");
    }
    let mut rng = Rng::new(8);
    let img = rng.uniform_vec(3 * 6 * 9, -1.0, 1.0);
    let images = Tensor::from_f32(&g, &[1, 3, 6, 9], &img).unwrap();
    let a = encode(&ae, &whole, &images).unwrap().read_f32().unwrap();
    let b = encode(&ae, &chunked, &images).unwrap().read_f32().unwrap();
    assert!(cpu::relative_error(&b, &cpu::widen(&a)) < 1e-6);
}

#[test]
fn encoder_rejects_images_without_three_channels() {
    let ae = tiny();
    let g = gpu();
    let store = ParamStore::random(&g, &encoder_parameters(&ae), &mut Rng::new(1), 0.1).unwrap();
    let images = Tensor::from_f32(&g, &[1, 4, 2, 2], &[0.5; 16]).unwrap();
    assert!(encode(&ae, &store, &images).is_err());
}

#[test]
fn quantizer_signs_tokens_and_group_indices_match_the_host() {
    let g = gpu();
    let (b, z, hh, ww) = (2, 16, 3, 5);
    let hw = hh * ww;
    let mut rng = Rng::new(11);
    let mut x = rng.uniform_vec(b * z * hw, -0.5, 0.5);
    // Exact zeros (both signs) quantize to -1, as the official `where(x > 0, 1, -1)`.
    for i in (0..x.len()).step_by(7) {
        x[i] = if i % 2 == 0 { 0.0 } else { -0.0 };
    }
    let latent = Tensor::from_f32(&g, &[b, z, hh, ww], &x).unwrap();
    let q = quantize(&latent).unwrap();
    assert_eq!(q.codes.shape(), &[b, z, hh, ww]);
    assert_eq!(q.tokens.shape(), &[b, hw, z]);
    assert_eq!(q.indices.shape(), &[b, hw, z / 8]);
    let codes = q.codes.read_f32().unwrap();
    let tokens = q.tokens.read_f32().unwrap();
    let indices = q.indices.read_u32().unwrap();
    let sign = |v: f32| if v > 0.0 { 1.0 } else { -1.0 };
    for (i, (&c, &v)) in codes.iter().zip(&x).enumerate() {
        assert_eq!(c, sign(v), "code {i} of {v}");
    }
    for bi in 0..b {
        for p in 0..hw {
            for ch in 0..z {
                let v = x[(bi * z + ch) * hw + p];
                assert_eq!(tokens[(bi * hw + p) * z + ch], sign(v));
            }
            for grp in 0..z / 8 {
                let want: u32 = (0..8)
                    .map(|j| u32::from(x[(bi * z + 8 * grp + j) * hw + p] > 0.0) << j)
                    .sum();
                assert_eq!(indices[(bi * hw + p) * (z / 8) + grp], want);
            }
        }
    }
    assert!(indices.iter().any(|&i| i != 0) && indices.iter().any(|&i| i != 255));
}

#[test]
fn quantizer_rejects_channels_that_do_not_fill_groups_of_eight() {
    let g = gpu();
    let latent = Tensor::from_f32(&g, &[1, 12, 1, 2], &[0.25; 24]).unwrap();
    assert!(quantize(&latent).is_err());
}
