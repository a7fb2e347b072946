//! Conformance of the losses.

use super::{Checker, TOL, TOL_GRAD};
use crate::reference::{finite_difference_vjp, mse_ref};
use crate::{ops, Result, Tensor};

pub(super) async fn run(c: &mut Checker) {
    if let Err(e) = all(c).await {
        c.fail("loss", "setup".into(), e);
    }
}

async fn all(c: &mut Checker) -> Result<()> {
    let shape = [7, 37];
    let (a, av) = c.randn(&shape)?;
    let (b, bv) = c.randn(&shape)?;
    c.compare(
        "mse_loss",
        "[7,37]".into(),
        ops::mse_loss(&a, &b),
        &[mse_ref(&av, &bv)],
        TOL,
    )
    .await;
    let dloss = Tensor::from_f32(&c.gpu, &[1], &[0.7])?;
    let fd_a = finite_difference_vjp(|x| vec![mse_ref(x, &bv)], &av, &[0.7]);
    let fd_b = finite_difference_vjp(|x| vec![mse_ref(&av, x)], &bv, &[0.7]);
    let grads = ops::mse_loss_backward(&a, &b, &dloss);
    let (da, db) = match grads {
        Ok((da, db)) => (Ok(da), Ok(db)),
        Err(e) => (Err(crate::Error::Invalid(e.to_string())), Err(e)),
    };
    c.compare("mse_loss backward da", "[7,37]".into(), da, &fd_a, TOL_GRAD)
        .await;
    c.compare("mse_loss backward db", "[7,37]".into(), db, &fd_b, TOL_GRAD)
        .await;
    Ok(())
}
