//! The AR transformer over a full sequence: causal (1x) and block-causal (next-patch)
//! dependence of the head conditions on the tokens, and gradients for every parameter.

use bitdance::autograd::Tape;
use bitdance::model::{ar_parameters, transformer_forward, ModelConfig, ParamStore, ParamVars};
use bitdance::rng::Rng;
use bitdance::Tensor;
use bitdance_tests::{gpu, tiny_config as tiny};

fn conditions(c: &ModelConfig, store: &ParamStore, classes: &[u32], bits: &[f32]) -> Vec<f32> {
    let g = gpu();
    let tape = Tape::new();
    let vars = ParamVars::new(&tape, store, false);
    let idx = Tensor::from_u32(&g, &[classes.len()], classes).unwrap();
    let tokens =
        tape.constant(Tensor::from_f32(&g, &[classes.len(), c.image_tokens(), 32], bits).unwrap());
    let out = transformer_forward(&tape, c, &vars, &idx, tokens).unwrap();
    tape.value(out).read_f32().unwrap()
}

#[test]
fn conditions_depend_only_on_earlier_tokens_or_patches() {
    for p in [1usize, 4] {
        let c = tiny(p);
        let mut rng = Rng::new(3);
        let store = ParamStore::random(&gpu(), &ar_parameters(&c), &mut rng, 0.3).unwrap();
        let t = c.image_tokens();
        let bits: Vec<f32> = (0..2 * t * 32)
            .map(|_| if rng.uniform() < 0.5 { -1.0 } else { 1.0 })
            .collect();
        let base = conditions(&c, &store, &[1, 4], &bits);
        let k = 5; // flip token 5 of the first image
        let mut flipped = bits.clone();
        flipped[k * 32 + 7] *= -1.0;
        let after = conditions(&c, &store, &[1, 4], &flipped);
        let d = c.dim;
        let row_changed = |b: usize, i: usize| {
            let r = (b * t + i) * d;
            base[r..r + d]
                .iter()
                .zip(&after[r..r + d])
                .any(|(x, y)| (x - y).abs() > 1e-6)
        };
        let group = |i: usize| i / p;
        for i in 0..t {
            let must_stay = group(i) <= group(k);
            assert!(
                !(must_stay && row_changed(0, i)),
                "p={p}: condition {i} changed though token {k} comes at or after its patch"
            );
            assert!(!row_changed(1, i), "p={p}: the other image changed at {i}");
        }
        let next = (group(k) + 1) * p;
        assert!(
            row_changed(0, next),
            "p={p}: condition {next} ignores token {k}"
        );
    }
}

#[test]
fn every_transformer_parameter_gets_a_gradient() {
    for p in [1usize, 4] {
        let c = tiny(p);
        let mut rng = Rng::new(9);
        let specs: Vec<_> = ar_parameters(&c)
            .into_iter()
            .filter(|s| !s.name.starts_with("head."))
            .collect();
        let store = ParamStore::random(&gpu(), &specs, &mut rng, 0.3).unwrap();
        let g = gpu();
        let tape = Tape::new();
        let vars = ParamVars::new(&tape, &store, true);
        let idx = Tensor::from_u32(&g, &[2], &[0, 2]).unwrap();
        let t = c.image_tokens();
        let tokens =
            tape.constant(Tensor::from_f32(&g, &[2, t, 32], &rng.normal_vec(2 * t * 32)).unwrap());
        let out = transformer_forward(&tape, &c, &vars, &idx, tokens).unwrap();
        let target = tape.constant(Tensor::zeros(&g, &tape.shape(out)).unwrap());
        let loss = tape.mse_loss(out, target).unwrap();
        let grads = tape.backward(loss).unwrap();
        assert_eq!(
            vars.used().len(),
            store.len(),
            "p={p}: every transformer parameter is used"
        );
        for (name, v) in vars.used() {
            let gv = grads
                .get(v)
                .unwrap_or_else(|| panic!("p={p}: no gradient for {name}"))
                .read_f32()
                .unwrap();
            assert!(
                gv.iter().all(|x| x.is_finite()) && gv.iter().any(|x| *x != 0.0),
                "p={p}: {name}"
            );
        }
    }
}

#[test]
fn cached_steps_reproduce_the_full_sequence() {
    use bitdance::model::{embed_prefix, embed_tokens, transformer_step, KvCache};
    use bitdance::ops;
    for p in [1usize, 4] {
        let c = tiny(p);
        let mut rng = Rng::new(13);
        let store = ParamStore::random(&gpu(), &ar_parameters(&c), &mut rng, 0.3).unwrap();
        let t = c.image_tokens();
        let classes = [2u32, 4];
        let bits: Vec<f32> = (0..2 * t * 32)
            .map(|_| if rng.uniform() < 0.5 { -1.0 } else { 1.0 })
            .collect();
        let full = conditions(&c, &store, &classes, &bits);

        let g = gpu();
        let tokens = Tensor::from_f32(&g, &[2, t, 32], &bits).unwrap();
        let pos = store
            .get("pos_for_diff.weight")
            .unwrap()
            .read_f32()
            .unwrap();
        let mut cache = KvCache::new(&c, &g, 2).unwrap();
        let mut got = vec![0f32; full.len()];
        for step in 0..c.ar_steps() {
            let input = if step == 0 {
                embed_prefix(&c, &store, &classes).unwrap()
            } else {
                embed_tokens(
                    &c,
                    &store,
                    &ops::slice(&tokens, 1, (step - 1) * p, p).unwrap(),
                )
                .unwrap()
            };
            let h = transformer_step(&c, &store, &mut cache, &input).unwrap();
            let n = h.shape()[1];
            let last = ops::slice(&h, 1, n - p, p).unwrap().read_f32().unwrap();
            for b in 0..2 {
                for j in 0..p {
                    let i = step * p + j;
                    for k in 0..c.dim {
                        got[(b * t + i) * c.dim + k] =
                            last[(b * p + j) * c.dim + k] + pos[i * c.dim + k];
                    }
                }
            }
        }
        let err = bitdance::reference::relative_error(&got, &bitdance::reference::widen(&full));
        assert!(
            err < 1e-5,
            "p={p}: cached decoding differs from the full sequence by {err:e}"
        );
    }
}

#[test]
fn class_index_out_of_range_is_named() {
    let c = tiny(1);
    let store = ParamStore::random(&gpu(), &ar_parameters(&c), &mut Rng::new(1), 0.1).unwrap();
    let err = bitdance::model::embed_prefix(&c, &store, &[1, 9])
        .expect_err("class 9 of 5 is refused")
        .to_string();
    assert!(
        err.contains("class index 9") && err.contains("5 classes"),
        "{err}"
    );
}
