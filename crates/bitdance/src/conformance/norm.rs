//! Conformance of the norms, softmax and adaLN modulation, forward and backward.

use super::{Checker, TOL, TOL_GRAD, TOL_LONG};
use crate::ops;
use crate::reference::{
    finite_difference_vjp as fd, gated_residual_ref, layer_norm_ref, modulate_ref, rms_norm_ref,
    softmax_ref,
};
use crate::Result;

pub(super) async fn run(c: &mut Checker) {
    if let Err(e) = all(c).await {
        c.fail("norm", "setup".into(), e);
    }
}

fn pick<T>(r: Result<T>, f: impl FnOnce(T) -> Option<crate::Tensor>) -> Result<crate::Tensor> {
    r.and_then(|v| f(v).ok_or_else(|| crate::Error::Invalid("missing output".into())))
}

async fn all(c: &mut Checker) -> Result<()> {
    let eps = 1e-6;
    for (rows, d) in [(5usize, 37usize), (13, 67), (3, 769)] {
        let s = format!("[{rows},{d}]");
        let tol = if d >= 512 { TOL_LONG } else { TOL };
        let (x, xv) = c.randn(&[rows, d])?;
        let (w, wv) = c.randn(&[d])?;
        let (b, bv) = c.randn(&[d])?;
        let (dy, dyv) = c.randn(&[rows, d])?;
        // RMSNorm with and without weight.
        c.compare(
            "rms_norm",
            s.clone(),
            ops::rms_norm(&x, Some(&w), eps).map(|r| r.0),
            &rms_norm_ref(&xv, d, Some(&wv), eps as f64),
            tol,
        )
        .await;
        c.compare(
            "rms_norm (no weight)",
            s.clone(),
            ops::rms_norm(&x, None, eps).map(|r| r.0),
            &rms_norm_ref(&xv, d, None, eps as f64),
            tol,
        )
        .await;
        if d < 512 {
            let (_, rstd) = ops::rms_norm(&x, Some(&w), eps)?;
            let back = ops::rms_norm_backward(&x, Some(&w), &rstd, &dy);
            let fdx = fd(|x| rms_norm_ref(x, d, Some(&wv), eps as f64), &xv, &dyv);
            let fdw = fd(|w| rms_norm_ref(&xv, d, Some(w), eps as f64), &wv, &dyv);
            let (dx, dw) = match back {
                Ok((dx, dw)) => (Ok(dx), pick(Ok(dw), |d| d)),
                Err(e) => (Err(crate::Error::Invalid(e.to_string())), Err(e)),
            };
            c.compare("rms_norm backward dx", s.clone(), dx, &fdx, TOL_GRAD)
                .await;
            c.compare("rms_norm backward dweight", s.clone(), dw, &fdw, TOL_GRAD)
                .await;
        }
        // LayerNorm with and without affine.
        let r = layer_norm_ref(&xv, d, Some((&wv, &bv)), eps as f64);
        c.compare(
            "layer_norm (affine)",
            s.clone(),
            ops::layer_norm(&x, Some(&w), Some(&b), eps).map(|r| r.0),
            &r,
            tol,
        )
        .await;
        let r = layer_norm_ref(&xv, d, None, eps as f64);
        c.compare(
            "layer_norm (no affine)",
            s.clone(),
            ops::layer_norm(&x, None, None, eps).map(|r| r.0),
            &r,
            tol,
        )
        .await;
        if d < 512 {
            let (_, stats) = ops::layer_norm(&x, Some(&w), Some(&b), eps)?;
            let fdx = fd(
                |x| layer_norm_ref(x, d, Some((&wv, &bv)), eps as f64),
                &xv,
                &dyv,
            );
            let fdw = fd(
                |w| layer_norm_ref(&xv, d, Some((w, &bv)), eps as f64),
                &wv,
                &dyv,
            );
            let fdb = fd(
                |b| layer_norm_ref(&xv, d, Some((&wv, b)), eps as f64),
                &bv,
                &dyv,
            );
            let back = ops::layer_norm_backward(&x, Some(&w), &stats, &dy);
            match back {
                Ok((dx, dw, db)) => {
                    c.compare("layer_norm backward dx", s.clone(), Ok(dx), &fdx, TOL_GRAD)
                        .await;
                    c.compare(
                        "layer_norm backward dweight",
                        s.clone(),
                        pick(Ok(dw), |d| d),
                        &fdw,
                        TOL_GRAD,
                    )
                    .await;
                    c.compare(
                        "layer_norm backward dbias",
                        s.clone(),
                        pick(Ok(db), |d| d),
                        &fdb,
                        TOL_GRAD,
                    )
                    .await;
                }
                Err(e) => c.fail("layer_norm backward", s.clone(), e),
            }
            let (_, stats) = ops::layer_norm(&x, None, None, eps)?;
            let fdx = fd(|x| layer_norm_ref(x, d, None, eps as f64), &xv, &dyv);
            c.compare(
                "layer_norm backward dx (no affine)",
                s.clone(),
                ops::layer_norm_backward(&x, None, &stats, &dy).map(|r| r.0),
                &fdx,
                TOL_GRAD,
            )
            .await;
            // Softmax.
            c.compare(
                "softmax",
                s.clone(),
                ops::softmax(&x),
                &softmax_ref(&xv, d),
                TOL,
            )
            .await;
            let y = ops::softmax(&x)?;
            let fdx = fd(|x| softmax_ref(x, d), &xv, &dyv);
            c.compare(
                "softmax backward",
                s.clone(),
                ops::softmax_backward(&y, &dy),
                &fdx,
                TOL_GRAD,
            )
            .await;
        }
    }
    // adaLN modulation and gated residual over [G, T, C].
    let (g, t, ch) = (3usize, 5usize, 37usize);
    let s = format!("[{g},{t},{ch}] by [{g},{ch}]");
    let (x, xv) = c.randn(&[g, t, ch])?;
    let (h, hv) = c.randn(&[g, t, ch])?;
    let (shift, shv) = c.randn(&[g, ch])?;
    let (scale, scv) = c.randn(&[g, ch])?;
    let (gate, gv) = c.randn(&[g, ch])?;
    let (dy, dyv) = c.randn(&[g, t, ch])?;
    c.compare(
        "modulate",
        s.clone(),
        ops::modulate(&x, &shift, &scale),
        &modulate_ref(&xv, &shv, &scv, t, ch),
        TOL,
    )
    .await;
    match ops::modulate_backward(&x, &scale, &dy) {
        Ok((dx, dshift, dscale)) => {
            c.compare(
                "modulate backward dx",
                s.clone(),
                Ok(dx),
                &fd(|x| modulate_ref(x, &shv, &scv, t, ch), &xv, &dyv),
                TOL_GRAD,
            )
            .await;
            c.compare(
                "modulate backward dshift",
                s.clone(),
                Ok(dshift),
                &fd(|v| modulate_ref(&xv, v, &scv, t, ch), &shv, &dyv),
                TOL_GRAD,
            )
            .await;
            c.compare(
                "modulate backward dscale",
                s.clone(),
                Ok(dscale),
                &fd(|v| modulate_ref(&xv, &shv, v, t, ch), &scv, &dyv),
                TOL_GRAD,
            )
            .await;
        }
        Err(e) => c.fail("modulate backward", s.clone(), e),
    }
    c.compare(
        "gated_residual",
        s.clone(),
        ops::gated_residual(&x, &gate, &h),
        &gated_residual_ref(&xv, &gv, &hv, t, ch),
        TOL,
    )
    .await;
    match ops::gated_residual_backward(&gate, &h, &dy) {
        Ok((dx, dgate, dh)) => {
            c.compare(
                "gated_residual backward dx",
                s.clone(),
                Ok(dx),
                &fd(|x| gated_residual_ref(x, &gv, &hv, t, ch), &xv, &dyv),
                TOL_GRAD,
            )
            .await;
            c.compare(
                "gated_residual backward dgate",
                s.clone(),
                Ok(dgate),
                &fd(|v| gated_residual_ref(&xv, v, &hv, t, ch), &gv, &dyv),
                TOL_GRAD,
            )
            .await;
            c.compare(
                "gated_residual backward dh",
                s.clone(),
                Ok(dh),
                &fd(|v| gated_residual_ref(&xv, &gv, v, t, ch), &hv, &dyv),
                TOL_GRAD,
            )
            .await;
        }
        Err(e) => c.fail("gated_residual backward", s.clone(), e),
    }
    Ok(())
}
