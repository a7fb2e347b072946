//! Conformance of adaLN modulation and gated residuals: forward against f64, every gradient
//! against finite differences.

use crate::conformance::{Checker, TOL, TOL_GRAD};
use crate::reference::{self as cpu, finite_difference_vjp as fd_vjp};
use crate::{ops, Result};

/// [G, T, C] shapes of the per-group ops, with a [G, C] one (T = 1).
/// (C a multiple of 4 runs the vec4 kernels.)
const GROUP_SHAPES: &[&[usize]] = &[
    &[3, 5, 37],
    &[2, 13, 67],
    &[5, 37],
    &[1, 3, 769],
    &[3, 5, 36],
    &[7, 12],
];

pub(crate) async fn run(c: &mut Checker) {
    for &shape in GROUP_SHAPES {
        if let Err(e) = check_modulate(c, shape).await {
            c.fail("modulate", format!("{shape:?}"), e);
        }
        if let Err(e) = check_gated(c, shape).await {
            c.fail("gated_residual", format!("{shape:?}"), e);
        }
    }
}

/// (T, C, group shape [G, C]) of a [G, T, C] or [G, C] shape.
fn group_dims(shape: &[usize]) -> (usize, usize, [usize; 2]) {
    let (g, c) = (shape[0], shape[shape.len() - 1]);
    (shape.iter().product::<usize>() / (g * c), c, [g, c])
}

async fn check_modulate(c: &mut Checker, shape: &[usize]) -> Result<()> {
    let (t, ch, gshape) = group_dims(shape);
    let s = format!("{shape:?}");
    let (x, xv) = c.randn(shape)?;
    let (shift, shv) = c.randn(&gshape)?;
    let (scale, scv) = c.randn(&gshape)?;
    let (dy, dyv) = c.randn(shape)?;
    let r = cpu::modulate(&xv, &shv, &scv, t, ch);
    c.compare(
        "modulate",
        s.clone(),
        ops::modulate(&x, &shift, &scale),
        &r,
        TOL,
    )
    .await;
    let (dx, dshift, dscale) = ops::modulate_backward(&x, &scale, &dy)?;
    let fd = fd_vjp(|x| cpu::modulate(x, &shv, &scv, t, ch), &xv, &dyv);
    c.compare("modulate backward dx", s.clone(), Ok(dx), &fd, TOL_GRAD)
        .await;
    let fd = fd_vjp(|sh| cpu::modulate(&xv, sh, &scv, t, ch), &shv, &dyv);
    c.compare(
        "modulate backward dshift",
        s.clone(),
        Ok(dshift),
        &fd,
        TOL_GRAD,
    )
    .await;
    let fd = fd_vjp(|sc| cpu::modulate(&xv, &shv, sc, t, ch), &scv, &dyv);
    c.compare("modulate backward dscale", s, Ok(dscale), &fd, TOL_GRAD)
        .await;
    Ok(())
}

async fn check_gated(c: &mut Checker, shape: &[usize]) -> Result<()> {
    let (t, ch, gshape) = group_dims(shape);
    let s = format!("{shape:?}");
    let (x, xv) = c.randn(shape)?;
    let (gate, gv) = c.randn(&gshape)?;
    let (h, hv) = c.randn(shape)?;
    let (dy, dyv) = c.randn(shape)?;
    let r = cpu::gated_residual(&xv, &gv, &hv, t, ch);
    c.compare(
        "gated_residual",
        s.clone(),
        ops::gated_residual(&x, &gate, &h),
        &r,
        TOL,
    )
    .await;
    let (dx, dgate, dh) = ops::gated_residual_backward(&gate, &h, &dy)?;
    let fd = fd_vjp(|x| cpu::gated_residual(x, &gv, &hv, t, ch), &xv, &dyv);
    c.compare(
        "gated_residual backward dx",
        s.clone(),
        Ok(dx),
        &fd,
        TOL_GRAD,
    )
    .await;
    let fd = fd_vjp(|g| cpu::gated_residual(&xv, g, &hv, t, ch), &gv, &dyv);
    c.compare(
        "gated_residual backward dgate",
        s.clone(),
        Ok(dgate),
        &fd,
        TOL_GRAD,
    )
    .await;
    let fd = fd_vjp(|h| cpu::gated_residual(&xv, &gv, h, t, ch), &hv, &dyv);
    c.compare("gated_residual backward dh", s, Ok(dh), &fd, TOL_GRAD)
        .await;
    Ok(())
}
