//! Conformance of the loss kernels: MSE and L1 and their gradients.

use crate::conformance::{Checker, TOL, TOL_GRAD, TOL_LONG};
use crate::ops;
use crate::reference::{self as cpu, finite_difference_vjp};
use crate::{Result, Tensor};

pub(crate) async fn run(c: &mut Checker) {
    for loss in [&MSE, &L1] {
        if let Err(e) = check_pair_loss(c, loss).await {
            c.fail(loss.name, String::new(), e);
        }
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

/// A pair loss and its gradient, with the f64 reference.
struct PairLoss {
    name: &'static str,
    forward: fn(&Tensor, &Tensor) -> Result<Tensor>,
    backward: fn(&Tensor, &Tensor, &Tensor) -> Result<(Tensor, Tensor)>,
    reference: fn(&[f64], &[f64]) -> f64,
}

const L1: PairLoss = PairLoss {
    name: "l1_loss",
    forward: ops::l1_loss,
    backward: ops::l1_loss_backward,
    reference: cpu::l1_loss,
};

const MSE: PairLoss = PairLoss {
    name: "mse_loss",
    forward: ops::mse_loss,
    backward: ops::mse_loss_backward,
    reference: cpu::mse_loss,
};

/// The loss on an odd shape and a long vector, and both gradients by finite differences (random
/// normal pairs are never within the step of L1's kink).
async fn check_pair_loss(c: &mut Checker, loss: &PairLoss) -> Result<()> {
    for (shape, tol) in [(vec![37usize, 67], TOL), (vec![100_003], TOL_LONG)] {
        let (a, av) = c.randn(&shape)?;
        let (b, bv) = c.randn(&shape)?;
        let r = (loss.reference)(&av, &bv);
        let got = (loss.forward)(&a, &b);
        c.compare(loss.name, format!("{shape:?}"), got, &[r], tol)
            .await;
    }
    let shape = [7usize, 37];
    let (a, av) = c.randn(&shape)?;
    let (b, bv) = c.randn(&shape)?;
    let (dloss, dv) = c.randn(&[1])?;
    let s = format!("{shape:?}");
    let (da, db) = (loss.backward)(&a, &b, &dloss)?;
    let fd = finite_difference_vjp(|t| vec![(loss.reference)(t, &bv)], &av, &dv);
    let name = format!("{} backward (a)", loss.name);
    c.compare(&name, s.clone(), Ok(da), &fd, TOL_GRAD).await;
    let fd = finite_difference_vjp(|t| vec![(loss.reference)(&av, t)], &bv, &dv);
    let name = format!("{} backward (b)", loss.name);
    c.compare(&name, s, Ok(db), &fd, TOL_GRAD).await;
    Ok(())
}
