//! The diffusion heads: the 1x MLP head against an f64 reference, and both heads train
//! (every parameter receives a finite gradient through the tape).

use bitdance::autograd::Tape;
use bitdance::model::{
    head_forward, head_predict, timestep_embedding, ModelConfig, ParamStore, ParamVars,
};
use bitdance::reference::{self as cpu, MatmulDims};
use bitdance::rng::Rng;
use bitdance::Tensor;
use bitdance_tests::{gpu, tiny_config as tiny};

/// Head parameters only (`head.net.*`), random.
fn head_params(c: &ModelConfig, rng: &mut Rng) -> (ParamStore, Vec<(String, Vec<f64>)>) {
    let specs: Vec<_> = bitdance::model::ar_parameters(c)
        .into_iter()
        .filter(|p| p.name.starts_with("head.net."))
        .collect();
    let store = ParamStore::random(&gpu(), &specs, rng, 0.2).unwrap();
    let host = store
        .iter()
        .map(|(n, t)| (n.to_string(), cpu::widen(&t.read_f32().unwrap())))
        .collect();
    (store, host)
}

fn linear(x: &[f64], rows: usize, host: &[(String, Vec<f64>)], name: &str) -> Vec<f64> {
    let get = |s: &str| {
        &host
            .iter()
            .find(|(n, _)| n == &format!("head.net.{name}.{s}"))
            .unwrap()
            .1
    };
    let (w, b) = (get("weight"), get("bias"));
    let (out, inp) = (b.len(), w.len() / b.len());
    let dims = MatmulDims {
        batch: 1,
        m: rows,
        k: inp,
        n: out,
        trans_a: false,
        trans_b: true,
        b_shared: false,
    };
    cpu::matmul_ref(x, w, Some(b), dims)
}

fn param<'a>(host: &'a [(String, Vec<f64>)], name: &str) -> &'a [f64] {
    &host
        .iter()
        .find(|(n, _)| n == &format!("head.net.{name}"))
        .unwrap()
        .1
}

#[test]
fn mlp_head_matches_the_f64_reference() {
    let c = tiny(1);
    let mut rng = Rng::new(11);
    let (store, host) = head_params(&c, &mut rng);
    let rows = 5;
    let (w, ch) = (c.diff_dim, c.diff_dim * 3 / 2);
    let x_t = rng.normal_vec(rows * 32);
    let cond = rng.normal_vec(rows * c.dim);
    let t: Vec<f32> = (0..rows).map(|i| 0.1 + 0.2 * i as f32).collect();
    let tf = timestep_embedding(&t, 256);
    let g = gpu();
    let got = head_predict(
        &c,
        &store,
        &Tensor::from_f32(&g, &[rows, 32], &x_t).unwrap(),
        &Tensor::from_f32(&g, &[rows, 256], &tf).unwrap(),
        &Tensor::from_f32(&g, &[rows, c.dim], &cond).unwrap(),
    )
    .unwrap()
    .read_f32()
    .unwrap();

    let mut x = linear(&cpu::widen(&x_t), rows, &host, "input_proj");
    let te = cpu::silu(&linear(&cpu::widen(&tf), rows, &host, "time_embed.mlp.0"));
    let te = linear(&te, rows, &host, "time_embed.mlp.2");
    let ce = linear(&cpu::widen(&cond), rows, &host, "cond_embed");
    let y = cpu::silu(&te.iter().zip(&ce).map(|(a, b)| a + b).collect::<Vec<_>>());
    let chunk = |m: &[f64], k: usize, n: usize| -> Vec<f64> {
        m.chunks(n * w)
            .flat_map(|r| r[k * w..(k + 1) * w].to_vec())
            .collect()
    };
    let mut mods = Vec::new();
    for i in 0..c.diff_layers {
        if i % 2 == 0 {
            mods = (0..3)
                .map(|k| {
                    chunk(
                        &linear(&y, rows, &host, &format!("ada_ln_blocks.{}", i / 2)),
                        k,
                        3,
                    )
                })
                .collect();
        }
        let b = format!("res_blocks.{i}");
        let (h, _, _) = cpu::layer_norm(
            &x,
            Some(param(&host, &format!("{b}.norm.weight"))),
            Some(param(&host, &format!("{b}.norm.bias"))),
            w,
            1e-6,
        );
        let h = cpu::modulate(&h, &mods[1], &mods[0], 1, w);
        let h = cpu::swiglu(&linear(&h, rows, &host, &format!("{b}.w1")), ch);
        let h = linear(&h, rows, &host, &format!("{b}.w2"));
        x = cpu::gated_residual(&x, &mods[2], &h, 1, w);
    }
    let fin = linear(&y, rows, &host, "final_layer.ada_ln_modulation");
    let (h, _, _) = cpu::layer_norm(&x, None, None, w, 1e-6);
    let h = cpu::modulate(&h, &chunk(&fin, 1, 2), &chunk(&fin, 0, 2), 1, w);
    let want = linear(&h, rows, &host, "final_layer.linear");
    let err = cpu::relative_error(&got, &want);
    assert!(err < 1e-4, "head output relative error {err:e}");
}

#[test]
fn both_heads_give_every_parameter_a_gradient() {
    for p in [1, 4] {
        let c = tiny(p);
        let mut rng = Rng::new(5);
        let (store, _) = head_params(&c, &mut rng);
        let rows = 2 * p;
        let g = gpu();
        let tape = Tape::new();
        let vars = ParamVars::new(&tape, &store, true);
        let x =
            tape.constant(Tensor::from_f32(&g, &[rows, 32], &rng.normal_vec(rows * 32)).unwrap());
        let tf = tape.constant(
            Tensor::from_f32(&g, &[rows, 256], &timestep_embedding(&vec![0.4; rows], 256)).unwrap(),
        );
        let z = tape
            .constant(Tensor::from_f32(&g, &[rows, c.dim], &rng.normal_vec(rows * c.dim)).unwrap());
        let target =
            tape.constant(Tensor::from_f32(&g, &[rows, 32], &rng.normal_vec(rows * 32)).unwrap());
        let out = head_forward(&tape, &c, &vars, x, tf, z).unwrap();
        let loss = tape.mse_loss(out, target).unwrap();
        let grads = tape.backward(loss).unwrap();
        let used = vars.used();
        assert_eq!(
            used.len(),
            store.len(),
            "p={p}: every head parameter is used"
        );
        for (name, v) in used {
            let gv = grads
                .get(v)
                .unwrap_or_else(|| panic!("p={p}: no gradient for {name}"))
                .read_f32()
                .unwrap();
            assert!(
                gv.iter().all(|x| x.is_finite()) && gv.iter().any(|x| *x != 0.0),
                "p={p}: {name} gradient {gv:?}"
            );
        }
    }
}

#[test]
fn sampler_matches_a_host_loop_and_is_deterministic() {
    use bitdance::model::{sample_head, time_grid, LAST_STEP};
    for (p, cfg) in [(1usize, 3.0f32), (4, 1.0), (4, 2.5)] {
        let c = tiny(p);
        let mut rng = Rng::new(21);
        let (store, _) = head_params(&c, &mut rng);
        let g = gpu();
        let rows = 2 * p;
        let m = if cfg > 1.0 { 2 * rows } else { rows };
        let cond_host = rng.normal_vec(m * c.dim);
        let cond = Tensor::from_f32(&g, &[m, c.dim], &cond_host).unwrap();
        // 41 evaluations of 16 rows cross a block of the sampler's batched conditioning (512 rows).
        let steps = 40;
        let got = sample_head(&c, &store, &cond, cfg, steps, &mut Rng::new(7))
            .unwrap()
            .read_f32()
            .unwrap();
        let again = sample_head(&c, &store, &cond, cfg, steps, &mut Rng::new(7))
            .unwrap()
            .read_f32()
            .unwrap();
        assert_eq!(got, again, "p={p}: same seed, same tokens");
        assert!(got.iter().all(|v| *v == 1.0 || *v == -1.0));

        // The same loop on the host: GPU head predictions, f64 updates.
        let mut draws = Rng::new(7);
        let mut x = cpu::widen(&draws.normal_vec(rows * 32));
        let predict = |x: &[f64], t: f32| -> Vec<f64> {
            let xs: Vec<f32> = x.iter().map(|v| *v as f32).collect();
            let combined: Vec<f32> = if cfg > 1.0 {
                [xs.clone(), xs].concat()
            } else {
                xs
            };
            let tf: Vec<f32> = timestep_embedding(&[t], 256)
                .iter()
                .copied()
                .cycle()
                .take(m * 256)
                .collect();
            let out = head_predict(
                &c,
                &store,
                &Tensor::from_f32(&g, &[m, 32], &combined).unwrap(),
                &Tensor::from_f32(&g, &[m, 256], &tf).unwrap(),
                &cond,
            )
            .unwrap();
            cpu::widen(&out.read_f32().unwrap())
        };
        let grid = time_grid(steps);
        let mut t = 0.0f32;
        for i in 0..steps {
            let dt = grid[i + 1] - grid[i];
            let eps = cpu::widen(&draws.normal_vec(rows * 32));
            x = cpu::flow_step_ref(
                &x,
                &predict(&x, t),
                Some(&eps),
                t as f64,
                dt as f64,
                cfg as f64,
            );
            t += dt;
        }
        let t_last = 1.0 - LAST_STEP;
        x = cpu::flow_step_ref(
            &x,
            &predict(&x, t_last),
            None,
            t_last as f64,
            LAST_STEP as f64,
            cfg as f64,
        );
        let same = x
            .iter()
            .zip(&got)
            .filter(|(a, b)| (**a > 0.0) == (**b > 0.0))
            .count();
        assert!(
            same as f64 >= 0.99 * x.len() as f64,
            "p={p} cfg={cfg}: {same} of {} signs agree",
            x.len()
        );
    }
}

#[test]
fn shared_time_path_equals_the_per_row_head() {
    use bitdance::model::{head_condition, head_predict_at};
    for p in [1, 4] {
        let c = tiny(p);
        let mut rng = Rng::new(8);
        let (store, _) = head_params(&c, &mut rng);
        let g = gpu();
        let rows = 3 * p;
        let x = Tensor::from_f32(&g, &[rows, 32], &rng.normal_vec(rows * 32)).unwrap();
        let cond = Tensor::from_f32(&g, &[rows, c.dim], &rng.normal_vec(rows * c.dim)).unwrap();
        let t = 0.37;
        let tf =
            Tensor::from_f32(&g, &[rows, 256], &timestep_embedding(&vec![t; rows], 256)).unwrap();
        let want = head_predict(&c, &store, &x, &tf, &cond)
            .unwrap()
            .read_f32()
            .unwrap();
        let emb = head_condition(&c, &store, &cond).unwrap();
        let got = head_predict_at(&c, &store, &x, t, &emb)
            .unwrap()
            .read_f32()
            .unwrap();
        let err = cpu::relative_error(&got, &cpu::widen(&want));
        assert!(err < 1e-5, "p={p}: relative error {err:e}");
    }
}
