//! The tape's gradients against f64 finite differences, op by op and through a composite graph.

use bitdance::autograd::{Tape, Var};
use bitdance::reference::{self as cpu, finite_difference_vjp, relative_error};
use bitdance::rng::Rng;
use bitdance::{Result, Tensor};
use bitdance_tests::gpu;

/// Checks d<f(inputs), dy>/d input_i from the tape against finite differences of `reference`
/// for every input marked trainable.
fn check(
    name: &str,
    shapes: &[&[usize]],
    trainable: &[bool],
    build: impl Fn(&Tape, &[Var]) -> Result<Var>,
    reference: impl Fn(&[Vec<f64>]) -> Vec<f64>,
) {
    let gpu = gpu();
    let mut rng = Rng::new(name.len() as u64 * 7919);
    let data: Vec<Vec<f32>> = shapes
        .iter()
        .map(|s| rng.normal_vec(s.iter().product()))
        .collect();
    let wide: Vec<Vec<f64>> = data.iter().map(|d| cpu::widen(d)).collect();
    let tape = Tape::new();
    let vars: Vec<Var> = shapes
        .iter()
        .zip(&data)
        .zip(trainable)
        .map(|((s, d), &t)| tape.leaf(Tensor::from_f32(&gpu, s, d).unwrap(), t))
        .collect();
    let out = build(&tape, &vars).unwrap_or_else(|e| panic!("{name}: {e}"));
    let out_ref = reference(&wide);
    let out_gpu = tape.value(out).read_f32().unwrap();
    let err = relative_error(&out_gpu, &out_ref);
    assert!(err < 1e-4, "{name} forward: relative error {err:e}");
    let dy = rng.normal_vec(out_ref.len());
    let grads = tape
        .backward_with(out, Tensor::from_f32(&gpu, &tape.shape(out), &dy).unwrap())
        .unwrap_or_else(|e| panic!("{name} backward: {e}"));
    for (i, &t) in trainable.iter().enumerate() {
        let got = grads.get(vars[i]);
        if !t {
            assert!(
                got.is_none(),
                "{name}: constant input {i} received a gradient"
            );
            continue;
        }
        let got = got
            .unwrap_or_else(|| panic!("{name}: no gradient for input {i}"))
            .read_f32()
            .unwrap();
        let fd = finite_difference_vjp(
            |x| {
                let mut ins = wide.clone();
                ins[i] = x.to_vec();
                reference(&ins)
            },
            &wide[i],
            &cpu::widen(&dy),
        );
        let err = relative_error(&got, &fd);
        assert!(
            err < 1e-4,
            "{name}: gradient of input {i}: relative error {err:e}"
        );
    }
}

fn zip(a: &[f64], b: &[f64], f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| f(*x, *y)).collect()
}

#[test]
fn elementwise_ops() {
    let s: &[usize] = &[5, 7];
    check(
        "add",
        &[s, s],
        &[true, true],
        |t, v| t.add(v[0], v[1]),
        |x| zip(&x[0], &x[1], |a, b| a + b),
    );
    check(
        "sub",
        &[s, s],
        &[true, false],
        |t, v| t.sub(v[0], v[1]),
        |x| zip(&x[0], &x[1], |a, b| a - b),
    );
    check(
        "mul",
        &[s, s],
        &[true, true],
        |t, v| t.mul(v[0], v[1]),
        |x| zip(&x[0], &x[1], |a, b| a * b),
    );
    check(
        "scale",
        &[s],
        &[true],
        |t, v| t.scale(v[0], -0.3),
        |x| x[0].iter().map(|a| -0.3 * a).collect(),
    );
    check(
        "silu",
        &[s],
        &[true],
        |t, v| t.silu(v[0]),
        |x| cpu::silu(&x[0]),
    );
    check(
        "swiglu",
        &[&[3, 10]],
        &[true],
        |t, v| t.swiglu(v[0]),
        |x| cpu::swiglu(&x[0], 5),
    );
}

#[test]
fn reused_values_accumulate_gradients() {
    // f(x) = x * x + silu(x): x feeds three uses.
    check(
        "x*x + silu(x)",
        &[&[4, 9]],
        &[true],
        |t, v| {
            let sq = t.mul(v[0], v[0])?;
            let s = t.silu(v[0])?;
            t.add(sq, s)
        },
        |x| zip(&x[0], &cpu::silu(&x[0]), |a, s| a * a + s),
    );
}

#[test]
fn matmul_linear_and_losses() {
    use bitdance::reference::{matmul_ref, mse_ref};
    for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
        let sa: &[usize] = if ta { &[6, 5] } else { &[5, 6] };
        let sb: &[usize] = if tb { &[3, 6] } else { &[6, 3] };
        check(
            &format!("matmul ta={ta} tb={tb}"),
            &[sa, sb],
            &[true, true],
            |t, v| t.matmul(v[0], v[1], None, ta, tb),
            |x| matmul_ref(&x[0], &x[1], None, 1, (5, 6, 3), ta, tb, false),
        );
    }
    check(
        "linear, batched input, shared weight + bias",
        &[&[2, 4, 6], &[3, 6], &[3]],
        &[true, true, true],
        |t, v| t.linear(v[0], v[1], Some(v[2])),
        |x| matmul_ref(&x[0], &x[1], Some(&x[2]), 8, (1, 6, 3), false, true, true),
    );
    check(
        "mse_loss",
        &[&[4, 5], &[4, 5]],
        &[true, true],
        |t, v| t.mse_loss(v[0], v[1]),
        |x| vec![mse_ref(&x[0], &x[1])],
    );
    check(
        "mean_all",
        &[&[3, 7]],
        &[true],
        |t, v| t.mean_all(v[0]),
        |x| vec![x[0].iter().sum::<f64>() / 21.0],
    );
}
