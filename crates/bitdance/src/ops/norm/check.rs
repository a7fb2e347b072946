//! Conformance of the norm kernels: RMSNorm, LayerNorm (affine or not), softmax, row sums
//! and statistics, forward against f64 and every backward (parameter gradients included)
//! against finite differences.

use crate::conformance::{Checker, TOL, TOL_GRAD, TOL_LONG};
use crate::reference::{self as cpu, finite_difference_vjp as fd_vjp, widen};
use crate::{ops, Result, Tensor};

/// Row shapes: odd lengths, 1 to 67 rows (67 rows exercise the two-stage parameter sums).
/// (Rows of a multiple of 4 run the vec4 row kernels: fewer vec4s than lanes, and more.)
const ROW_SHAPES: &[&[usize]] = &[
    &[1, 769],
    &[5, 37],
    &[13, 67],
    &[3, 5, 37],
    &[67, 37],
    &[5, 12],
    &[3, 7, 132],
];
pub(crate) async fn run(c: &mut Checker) {
    c.skip_subgroup_form("norm_reduce_sg (row sums)");
    for &shape in ROW_SHAPES {
        for affine in [true, false] {
            if let Err(e) = check_rms(c, shape, affine).await {
                c.fail("rms_norm", format!("{shape:?}"), e);
            }
            if let Err(e) = check_layer_norm(c, shape, affine).await {
                c.fail("layer_norm", format!("{shape:?}"), e);
            }
        }
        if let Err(e) = check_layer_norm_modulated(c, shape).await {
            c.fail("layer_norm_modulated", format!("{shape:?}"), e);
        }
        if let Err(e) = check_softmax(c, shape).await {
            c.fail("softmax", format!("{shape:?}"), e);
        }
        let d = last(shape);
        match c.randn(shape) {
            Ok((x, xv)) => {
                let r: Vec<f64> = xv.chunks(d).map(|row| row.iter().sum()).collect();
                c.compare(
                    "sum_last",
                    format!("{shape:?}"),
                    ops::sum_last(&x),
                    &r,
                    tol(d),
                )
                .await;
            }
            Err(e) => c.fail("sum_last", format!("{shape:?}"), e),
        }
        if let Err(e) = check_row_stats(c, shape).await {
            c.fail("row_stats", format!("{shape:?}"), e);
        }
    }
}

/// Forward tolerance by row length: long rows are long reductions.
fn tol(d: usize) -> f64 {
    if d >= 512 {
        TOL_LONG
    } else {
        TOL
    }
}

fn last(shape: &[usize]) -> usize {
    *shape.last().unwrap_or(&1)
}

async fn check_row_stats(c: &mut Checker, shape: &[usize]) -> Result<()> {
    let d = last(shape);
    let eps = 1e-6;
    let s = format!("{shape:?}");
    let rows = shape.iter().product::<usize>() / d;
    let (x, xv) = c.randn(shape)?;
    let (dm, dmv) = c.randn(&[rows])?;
    let (ds, dsv) = c.randn(&[rows])?;
    let (mr, sr) = cpu::row_stats(&xv, d, eps);
    let (mean, std) = ops::row_stats(&x, eps as f32)?;
    c.compare("row_stats mean", s.clone(), Ok(mean.clone()), &mr, tol(d))
        .await;
    c.compare("row_stats std", s.clone(), Ok(std.clone()), &sr, tol(d))
        .await;
    let dx = ops::row_stats_backward(&x, &mean, &std, &dm, &ds)?;
    // One vector-Jacobian product through both outputs: f(x) = [mean; std].
    let both = |x: &[f64]| {
        let (m, s) = cpu::row_stats(x, d, eps);
        [m, s].concat()
    };
    let fd = fd_vjp(both, &xv, &[dmv, dsv].concat());
    c.compare("row_stats backward dx", s, Ok(dx), &fd, TOL_GRAD)
        .await;
    Ok(())
}

async fn check_rms(c: &mut Checker, shape: &[usize], affine: bool) -> Result<()> {
    let d = last(shape);
    let eps = 1e-6;
    let s = format!("{shape:?}{}", if affine { " weight" } else { "" });
    let (x, xv) = c.randn(shape)?;
    let (w, wv) = c.randn(&[d])?;
    let (dy, dyv) = c.randn(shape)?;
    let wt = affine.then_some(&w);
    let wr = affine.then_some(wv.as_slice());
    let (yr, rr) = cpu::rms_norm(&xv, wr, d, eps);
    let (y, rstd) = ops::rms_norm(&x, wt, eps as f32)?;
    c.compare("rms_norm", s.clone(), Ok(y), &yr, tol(d)).await;
    c.compare("rms_norm rstd", s.clone(), Ok(rstd.clone()), &rr, tol(d))
        .await;

    let (dx, dw) = ops::rms_norm_backward(&x, wt, &rstd, &dy)?;
    let fd = fd_vjp(|x| cpu::rms_norm(x, wr, d, eps).0, &xv, &dyv);
    c.compare("rms_norm backward dx", s.clone(), Ok(dx), &fd, TOL_GRAD)
        .await;
    if affine {
        let fd = fd_vjp(|w| cpu::rms_norm(&xv, Some(w), d, eps).0, &wv, &dyv);
        let dw = dw.ok_or_else(|| missing("dweight"));
        c.compare("rms_norm backward dweight", s, dw, &fd, TOL_GRAD)
            .await;
    }
    Ok(())
}

async fn check_layer_norm(c: &mut Checker, shape: &[usize], affine: bool) -> Result<()> {
    let d = last(shape);
    let eps = 1e-5;
    let s = format!("{shape:?}{}", if affine { " affine" } else { "" });
    let (x, xv) = c.randn(shape)?;
    let (w, wv) = c.randn(&[d])?;
    let (b, bv) = c.randn(&[d])?;
    let (dy, dyv) = c.randn(shape)?;
    let (wt, bt) = (affine.then_some(&w), affine.then_some(&b));
    let (wr, br) = (
        affine.then_some(wv.as_slice()),
        affine.then_some(bv.as_slice()),
    );
    let (yr, mr, rr) = cpu::layer_norm(&xv, wr, br, d, eps);
    let (y, mean, rstd) = ops::layer_norm(&x, wt, bt, eps as f32)?;
    c.compare("layer_norm", s.clone(), Ok(y), &yr, tol(d)).await;
    c.compare("layer_norm mean", s.clone(), Ok(mean.clone()), &mr, tol(d))
        .await;
    c.compare("layer_norm rstd", s.clone(), Ok(rstd.clone()), &rr, tol(d))
        .await;

    let (dx, dw, db) = ops::layer_norm_backward(&x, wt, &mean, &rstd, &dy)?;
    let fd = fd_vjp(|x| cpu::layer_norm(x, wr, br, d, eps).0, &xv, &dyv);
    c.compare("layer_norm backward dx", s.clone(), Ok(dx), &fd, TOL_GRAD)
        .await;
    if affine {
        let fd = fd_vjp(|w| cpu::layer_norm(&xv, Some(w), br, d, eps).0, &wv, &dyv);
        let dw = dw.ok_or_else(|| missing("dweight"));
        c.compare("layer_norm backward dweight", s.clone(), dw, &fd, TOL_GRAD)
            .await;
        let fd = fd_vjp(|b| cpu::layer_norm(&xv, wr, Some(b), d, eps).0, &bv, &dyv);
        let db = db.ok_or_else(|| missing("dbias"));
        c.compare("layer_norm backward dbias", s, db, &fd, TOL_GRAD)
            .await;
    }
    Ok(())
}

/// The fused adaLN LayerNorm against LayerNorm then modulate in f64, with and without the
/// affine parameters; the shape's first dim is the modulation groups.
async fn check_layer_norm_modulated(c: &mut Checker, shape: &[usize]) -> Result<()> {
    let (g, d) = (shape[0], last(shape));
    let t = shape.iter().product::<usize>() / (g * d);
    let (x, xv) = c.randn(shape)?;
    let (w, wv) = c.randn(&[d])?;
    let (b, bv) = c.randn(&[d])?;
    let (shift, shv) = c.randn(&[g, d])?;
    let (scale, scv) = c.randn(&[g, d])?;
    for affine in [true, false] {
        let s = format!("{shape:?}{}", if affine { " affine" } else { "" });
        let (wr, br) = (
            affine.then_some(wv.as_slice()),
            affine.then_some(bv.as_slice()),
        );
        let h = cpu::layer_norm(&xv, wr, br, d, 1e-6).0;
        let r = cpu::modulate(&h, &shv, &scv, t, d);
        let m = ops::AdaLn {
            affine: affine.then_some((&w, &b)),
            eps: 1e-6,
            shift: &shift,
            scale: &scale,
        };
        let y = ops::layer_norm_modulated(&x, m);
        c.compare("layer_norm_modulated", s, y, &r, tol(d)).await;
    }
    // After a gated residual: the sum and the modulated rows of it.
    let (gate, gv) = c.randn(&[g, d])?;
    let (sub, sv) = c.randn(shape)?;
    let sum = cpu::gated_residual(&xv, &gv, &sv, t, d);
    let h = cpu::layer_norm(&sum, Some(&wv), Some(&bv), d, 1e-6).0;
    let r = cpu::modulate(&h, &shv, &scv, t, d);
    let m = ops::AdaLn {
        affine: Some((&w, &b)),
        eps: 1e-6,
        shift: &shift,
        scale: &scale,
    };
    let (sum_gpu, y) = ops::residual_layer_norm_modulated(&x, &gate, &sub, m)?;
    let name = "residual_layer_norm_modulated";
    c.compare(name, format!("{shape:?} sum"), Ok(sum_gpu), &sum, TOL)
        .await;
    c.compare(name, format!("{shape:?} affine"), Ok(y), &r, tol(d))
        .await;
    Ok(())
}

async fn check_softmax(c: &mut Checker, shape: &[usize]) -> Result<()> {
    let d = last(shape);
    let s = format!("{shape:?}");
    // Spread and offset logits: exercises the max subtraction (exp(x) alone would overflow).
    let n: usize = shape.iter().product();
    let data: Vec<f32> = c.rng.normal_vec(n).iter().map(|v| 4.0 * v + 90.0).collect();
    let x = Tensor::from_f32(&c.gpu, shape, &data)?;
    let xv = widen(&data);
    let (dy, dyv) = c.randn(shape)?;
    let yr = cpu::softmax(&xv, d);
    let y = ops::softmax(&x)?;
    c.compare("softmax", s.clone(), Ok(y.clone()), &yr, tol(d))
        .await;
    let fd = fd_vjp(|x| cpu::softmax(x, d), &xv, &dyv);
    c.compare(
        "softmax backward",
        s,
        ops::softmax_backward(&y, &dy),
        &fd,
        TOL_GRAD,
    )
    .await;
    Ok(())
}

fn missing(what: &str) -> crate::Error {
    crate::Error::Invalid(format!("backward returned no {what}"))
}
