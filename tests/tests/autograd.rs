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
    use bitdance::reference::{matmul_ref, mse_loss, MatmulDims};
    for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
        let sa: &[usize] = if ta { &[6, 5] } else { &[5, 6] };
        let sb: &[usize] = if tb { &[3, 6] } else { &[6, 3] };
        check(
            &format!("matmul ta={ta} tb={tb}"),
            &[sa, sb],
            &[true, true],
            |t, v| t.matmul(v[0], v[1], None, ta, tb),
            |x| {
                let dims = MatmulDims {
                    batch: 1,
                    m: 5,
                    k: 6,
                    n: 3,
                    trans_a: ta,
                    trans_b: tb,
                    b_shared: false,
                };
                matmul_ref(&x[0], &x[1], None, dims)
            },
        );
    }
    check(
        "linear, batched input, shared weight + bias",
        &[&[2, 4, 6], &[3, 6], &[3]],
        &[true, true, true],
        |t, v| t.linear(v[0], v[1], Some(v[2])),
        |x| {
            let dims = MatmulDims {
                batch: 8,
                m: 1,
                k: 6,
                n: 3,
                trans_a: false,
                trans_b: true,
                b_shared: true,
            };
            matmul_ref(&x[0], &x[1], Some(&x[2]), dims)
        },
    );
    check(
        "mse_loss",
        &[&[4, 5], &[4, 5]],
        &[true, true],
        |t, v| t.mse_loss(v[0], v[1]),
        |x| vec![mse_loss(&x[0], &x[1])],
    );
    check(
        "l1_loss",
        &[&[4, 5], &[4, 5]],
        &[true, true],
        |t, v| t.l1_loss(v[0], v[1]),
        |x| vec![cpu::l1_loss(&x[0], &x[1])],
    );
    check(
        "mean_all",
        &[&[3, 7]],
        &[true],
        |t, v| t.mean_all(v[0]),
        |x| vec![x[0].iter().sum::<f64>() / 21.0],
    );
}

#[test]
fn a_low_rank_adapter_adds_its_product_and_trains_alone() {
    use bitdance::autograd::Adapter;
    use bitdance::reference::{matmul_ref, MatmulDims};
    // x [2, 3, 7] through W [5, 7] with A [2, 7], B [5, 2]: W is frozen, A, B and x train.
    let rows = |k: usize, n: usize| MatmulDims {
        batch: 1,
        m: 6,
        k,
        n,
        trans_a: false,
        trans_b: true,
        b_shared: false,
    };
    check(
        "linear with a rank-2 adapter",
        &[&[2, 3, 7], &[5, 7], &[2, 7], &[5, 2], &[5]],
        &[true, false, true, true, true],
        |t, v| {
            t.adapt(
                v[1],
                Adapter {
                    a: v[2],
                    b: v[3],
                    scale: 0.75,
                },
            );
            t.linear(v[0], v[1], Some(v[4]))
        },
        |x| {
            let y = matmul_ref(&x[0], &x[1], Some(&x[4]), rows(7, 5));
            let down = matmul_ref(&x[0], &x[2], None, rows(7, 2));
            let up = matmul_ref(&down, &x[3], None, rows(2, 5));
            zip(&y, &up, |y, u| y + 0.75 * u)
        },
    );
}

#[test]
fn model_ops() {
    use bitdance::ops::{rope_positions_raster, AttentionMask};
    use bitdance::reference::{
        attention, embedding, gated_residual, layer_norm, modulate, rms_norm, rope_2d, slice,
        softmax, split_heads, AttentionDims,
    };
    let d = 9;
    check(
        "rms_norm",
        &[&[4, 9], &[9]],
        &[true, true],
        |t, v| t.rms_norm(v[0], Some(v[1]), 1e-6),
        |x| rms_norm(&x[0], Some(&x[1]), d, 1e-6).0,
    );
    check(
        "layer_norm",
        &[&[4, 9], &[9], &[9]],
        &[true, true, true],
        |t, v| t.layer_norm(v[0], Some((v[1], v[2])), 1e-6),
        |x| layer_norm(&x[0], Some(&x[1]), Some(&x[2]), d, 1e-6).0,
    );
    check(
        "layer_norm (no affine)",
        &[&[4, 9]],
        &[true],
        |t, v| t.layer_norm(v[0], None, 1e-6),
        |x| layer_norm(&x[0], None, None, d, 1e-6).0,
    );
    check(
        "softmax",
        &[&[4, 9]],
        &[true],
        |t, v| t.softmax(v[0]),
        |x| softmax(&x[0], d),
    );
    check(
        "modulate",
        &[&[2, 3, 5], &[2, 5], &[2, 5]],
        &[true, true, true],
        |t, v| t.modulate(v[0], v[1], v[2]),
        |x| modulate(&x[0], &x[1], &x[2], 3, 5),
    );
    check(
        "gated_residual",
        &[&[2, 3, 5], &[2, 5], &[2, 3, 5]],
        &[true, true, true],
        |t, v| t.gated_residual(v[0], v[1], v[2]),
        |x| gated_residual(&x[0], &x[1], &x[2], 3, 5),
    );
    let pos = rope_positions_raster(1, 2, 2);
    let pos_t = Tensor::from_f32(&gpu(), &[5, 2], &pos).unwrap();
    let table = bitdance::ops::RopeTable::new(&pos_t, 2, 8).unwrap();
    let posv = cpu::widen(&pos);
    check(
        "rope_2d",
        &[&[1, 5, 2, 8]],
        &[true],
        |t, v| t.rope_2d(v[0], &table),
        |x| rope_2d(&x[0], &posv, 5, 2, 8, 1.0),
    );
    let mask = AttentionMask::BlockCausal { start: 1, block: 2 };
    check(
        "attention",
        &[&[1, 2, 5, 4], &[1, 2, 5, 4], &[1, 2, 5, 4]],
        &[true, true, true],
        |t, v| t.attention(v[0], v[1], v[2], mask, 0.5),
        |x| {
            attention(
                &x[0],
                &x[1],
                &x[2],
                AttentionDims {
                    b: 1,
                    h: 2,
                    tq: 5,
                    tk_cap: 5,
                    d: 4,
                    kv_len: 5,
                    q_offset: 0,
                },
                mask,
                0.5,
            )
            .0
        },
    );
    check(
        "split_qkv -> q*k + v, merge_heads",
        &[&[2, 3, 12]],
        &[true],
        |t, v| {
            let (q, k, vv) = t.split_qkv(v[0], 2)?;
            let qk = t.mul(q, k)?;
            let s = t.add(qk, vv)?;
            t.merge_heads(s)
        },
        |x| {
            let chunk = |i: usize| -> Vec<f64> {
                let rows: Vec<f64> = x[0]
                    .chunks(12)
                    .flat_map(|r| r[i * 4..(i + 1) * 4].to_vec())
                    .collect();
                rows
            };
            // q*k + v in [B, T, H*D] layout is the same element-wise.
            let (q, k, v) = (chunk(0), chunk(1), chunk(2));
            q.iter()
                .zip(&k)
                .zip(&v)
                .map(|((a, b), c)| a * b + c)
                .collect()
        },
    );
    check(
        "split_heads",
        &[&[2, 3, 8]],
        &[true],
        |t, v| t.split_heads(v[0], 2),
        |x| split_heads(&x[0], 2, 3, 2, 4),
    );
    let idx = Tensor::from_u32(&gpu(), &[4], &[2, 0, 2, 3]).unwrap();
    check(
        "embedding",
        &[&[5, 3]],
        &[true],
        |t, v| t.embedding(v[0], &idx),
        |x| embedding(&x[0], 3, &[2, 0, 2, 3]),
    );
    check(
        "slice",
        &[&[3, 6, 2]],
        &[true],
        |t, v| t.slice(v[0], 1, 2, 3),
        |x| slice(&x[0], &[3, 6, 2], 1, 2, 3),
    );
    // Multi-output ops: every piece used (one twice), and a piece left without a gradient.
    check(
        "split -> a*b + b*c + b",
        &[&[3, 7, 2]],
        &[true],
        |t, v| {
            let p = t.split(v[0], 1, &[2, 2, 3])?;
            let c = t.slice(p[2], 1, 0, 2)?;
            let ab = t.mul(p[0], p[1])?;
            let bc = t.mul(p[1], c)?;
            let s = t.add(ab, bc)?;
            t.add(s, p[1])
        },
        |x| {
            let a = slice(&x[0], &[3, 7, 2], 1, 0, 2);
            let b = slice(&x[0], &[3, 7, 2], 1, 2, 2);
            let c = slice(&x[0], &[3, 7, 2], 1, 4, 2);
            (0..a.len())
                .map(|i| a[i] * b[i] + b[i] * c[i] + b[i])
                .collect()
        },
    );
    check(
        "split, middle piece unused",
        &[&[2, 9]],
        &[true],
        |t, v| {
            let p = t.split(v[0], 1, &[4, 1, 4])?;
            t.mul(p[0], p[2])
        },
        |x| {
            let a = slice(&x[0], &[2, 9], 1, 0, 4);
            let c = slice(&x[0], &[2, 9], 1, 5, 4);
            zip(&a, &c, |p, q| p * q)
        },
    );
    check(
        "split_qkv, k unused",
        &[&[2, 3, 12]],
        &[true],
        |t, v| {
            let (q, _, vv) = t.split_qkv(v[0], 2)?;
            let s = t.mul(q, vv)?;
            t.merge_heads(s)
        },
        |x| {
            let chunk = |i: usize| -> Vec<f64> {
                x[0].chunks(12)
                    .flat_map(|r| r[i * 4..(i + 1) * 4].to_vec())
                    .collect()
            };
            zip(&chunk(0), &chunk(2), |a, b| a * b)
        },
    );
    check(
        "concat",
        &[&[2, 3], &[2, 4]],
        &[true, true],
        |t, v| t.concat(&[v[0], v[1]], 1),
        |x| {
            (0..2)
                .flat_map(|r| [&x[0][r * 3..r * 3 + 3], &x[1][r * 4..r * 4 + 4]].concat())
                .collect()
        },
    );
}

#[test]
fn quantizer_ops() {
    use bitdance::reference::lfq_entropy_loss;
    check(
        "lfq_entropy_loss",
        &[&[2, 16]],
        &[true],
        |t, v| t.lfq_entropy_loss(v[0], 2, 0.7),
        |x| vec![lfq_entropy_loss(&x[0], 8, 0.7)],
    );
    // Straight-through: d<sign(x), dy>/dx is taken as dy.
    let gpu = gpu();
    let tape = Tape::new();
    let x = tape.param(Tensor::from_f32(&gpu, &[4], &[0.3, -1.2, 0.0, 2.0]).unwrap());
    let q = tape.sign_ste(x).unwrap();
    assert_eq!(
        tape.value(q).read_f32().unwrap(),
        vec![1.0, -1.0, -1.0, 1.0]
    );
    let dy = Tensor::from_f32(&gpu, &[4], &[0.5, 1.5, -2.0, 3.0]).unwrap();
    let grads = tape.backward_with(q, dy).unwrap();
    assert_eq!(
        grads.get(x).unwrap().read_f32().unwrap(),
        vec![0.5, 1.5, -2.0, 3.0]
    );
}

#[test]
fn row_statistics() {
    // Both outputs of the tape op, combined so one check covers each gradient path.
    let (rows, d) = (3usize, 13usize);
    check(
        "row_stats",
        &[&[rows, d]],
        &[true],
        |t, v| {
            let (mean, std) = t.row_stats(v[0], 1e-6)?;
            let m = t.scale(mean, 2.0)?;
            t.add(m, std)
        },
        |x| {
            let (m, s) = cpu::row_stats(&x[0], d, 1e-6);
            zip(&m, &s, |a, b| 2.0 * a + b)
        },
    );
}

#[test]
fn autoencoder_ops() {
    use bitdance::reference::ConvDims;
    for (stride, pad, k) in [(1usize, 1usize, 3usize), (2, 1, 3), (1, 0, 1)] {
        let (b, cin, h, w, cout) = (2, 3, 5, 6, 4);
        let d = ConvDims::from((b, cin, h, w, cout, k, stride, [pad; 4]));
        check(
            &format!("conv2d s{stride} p{pad} k{k}"),
            &[&[b, cin, h, w], &[cout, cin, k, k], &[cout]],
            &[true, true, true],
            |t, v| t.conv2d(v[0], v[1], Some(v[2]), stride, pad),
            |x| cpu::conv2d(&x[0], &x[1], Some(&x[2]), d),
        );
    }
    check(
        "depth_to_space",
        &[&[2, 12, 2, 3]],
        &[true],
        |t, v| t.depth_to_space(v[0], 2),
        |x| cpu::depth_to_space(&x[0], 2, 3, 2, 3, 2),
    );
    check(
        "row_affine",
        &[&[2, 3, 4, 5], &[2, 3], &[2, 3]],
        &[true, true, true],
        |t, v| t.row_affine(v[0], v[1], v[2]),
        |x| {
            x[0].iter()
                .enumerate()
                .map(|(i, v)| v * x[1][i / 20] + x[2][i / 20])
                .collect()
        },
    );
    for affine in [true, false] {
        let (b, c, h, w, g) = (2, 8, 3, 5, 4);
        check(
            &format!("group_norm affine {affine}"),
            &[&[b, c, h, w], &[c], &[c]],
            &[true, affine, affine],
            |t, v| t.group_norm(v[0], g, affine.then_some((v[1], v[2])), 1e-6),
            |x| {
                let (wr, br) = (affine.then_some(&x[1][..]), affine.then_some(&x[2][..]));
                cpu::group_norm(&x[0], c, h * w, g, wr, br, 1e-6)
            },
        );
    }
}
