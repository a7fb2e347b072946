//! End-to-end: a 2-layer MLP learns a fixed random teacher with AdamW on the GPU, one submit per step.

use bitdance::autograd::Tape;
use bitdance::optim::{AdamW, AdamWConfig, ParamGrad};
use bitdance::rng::Rng;
use bitdance::Tensor;
use bitdance_tests::gpu;

const N: usize = 64;
const IN: usize = 8;
const HIDDEN: usize = 32;
const OUT: usize = 4;
const STEPS: usize = 300;
/// The loss the student must reach (targets have unit variance, so the start is about 1).
const THRESHOLD: f32 = 0.02;

/// The teacher: y = W2 tanh(W1 x), with unit-variance outputs after normalisation.
fn teacher(rng: &mut Rng, x: &[f32]) -> Vec<f32> {
    let w1 = rng.normal_vec(HIDDEN * IN);
    let w2 = rng.normal_vec(OUT * HIDDEN);
    let mut y = vec![0f32; N * OUT];
    for n in 0..N {
        let h: Vec<f32> = (0..HIDDEN)
            .map(|j| {
                (0..IN)
                    .map(|i| w1[j * IN + i] * x[n * IN + i])
                    .sum::<f32>()
                    .tanh()
                    / (IN as f32).sqrt()
            })
            .collect();
        for o in 0..OUT {
            y[n * OUT + o] = (0..HIDDEN).map(|j| w2[o * HIDDEN + j] * h[j]).sum::<f32>()
                / (HIDDEN as f32).sqrt();
        }
    }
    let var = y.iter().map(|v| v * v).sum::<f32>() / y.len() as f32;
    y.iter().map(|v| v / var.sqrt()).collect()
}

#[test]
fn mlp_reaches_the_loss_threshold_with_one_submit_per_step() {
    let gpu = gpu();
    let mut rng = Rng::new(42);
    let x = rng.normal_vec(N * IN);
    let y = teacher(&mut rng, &x);
    let x = Tensor::from_f32(&gpu, &[N, IN], &x).unwrap();
    let y = Tensor::from_f32(&gpu, &[N, OUT], &y).unwrap();
    let init = |rng: &mut Rng, rows: usize, cols: usize| {
        let s = 1.0 / (cols as f32).sqrt();
        Tensor::from_f32(
            &gpu,
            &[rows, cols],
            &rng.normal_vec(rows * cols)
                .iter()
                .map(|v| v * s)
                .collect::<Vec<_>>(),
        )
        .unwrap()
    };
    let params = [
        ("fc1.weight", init(&mut rng, HIDDEN, IN), true),
        ("fc1.bias", Tensor::zeros(&gpu, &[HIDDEN]).unwrap(), false),
        ("fc2.weight", init(&mut rng, OUT, HIDDEN), true),
        ("fc2.bias", Tensor::zeros(&gpu, &[OUT]).unwrap(), false),
    ];
    let mut opt = AdamW::new(AdamWConfig {
        weight_decay: 1e-4,
        ..Default::default()
    });
    let mut losses = Vec::new();
    let mut per_step = None;
    for step in 0..STEPS {
        let before = gpu.stats();
        let tape = Tape::new();
        let p: Vec<_> = params
            .iter()
            .map(|(_, t, _)| tape.param(t.clone()))
            .collect();
        let xv = tape.constant(x.clone());
        let yv = tape.constant(y.clone());
        let h = tape.linear(xv, p[0], Some(p[1])).unwrap();
        let h = tape.silu(h).unwrap();
        let out = tape.linear(h, p[2], Some(p[3])).unwrap();
        let loss = tape.mse_loss(out, yv).unwrap();
        let mut grads = tape.backward(loss).unwrap();
        let grad_tensors: Vec<Tensor> = p
            .iter()
            .map(|&v| grads.take(v).expect("every parameter has a gradient"))
            .collect();
        let pg: Vec<ParamGrad> = params
            .iter()
            .zip(&grad_tensors)
            .map(|((name, value, decay), grad)| ParamGrad {
                name,
                value,
                grad,
                decay: *decay,
            })
            .collect();
        opt.step(&pg, 1e-2, None).unwrap();
        losses.push(tape.value(loss).read_f32().unwrap()[0]);
        if step == 1 {
            let after = gpu.stats();
            per_step = Some((
                after.submits - before.submits,
                after.dispatches - before.dispatches,
            ));
        }
    }
    let (submits, dispatches) = per_step.unwrap();
    eprintln!(
        "loss {:.4} -> {:.5} in {STEPS} steps; per step (forward + backward + AdamW + loss readback): {submits} submit, {dispatches} dispatches",
        losses[0],
        losses[STEPS - 1]
    );
    assert!(losses.iter().all(|l| l.is_finite()), "non-finite loss");
    assert_eq!(submits, 1, "one submit per training step");
    assert!(
        losses[STEPS - 1] < THRESHOLD,
        "final loss {} not below {THRESHOLD}",
        losses[STEPS - 1]
    );
}
