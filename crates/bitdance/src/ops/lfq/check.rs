//! Conformance of the lookup-free quantizer: sign quantization, the code indices, and the
//! entropy loss against f64 with its gradient against finite differences.

use crate::conformance::{Checker, TOL, TOL_GRAD, TOL_LONG};
use crate::ops;
use crate::ops::data::check::compare_u32;
use crate::ops::loss::check::randn_scaled;
use crate::reference::{self as cpu, finite_difference_vjp};
use crate::{Result, Tensor};

pub(crate) async fn run(c: &mut Checker) {
    if let Err(e) = quantizer(c).await {
        c.fail("sign_quantize", String::new(), e);
    }
    if let Err(e) = entropy(c).await {
        c.fail("lfq_entropy_loss", String::new(), e);
    }
}

async fn quantizer(c: &mut Checker) -> Result<()> {
    let shape = [37usize, 32];
    let mut data = c.rng.normal_vec(shape.iter().product());
    // Exact zeros (and -0.0) quantize to -1 and give a 0 bit, as the official `x > 0`.
    for i in [0, 9, 100, 501] {
        data[i] = 0.0;
    }
    data[77] = -0.0;
    let x = Tensor::from_f32(&c.gpu, &shape, &data)?;
    let xv = crate::reference::widen(&data);
    let s = format!("{shape:?} with zeros");
    let r = cpu::sign_quantize(&xv);
    c.compare("sign_quantize", s.clone(), ops::sign_quantize(&x), &r, TOL)
        .await;
    let r = cpu::lfq_group_indices(&xv, ops::LFQ_GROUP_BITS);
    compare_u32(c, "lfq_group_indices", s, ops::lfq_group_indices(&x), &r).await;

    // The commitment loss is mse_loss(x, q).
    let q = ops::sign_quantize(&x)?;
    let r = cpu::mse_loss(&xv, &cpu::sign_quantize(&xv));
    let out = ops::mse_loss(&x, &q);
    c.compare("commitment mse(x, q)", format!("{shape:?}"), out, &[r], TOL)
        .await;
    Ok(())
}

async fn entropy(c: &mut Checker) -> Result<()> {
    // Forward: the official temperature 0.01 (logits/T in the thousands) and milder ones.
    for (n, ch, groups, t, tol) in [
        (37usize, 32usize, 4usize, 0.01f32, TOL),
        (1031, 32, 4, 0.01, TOL_LONG),
        (13, 24, 3, 1.0, TOL),
        (9, 10, 2, 0.5, TOL),
    ] {
        let (x, xv) = c.randn(&[n, ch])?;
        let s = format!("[{n}, {ch}] {groups} groups T={t}");
        let r = cpu::lfq_entropy_loss(&xv, ch / groups, t as f64);
        let out = ops::lfq_entropy_loss(&x, groups, t).map(|(loss, _)| loss);
        c.compare("lfq_entropy_loss", s, out, &[r], tol).await;
    }

    // Backward against finite differences, inputs scaled so the softmax is not saturated.
    for (n, ch, groups, t, scale) in [
        (13usize, 24usize, 3usize, 1.0f32, 0.3f32),
        (9, 10, 2, 0.5, 0.1),
        (11, 16, 2, 0.01, 0.004),
    ] {
        let (x, xv) = randn_scaled(c, &[n, ch], scale)?;
        let (dloss, dv) = c.randn(&[1])?;
        let s = format!("[{n}, {ch}] {groups} groups T={t}");
        let bits = ch / groups;
        let fd =
            finite_difference_vjp(|v| vec![cpu::lfq_entropy_loss(v, bits, t as f64)], &xv, &dv);
        let out = ops::lfq_entropy_loss(&x, groups, t)
            .and_then(|(_, saved)| ops::lfq_entropy_loss_backward(&x, &saved, &dloss));
        c.compare("lfq_entropy_loss backward", s, out, &fd, TOL_GRAD)
            .await;
    }
    Ok(())
}
