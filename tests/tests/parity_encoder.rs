//! Parity of the autoencoder's encoder and GFQ quantizer with the official PyTorch code, on
//! the tiny autoencoder exported by scripts/reference/export_fixtures.py (`fixture.ae.*`).
//! Errors are max |ours - official| / max |official|.

use bitdance::io::WeightFile;
use bitdance::model::{encode, encoder_parameters, quantize, ModelConfig, ParamStore};
use bitdance::Tensor;
use bitdance_tests::{assert_close, gpu};

const AE: &[u8] = include_bytes!("../fixtures/parity/tiny_ae.safetensors");
const AE_FIXTURE: &[u8] = include_bytes!("../fixtures/parity/tiny_ae.fixture.safetensors");
const CONFIG: &str = include_str!("../fixtures/parity/tiny_1x.json");

#[test]
fn encoder_and_quantizer_match_the_official_autoencoder() {
    let c = ModelConfig::from_json("tiny_1x", CONFIG).unwrap();
    let g = gpu();
    let ae = WeightFile::parse_named("tiny_ae", AE).unwrap();
    let store = ParamStore::from_weights(&g, &ae, &encoder_parameters(&c.vae)).unwrap();
    let fx = WeightFile::parse_named("tiny_ae.fixture", AE_FIXTURE).unwrap();
    let shape = fx.shape("fixture.ae.image").unwrap().to_vec();
    let images = Tensor::from_f32(&g, &shape, &fx.to_f32("fixture.ae.image").unwrap()).unwrap();
    let latent = encode(&c.vae, &store, &images).unwrap();
    let want = fx.to_f32("fixture.ae.latent").unwrap();
    assert_eq!(latent.shape(), fx.shape("fixture.ae.latent").unwrap());
    assert_close(
        "tiny_ae encoder latent",
        &latent.read_f32().unwrap(),
        &want,
        1e-4,
    );

    // Quantize the official latent, so a latent within tolerance but of the other sign
    // near 0 cannot flip a code.
    let official = Tensor::from_f32(&g, latent.shape(), &want).unwrap();
    let q = quantize(&official).unwrap();
    assert_eq!(
        q.codes.read_f32().unwrap(),
        fx.to_f32("fixture.ae.quant").unwrap(),
        "codes"
    );
    // Official indices: one tensor per group g, flattened over (b, h, w); ours [B, h*w, groups].
    let idx = fx.to_f32("fixture.ae.indices").unwrap();
    let groups = fx.shape("fixture.ae.indices").unwrap()[0];
    let positions = idx.len() / groups;
    let ours = q.indices.read_u32().unwrap();
    assert_eq!(ours.len(), idx.len(), "index count");
    for n in 0..positions {
        for gi in 0..groups {
            assert_eq!(
                ours[n * groups + gi] as f32,
                idx[gi * positions + n],
                "group {gi} index at position {n}"
            );
        }
    }
}
