//! Conformance of the matmul kernels: every transpose combination, bias, batched and
//! broadcast operands, odd and degenerate shapes, a long K, under every configuration, also
//! with 16-bit weights (against f64 on the f16-rounded values); and the two backward
//! compositions against finite differences.

use crate::conformance::{
    f16_form_suffix, CheckResult, Checker, NO_SUBGROUPS, TOL, TOL_GRAD, TOL_LONG,
};
use crate::gpu::F16Form;
use crate::ops::{self, MatmulConfig, MATMUL_CONFIGS};
use crate::reference::{finite_difference_vjp, matmul_ref, MatmulDims};
use crate::{Result, Tensor};

/// One case: shapes of a and b as stored, bias or not, transposes.
struct Case {
    a: &'static [usize],
    b: &'static [usize],
    bias: bool,
    trans_a: bool,
    trans_b: bool,
}

const fn case(
    a: &'static [usize],
    b: &'static [usize],
    bias: bool,
    trans_a: bool,
    trans_b: bool,
) -> Case {
    Case {
        a,
        b,
        bias,
        trans_a,
        trans_b,
    }
}

/// Cases run under every configuration (odd sizes: no tile or vec4 multiple).
const CASES: &[Case] = &[
    case(&[37, 67], &[67, 29], false, false, false),
    case(&[37, 67], &[29, 67], true, false, true),
    case(&[67, 37], &[67, 29], true, true, false),
    case(&[67, 37], &[29, 67], false, true, true),
    case(&[133, 36], &[36, 37], true, false, false),
    case(&[3, 17, 36], &[3, 36, 29], true, false, false),
    case(&[3, 17, 36], &[3, 29, 36], false, false, true),
    case(&[3, 36, 17], &[3, 29, 36], true, true, true),
    case(&[3, 17, 67], &[29, 67], true, false, true),
    case(&[3, 67, 17], &[67, 29], true, true, false),
    case(&[2, 3, 5, 66], &[66, 7], false, false, false),
    // Few rows (a sampling step's linear layers): the 4- and 8-column register blocks.
    case(&[6, 67], &[29, 67], true, false, true),
    case(&[8, 36], &[28, 36], true, false, true),
    case(&[3, 67], &[67, 29], false, false, false),
    case(&[2, 7, 36], &[29, 36], true, false, true),
    case(&[1, 67], &[29, 67], true, false, true),
    case(&[1, 67], &[67, 29], false, false, false),
    // 9-24 rows (two or three images' head rows): the 16- and 24-column blocks.
    case(&[13, 67], &[37, 67], true, false, true),
    case(&[21, 36], &[37, 36], false, false, true),
    case(&[37, 67], &[67, 1], true, false, false),
    case(&[37, 1], &[1, 29], true, false, false),
    case(&[37, 2], &[29, 2], false, false, true),
    case(&[3, 37], &[3, 29], false, true, false),
    // Multiples of 4 along K and along the rows: read in place, no packing.
    case(&[20, 36], &[36, 28], true, false, false),
    case(&[36, 20], &[36, 28], false, true, false),
    case(&[36, 20], &[28, 36], true, true, true),
    case(&[3, 36, 20], &[3, 36, 28], true, true, false),
    case(&[3, 36, 20], &[36, 28], false, true, false),
    case(&[36, 208], &[36, 20], true, true, false),
    case(&[4, 36], &[36, 212], false, false, false),
];

/// Cases with 16-bit weights b ([N, K] with K a multiple of 4, or [K, N] with both),
/// run under every configuration.
const HALF_CASES: &[Case] = &[
    case(&[8, 36], &[28, 36], true, false, true),
    case(&[37, 68], &[29, 68], true, false, true),
    case(&[3, 17, 36], &[29, 36], false, false, true),
    case(&[1, 36], &[29, 36], true, false, true),
    case(&[7, 1032], &[9, 1032], true, false, true),
    // K a multiple of 8: two K steps per load (mm_sg8 where subgroups allow).
    case(&[37, 40], &[29, 40], true, false, true),
    case(&[3, 17, 40], &[13, 40], false, false, true),
    case(&[8, 24], &[30, 24], true, false, true),
    case(&[13, 40], &[29, 40], true, false, true),
    case(&[2, 11, 40], &[13, 40], false, false, true),
    // dy · W, the input gradient through a frozen 16-bit weight W [N, K] (LoRA on an f16 base):
    // b not transposed, its rows along the output.
    case(&[8, 28], &[28, 36], true, false, false),
    case(&[37, 28], &[28, 68], false, false, false),
    case(&[3, 17, 36], &[36, 40], true, false, false),
];

pub(crate) async fn run(c: &mut Checker) {
    for &config in MATMUL_CONFIGS {
        if !config.runs_on(&c.gpu) {
            let row = CheckResult::skipped(format!("matmul {config}"), "every case", NO_SUBGROUPS);
            c.results.push(row);
            continue;
        }
        for case in CASES {
            check(c, Some(config), case, TOL).await;
        }
        let long = case(&[7, 1031], &[9, 1031], true, false, true);
        check(c, Some(config), &long, TOL_LONG).await;
        for form in c.f16_forms() {
            for case in HALF_CASES {
                if let Err(e) = check_half(c, config, form, case).await {
                    let op = format!("matmul f16 weights{} [{config}]", f16_form_suffix(form));
                    c.fail(&op, label(case), e);
                }
            }
        }
    }
    check(c, None, &case(&[2, 0], &[0, 3], true, false, false), TOL).await;
    if let Err(e) = gram(c).await {
        c.fail("matmul x·xᵀ", "[37, 20]".into(), e);
    }
    if let Err(e) = backward(c).await {
        c.fail("matmul backward", "[5, 7] x [7, 6]".into(), e);
    }
}

fn dims(case: &Case) -> MatmulDims {
    let (lead, mat) = case.a.split_at(case.a.len() - 2);
    let (m, k) = if case.trans_a {
        (mat[1], mat[0])
    } else {
        (mat[0], mat[1])
    };
    let bm = &case.b[case.b.len() - 2..];
    let n = if case.trans_b { bm[0] } else { bm[1] };
    MatmulDims {
        batch: lead.iter().product(),
        m,
        k,
        n,
        trans_a: case.trans_a,
        trans_b: case.trans_b,
        b_shared: case.b.len() == 2,
    }
}

fn label(case: &Case) -> String {
    let t = |x: bool| if x { "ᵀ" } else { "" };
    format!(
        "{:?}{} x {:?}{}{}",
        case.a,
        t(case.trans_a),
        case.b,
        t(case.trans_b),
        if case.bias { " + bias" } else { "" }
    )
}

async fn check(c: &mut Checker, config: Option<MatmulConfig>, case: &Case, tol: f64) {
    let op = match config {
        Some(config) => format!("matmul [{config}]"),
        None => "matmul".to_string(),
    };
    let d = dims(case);
    let inputs = (|| {
        let a = c.randn(case.a)?;
        let b = c.randn(case.b)?;
        let bias = if case.bias {
            Some(c.randn(&[d.n])?)
        } else {
            None
        };
        Ok::<_, crate::Error>((a, b, bias))
    })();
    let ((a, av), (b, bv), bias) = match inputs {
        Ok(x) => x,
        Err(e) => return c.fail(&op, label(case), e),
    };
    let reference = matmul_ref(&av, &bv, bias.as_ref().map(|b| &b.1[..]), d);
    let bias_t = bias.as_ref().map(|b| &b.0);
    let out = match config {
        Some(config) => ops::matmul_with(&a, &b, bias_t, d.trans_a, d.trans_b, config),
        None => ops::matmul(&a, &b, bias_t, d.trans_a, d.trans_b),
    };
    c.compare(&op, label(case), out, &reference, tol).await;
}

/// f32 values of `v`, as the host uploads them.
fn narrow(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// A case with b uploaded in 16 bits and read in `form`, against f64 on b's f16-rounded values.
async fn check_half(
    c: &mut Checker,
    config: MatmulConfig,
    form: F16Form,
    case: &Case,
) -> Result<()> {
    c.use_f16_form(form)?;
    let d = dims(case);
    let (a, av) = c.randn(case.a)?;
    let (_, bv) = c.randn(case.b)?;
    let b = Tensor::from_f32_as_f16(&c.gpu, case.b, &narrow(&bv))?;
    let rounded: Vec<f64> = b.to_vec_f32().await?.iter().map(|&v| v as f64).collect();
    let bias = if case.bias {
        Some(c.randn(&[d.n])?)
    } else {
        None
    };
    let reference = matmul_ref(&av, &rounded, bias.as_ref().map(|b| &b.1[..]), d);
    let bias = bias.as_ref().map(|b| &b.0);
    let out = ops::matmul_with(&a, &b, bias, case.trans_a, case.trans_b, config);
    let tol = if d.k > 512 { TOL_LONG } else { TOL };
    let op = format!("matmul f16 weights{} [{config}]", f16_form_suffix(form));
    c.compare(&op, label(case), out, &reference, tol).await;
    Ok(())
}

/// x · xᵀ: the same tensor bound as both (read-only) operands.
async fn gram(c: &mut Checker) -> Result<()> {
    let (x, xv) = c.randn(&[37, 20])?;
    let d = MatmulDims {
        batch: 1,
        m: 37,
        k: 20,
        n: 37,
        trans_a: false,
        trans_b: true,
        b_shared: true,
    };
    let reference = matmul_ref(&xv, &xv, None, d);
    let out = ops::matmul(&x, &x, None, false, true);
    c.compare("matmul x·xᵀ", "[37, 20]".into(), out, &reference, TOL)
        .await;
    Ok(())
}

/// dA = dC·Bᵀ and dB = Aᵀ·dC, composed from matmul, against finite differences of C = A·B.
async fn backward(c: &mut Checker) -> Result<()> {
    let (m, k, n) = (5, 7, 6);
    let (a, av) = c.randn(&[m, k])?;
    let (b, bv) = c.randn(&[k, n])?;
    let (dc, dcv) = c.randn(&[m, n])?;
    let d = MatmulDims {
        batch: 1,
        m,
        k,
        n,
        trans_a: false,
        trans_b: false,
        b_shared: true,
    };
    let fd_a = finite_difference_vjp(|x| matmul_ref(x, &bv, None, d), &av, &dcv);
    let fd_b = finite_difference_vjp(|y| matmul_ref(&av, y, None, d), &bv, &dcv);
    let shapes = format!("[{m}, {k}] x [{k}, {n}]");
    let da = ops::matmul(&dc, &b, None, false, true);
    c.compare(
        "matmul backward dA = dC·Bᵀ",
        shapes.clone(),
        da,
        &fd_a,
        TOL_GRAD,
    )
    .await;
    let db = ops::matmul(&a, &dc, None, true, false);
    c.compare("matmul backward dB = Aᵀ·dC", shapes, db, &fd_b, TOL_GRAD)
        .await;
    Ok(())
}
