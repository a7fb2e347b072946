//! Conformance of the loss kernels: MSE and L1 and their gradients.

use crate::conformance::{Checker, TOL, TOL_GRAD, TOL_LONG};
use crate::ops;
use crate::reference::{self as cpu, finite_difference_vjp};
use crate::{Result, Tensor};

pub(crate) async fn run(c: &mut Checker) {
    if let Err(e) = mse(c).await {
        c.fail("mse_loss", String::new(), e);
    }
    if let Err(e) = l1(c).await {
        c.fail("l1_loss", String::new(), e);
    }
}

/// Random normal values times `scale`, uploaded; returns the tensor and its f64 copy.
pub(crate) fn randn_scaled(
    c: &mut Checker,
    shape: &[usize],
    scale: f32,
) -> Result<(Tensor, Vec<f64>)> {
    let data: Vec<f32> = c
        .rng
        .normal_vec(shape.iter().product())
        .iter()
        .map(|v| v * scale)
        .collect();
    let t = Tensor::from_f32(&c.gpu, shape, &data)?;
    Ok((t, crate::reference::widen(&data)))
}

async fn l1(c: &mut Checker) -> Result<()> {
    for (shape, tol) in [(vec![37usize, 67], TOL), (vec![100_003], TOL_LONG)] {
        let (a, av) = c.randn(&shape)?;
        let (b, bv) = c.randn(&shape)?;
        let r = cpu::l1_loss(&av, &bv);
        c.compare(
            "l1_loss",
            format!("{shape:?}"),
            ops::l1_loss(&a, &b),
            &[r],
            tol,
        )
        .await;
    }
    // Random normal pairs are never within the finite-difference step of a kink.
    let shape = [7usize, 37];
    let (a, av) = c.randn(&shape)?;
    let (b, bv) = c.randn(&shape)?;
    let (dloss, dv) = c.randn(&[1])?;
    let s = format!("{shape:?}");
    let (da, db) = ops::l1_loss_backward(&a, &b, &dloss)?;
    let fd = finite_difference_vjp(|t| vec![cpu::l1_loss(t, &bv)], &av, &dv);
    c.compare("l1_loss backward (a)", s.clone(), Ok(da), &fd, TOL_GRAD)
        .await;
    let fd = finite_difference_vjp(|t| vec![cpu::l1_loss(&av, t)], &bv, &dv);
    c.compare("l1_loss backward (b)", s, Ok(db), &fd, TOL_GRAD)
        .await;
    Ok(())
}

async fn mse(c: &mut Checker) -> Result<()> {
    for (shape, tol) in [(vec![37usize, 67], TOL), (vec![100_003], TOL_LONG)] {
        let (a, av) = c.randn(&shape)?;
        let (b, bv) = c.randn(&shape)?;
        let s = format!("{shape:?}");
        let r = cpu::mse_loss(&av, &bv);
        c.compare("mse_loss", s, ops::mse_loss(&a, &b), &[r], tol)
            .await;
    }
    let shape = [7usize, 37];
    let (a, av) = c.randn(&shape)?;
    let (b, bv) = c.randn(&shape)?;
    let (dloss, dv) = c.randn(&[1])?;
    let s = format!("{shape:?}");
    match ops::mse_loss_backward(&a, &b, &dloss) {
        Ok((da, db)) => {
            let fd = finite_difference_vjp(|t| vec![cpu::mse_loss(t, &bv)], &av, &dv);
            c.compare("mse_loss backward (a)", s.clone(), Ok(da), &fd, TOL_GRAD)
                .await;
            let fd = finite_difference_vjp(|t| vec![cpu::mse_loss(&av, t)], &bv, &dv);
            c.compare("mse_loss backward (b)", s, Ok(db), &fd, TOL_GRAD)
                .await;
        }
        Err(e) => c.fail("mse_loss backward", s, e),
    }
    Ok(())
}
