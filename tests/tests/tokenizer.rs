//! Tokenizer training: the tape encoder and decoder equal the inference ones, every parameter
//! receives a gradient, and a tiny tokenizer learns to reconstruct a few images.

use bitdance::autograd::Tape;
use bitdance::gpu::block_on;
use bitdance::model::{
    decode, decoder_forward, encode, encoder_forward, init_autoencoder, ParamStore, ParamVars,
};
use bitdance::optim::{AdamWConfig, LrSchedule};
use bitdance::reference::{relative_error, widen};
use bitdance::rng::Rng;
use bitdance::train::{Task, TokenizerRecipe, TrainSettings, Trainer};
use bitdance::Tensor;
use bitdance_tests::{gpu, tiny_config as tiny};

/// Smooth random images [B, 3, 8, 8] in [-1, 1].
fn images(b: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    for _ in 0..b * 3 {
        let (fx, fy, ph) = (rng.uniform(), rng.uniform(), rng.uniform() * 6.0);
        for y in 0..8 {
            for x in 0..8 {
                out.push(((fx * x as f64 + fy * y as f64) * 0.8 + ph).sin() as f32 * 0.9);
            }
        }
    }
    out
}

#[test]
fn tape_autoencoder_matches_inference_and_trains_every_parameter() {
    let c = tiny(1);
    let g = gpu();
    let store = init_autoencoder(&g, &c.vae, &mut Rng::new(3)).unwrap();
    let x = Tensor::from_f32(&g, &[2, 3, 8, 8], &images(2, 1)).unwrap();
    let tape = Tape::new();
    let vars = ParamVars::new(&tape, &store, true);
    let xv = tape.constant(x.clone());
    let z = encoder_forward(&tape, &c.vae, &vars, xv).unwrap();
    let want = encode(&c.vae, &store, &x).unwrap().read_f32().unwrap();
    let got = tape.value(z).read_f32().unwrap();
    assert!(relative_error(&got, &widen(&want)) < 1e-5);
    let codes = tape.sign_ste(z).unwrap();
    let y = decoder_forward(&tape, &c.vae, &vars, codes).unwrap();
    let z_host = tape.value(codes).read_f32().unwrap();
    let want = decode(&g, &c.vae, &store, &z_host, [2, 32, 4, 4])
        .unwrap()
        .read_f32()
        .unwrap();
    let got = tape.value(y).read_f32().unwrap();
    assert!(relative_error(&got, &widen(&want)) < 1e-5);
    let loss = tape.mse_loss(y, xv).unwrap();
    let grads = tape.backward(loss).unwrap();
    let used = vars.used();
    assert_eq!(
        used.len(),
        store.len(),
        "every autoencoder parameter is used"
    );
    for (name, v) in used {
        let gv = grads.get(v).unwrap().read_f32().unwrap();
        assert!(
            gv.iter().all(|v| v.is_finite()) && gv.iter().any(|v| *v != 0.0),
            "{name}: gradient {gv:?}"
        );
    }
}

#[test]
fn a_tiny_tokenizer_learns_to_reconstruct() {
    let c = tiny(1);
    let g = gpu();
    let params = init_autoencoder(&g, &c.vae, &mut Rng::new(4)).unwrap();
    let settings = TrainSettings {
        task: Task::Tokenizer(TokenizerRecipe::default()),
        adamw: AdamWConfig::default(),
        schedule: LrSchedule {
            peak: 2e-3,
            min_lr: 2e-4,
            warmup: 5,
            decay_start: 5,
            total: 200,
        },
        ema_decay: 0.9,
        seed: 1,
    };
    let mut t = Trainer::new(c, params, ParamStore::new(), settings).unwrap();
    let data = images(4, 9);
    let mut mse = Vec::new();
    for _ in 0..200 {
        let s = block_on(t.step_tokenizer(&data)).unwrap();
        mse.push(s.terms.iter().find(|(n, _)| *n == "mse").unwrap().1);
    }
    eprintln!(
        "reconstruction MSE {:?}",
        mse.iter().step_by(20).collect::<Vec<_>>()
    );
    // Below a quarter of the images' variance (what predicting their mean would score).
    let mean = data.iter().sum::<f32>() / data.len() as f32;
    let var = data.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / data.len() as f32;
    assert!(
        mse[199] < 0.25 * var,
        "MSE {} -> {} (variance {var})",
        mse[0],
        mse[199]
    );
}
