//! Conformance of the MSE loss and the lookup-free quantizer's outputs and entropy loss.

use super::{CheckResult, Checker, TOL, TOL_GRAD, TOL_LONG};
use crate::reference::{
    finite_difference_vjp, lfq_entropy_ref, lfq_group_indices_ref, mse_ref, sign_quantize_ref,
};
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
    match ops::mse_loss_backward(&a, &b, &dloss) {
        Ok((da, db)) => {
            let fd_a = finite_difference_vjp(|x| vec![mse_ref(x, &bv)], &av, &[0.7]);
            let fd_b = finite_difference_vjp(|x| vec![mse_ref(&av, x)], &bv, &[0.7]);
            c.compare(
                "mse_loss backward da",
                "[7,37]".into(),
                Ok(da),
                &fd_a,
                TOL_GRAD,
            )
            .await;
            c.compare(
                "mse_loss backward db",
                "[7,37]".into(),
                Ok(db),
                &fd_b,
                TOL_GRAD,
            )
            .await;
        }
        Err(e) => c.fail("mse_loss backward", "[7,37]".into(), e),
    }

    // Sign quantization (with exact zeros, which map to -1) and the group indices.
    let mut data = c.rng.normal_vec(5 * 32);
    data[3] = 0.0;
    data[40] = 0.0;
    let x = Tensor::from_f32(&c.gpu, &[5, 32], &data)?;
    let xv = crate::reference::widen(&data);
    c.compare(
        "sign_quantize",
        "[5,32] (with zeros)".into(),
        ops::sign_quantize(&x),
        &sign_quantize_ref(&xv),
        0.0,
    )
    .await;
    let want = lfq_group_indices_ref(&xv);
    let row = match ops::lfq_group_indices(&x) {
        Ok(t) => match t.to_vec_u32().await {
            Ok(got) => CheckResult {
                op: "lfq group indices".into(),
                shapes: "[5,32] -> [5,4]".into(),
                rel_error: if got == want { 0.0 } else { f64::INFINITY },
                tolerance: 0.0,
                error: None,
            },
            Err(e) => return Err(e),
        },
        Err(e) => return Err(e),
    };
    c.results.push(row);

    // Entropy loss: forward at the official temperature, backward by finite differences at
    // temperatures where the softmax is not saturated.
    let (x, xv) = c.randn(&[11, 32])?;
    let r = lfq_entropy_ref(&xv, 0.01);
    c.compare(
        "lfq entropy loss (T=0.01)",
        "[11,32]".into(),
        ops::lfq_entropy_loss(&x, 0.01).and_then(|l| l.loss()),
        &[r],
        TOL_LONG,
    )
    .await;
    for temperature in [1.0, 0.5] {
        let (x, xv) = c.randn(&[3, 16])?;
        let x = ops::scale(&x, 0.5)?;
        let xv: Vec<f64> = xv.iter().map(|v| v * 0.5).collect();
        let s = format!("[3,16] T={temperature}");
        c.compare(
            "lfq entropy loss",
            s.clone(),
            ops::lfq_entropy_loss(&x, temperature).and_then(|l| l.loss()),
            &[lfq_entropy_ref(&xv, temperature as f64)],
            TOL_LONG,
        )
        .await;
        let fd = finite_difference_vjp(
            |x| vec![0.7 * lfq_entropy_ref(x, temperature as f64)],
            &xv,
            &[1.0],
        );
        let dx = ops::lfq_entropy_loss(&x, temperature)
            .and_then(|l| ops::lfq_entropy_loss_backward(&x, &l, &dloss));
        c.compare("lfq entropy loss backward", s, dx, &fd, TOL_GRAD)
            .await;
    }
    Ok(())
}
