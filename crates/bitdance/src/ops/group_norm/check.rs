//! Conformance of the GroupNorm family: GroupNorm (affine or not, with or without the SiLU
//! after it) and AdaptiveGroupNorm at
//! both workgroup sizes (the CPU and the GPU form, whatever the adapter), against f64; the
//! per-row and per-channel affine maps and their gradients against finite differences.

use super::{adaptive_group_norm_wg, group_norm_wg, GN_WG_CPU, GN_WG_GPU};
use crate::conformance::{Checker, TOL, TOL_GRAD, TOL_LONG};
use crate::ops;
use crate::reference::{self as cpu, finite_difference_vjp as fd_vjp};
use crate::Result;

/// (B, C, H, W, groups).
const GROUP_NORMS: &[[usize; 5]] = &[
    [2, 12, 5, 7, 4],
    [1, 32, 9, 11, 32],
    [3, 8, 3, 3, 1],
    [1, 64, 17, 19, 32],
];

pub(crate) async fn run(c: &mut Checker) {
    for wg in [GN_WG_CPU, GN_WG_GPU] {
        for &case in GROUP_NORMS {
            for affine in [true, false] {
                if let Err(e) = check_group_norm(c, case, affine, wg).await {
                    c.fail(&format!("group_norm wg{wg}"), format!("{case:?}"), e);
                }
            }
            if let Err(e) = check_adaptive_group_norm(c, case, wg).await {
                c.fail(
                    &format!("adaptive_group_norm wg{wg}"),
                    format!("{case:?}"),
                    e,
                );
            }
        }
    }
    for (rows, len) in [(6usize, 11usize), (13, 64)] {
        if let Err(e) = check_row_affine(c, rows, len).await {
            c.fail("row_affine", format!("[{rows}, {len}]"), e);
        }
    }
    for shape in [&[3usize, 5, 4, 7][..], &[2, 13, 64], &[1, 6, 1]] {
        if let Err(e) = check_channel_affine(c, shape).await {
            c.fail("channel_affine", format!("{shape:?}"), e);
        }
    }
}

async fn check_group_norm(c: &mut Checker, case: [usize; 5], affine: bool, wg: u32) -> Result<()> {
    let [b, ch, h, w, groups] = case;
    let eps = 1e-6;
    let s = format!(
        "[{b},{ch},{h},{w}] g{groups}{}",
        if affine { " affine" } else { "" }
    );
    let (x, xv) = c.randn(&[b, ch, h, w])?;
    let (wt, wv) = c.randn(&[ch])?;
    let (bt, bv) = c.randn(&[ch])?;
    let (wr, br) = (
        affine.then_some(wv.as_slice()),
        affine.then_some(bv.as_slice()),
    );
    let r = cpu::group_norm(&xv, ch, h * w, groups, wr, br, eps);
    let (wo, bo) = (affine.then_some(&wt), affine.then_some(&bt));
    let y = group_norm_wg(&x, groups, wo, bo, eps as f32, wg, false);
    let tol = if ch / groups * h * w > 256 {
        TOL_LONG
    } else {
        TOL
    };
    c.compare(&format!("group_norm wg{wg}"), s.clone(), y, &r, tol)
        .await;
    let r: Vec<f64> = r.iter().map(|v| v / (1.0 + (-v).exp())).collect();
    let y = group_norm_wg(&x, groups, wo, bo, eps as f32, wg, true);
    c.compare(&format!("group_norm_silu wg{wg}"), s, y, &r, tol)
        .await;
    Ok(())
}

async fn check_adaptive_group_norm(c: &mut Checker, case: [usize; 5], wg: u32) -> Result<()> {
    let [b, ch, h, w, groups] = case;
    let eps = 1e-6;
    let (x, xv) = c.randn(&[b, ch, h, w])?;
    let (scale, sv) = c.randn(&[b, ch])?;
    let (shift, tv) = c.randn(&[b, ch])?;
    let r = cpu::adaptive_group_norm(&xv, ch, h * w, groups, &sv, &tv, eps);
    let y = adaptive_group_norm_wg(&x, groups, &scale, &shift, eps as f32, wg);
    let tol = if ch / groups * h * w > 256 {
        TOL_LONG
    } else {
        TOL
    };
    let s = format!("[{b},{ch},{h},{w}] g{groups}");
    c.compare(&format!("adaptive_group_norm wg{wg}"), s, y, &r, tol)
        .await;
    Ok(())
}

async fn check_channel_affine(c: &mut Checker, shape: &[usize]) -> Result<()> {
    let s = format!("{shape:?}");
    let ch = shape[1];
    let len: usize = shape[2..].iter().product();
    let (x, xv) = c.randn(shape)?;
    let (w, wv) = c.randn(&[ch])?;
    let (b, bv) = c.randn(&[ch])?;
    let (dy, dyv) = c.randn(shape)?;
    let reference = |x: &[f64], w: &[f64], b: &[f64]| -> Vec<f64> {
        x.iter()
            .enumerate()
            .map(|(i, v)| v * w[i / len % ch] + b[i / len % ch])
            .collect()
    };
    let y = ops::channel_affine(&x, &w, &b);
    c.compare(
        "channel_affine",
        s.clone(),
        y,
        &reference(&xv, &wv, &bv),
        TOL,
    )
    .await;
    let (dx, dw, db) = ops::channel_affine_backward(&x, &w, &dy)?;
    let fd = fd_vjp(|x| reference(x, &wv, &bv), &xv, &dyv);
    c.compare(
        "channel_affine backward dx",
        s.clone(),
        Ok(dx),
        &fd,
        TOL_GRAD,
    )
    .await;
    let fd = fd_vjp(|v| reference(&xv, v, &bv), &wv, &dyv);
    c.compare(
        "channel_affine backward dw",
        s.clone(),
        Ok(dw),
        &fd,
        TOL_GRAD,
    )
    .await;
    let fd = fd_vjp(|v| reference(&xv, &wv, v), &bv, &dyv);
    c.compare("channel_affine backward db", s, Ok(db), &fd, TOL_GRAD)
        .await;
    Ok(())
}

async fn check_row_affine(c: &mut Checker, rows: usize, len: usize) -> Result<()> {
    let s = format!("[{rows}, {len}]");
    let (x, xv) = c.randn(&[rows, len])?;
    let (sc, sv) = c.randn(&[rows])?;
    let (sh, tv) = c.randn(&[rows])?;
    let (dy, dyv) = c.randn(&[rows, len])?;
    let reference = |x: &[f64], s: &[f64], t: &[f64]| -> Vec<f64> {
        x.iter()
            .enumerate()
            .map(|(i, v)| v * s[i / len] + t[i / len])
            .collect()
    };
    let y = ops::row_affine(&x, &sc, &sh);
    c.compare("row_affine", s.clone(), y, &reference(&xv, &sv, &tv), TOL)
        .await;
    let (dx, ds, dt) = ops::row_affine_backward(&x, &sc, &dy)?;
    let fd = fd_vjp(|x| reference(x, &sv, &tv), &xv, &dyv);
    c.compare("row_affine backward dx", s.clone(), Ok(dx), &fd, TOL_GRAD)
        .await;
    let fd = fd_vjp(|v| reference(&xv, v, &tv), &sv, &dyv);
    c.compare("row_affine backward ds", s.clone(), Ok(ds), &fd, TOL_GRAD)
        .await;
    let fd = fd_vjp(|v| reference(&xv, &sv, v), &tv, &dyv);
    c.compare("row_affine backward dt", s, Ok(dt), &fd, TOL_GRAD)
        .await;
    Ok(())
}
