//! Conformance of matmul: transposes, bias, batching, odd shapes, every tile configuration,
//! and the two products its backward is made of against finite differences.

use super::{Checker, TOL, TOL_GRAD, TOL_LONG};
use crate::ops::{matmul, matmul_with, MATMUL_CONFIGS};
use crate::reference::{finite_difference_vjp, matmul_ref};
use crate::Result;

pub(super) async fn run(c: &mut Checker) {
    if let Err(e) = all(c).await {
        c.fail("matmul", "setup".into(), e);
    }
}

async fn all(c: &mut Checker) -> Result<()> {
    // Every configuration on one odd shape, all transposes, with and without bias.
    for (ci, config) in MATMUL_CONFIGS.iter().enumerate() {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let (m, k, n) = (37, 67, 29);
            let (a, av) = c.randn(&if ta { [k, m] } else { [m, k] })?;
            let (b, bv) = c.randn(&if tb { [n, k] } else { [k, n] })?;
            let (bias, biasv) = c.randn(&[n])?;
            let with_bias = (ci + ta as usize + tb as usize).is_multiple_of(2);
            let r = matmul_ref(
                &av,
                &bv,
                with_bias.then_some(&biasv[..]),
                1,
                (m, k, n),
                ta,
                tb,
                false,
            );
            let out = matmul_with(*config, &a, &b, with_bias.then_some(&bias), ta, tb);
            let name = format!(
                "matmul{}{}{} cfg{ci}",
                if ta { " Aᵀ" } else { "" },
                if tb { " Bᵀ" } else { "" },
                if with_bias { " +bias" } else { "" }
            );
            c.compare(&name, format!("{m}x{k}x{n}"), out, &r, TOL).await;
        }
    }
    // Degenerate and long shapes with the configuration in use.
    for (m, k, n) in [(1, 5, 1), (1, 1, 7), (9, 1, 3), (3, 1031, 5)] {
        let (a, av) = c.randn(&[m, k])?;
        let (b, bv) = c.randn(&[k, n])?;
        let r = matmul_ref(&av, &bv, None, 1, (m, k, n), false, false, false);
        c.compare(
            "matmul",
            format!("{m}x{k}x{n}"),
            matmul(&a, &b, None, false, false),
            &r,
            if k > 512 { TOL_LONG } else { TOL },
        )
        .await;
    }
    // Batched with batched B, and a batch against a shared 2-D weight (linear layer).
    let (a, av) = c.randn(&[3, 2, 13, 11])?;
    let (b, bv) = c.randn(&[3, 2, 11, 7])?;
    let r = matmul_ref(&av, &bv, None, 6, (13, 11, 7), false, false, false);
    c.compare(
        "matmul batched",
        "[3,2,13,11]x[3,2,11,7]".into(),
        matmul(&a, &b, None, false, false),
        &r,
        TOL,
    )
    .await;
    let (w, wv) = c.randn(&[9, 11])?;
    let (bias, biasv) = c.randn(&[9])?;
    let r = matmul_ref(&av, &wv, Some(&biasv), 6, (13, 11, 9), false, true, true);
    c.compare(
        "linear (shared Wᵀ +bias)",
        "[3,2,13,11]x[9,11]ᵀ".into(),
        matmul(&a, &w, Some(&bias), false, true),
        &r,
        TOL,
    )
    .await;
    let (at, atv) = c.randn(&[4, 11, 13])?;
    let r = matmul_ref(&atv, &wv, None, 4, (13, 11, 9), true, true, true);
    c.compare(
        "matmul Aᵀ batched, shared Bᵀ",
        "[4,11,13]ᵀx[9,11]ᵀ".into(),
        matmul(&at, &w, None, true, true),
        &r,
        TOL,
    )
    .await;

    // Backward compositions: dA = dC·Bᵀ and dB = Aᵀ·dC against finite differences.
    let (m, k, n) = (5, 7, 3);
    let (a, av) = c.randn(&[m, k])?;
    let (b, bv) = c.randn(&[k, n])?;
    let (dc, dcv) = c.randn(&[m, n])?;
    let fd_a = finite_difference_vjp(
        |x| matmul_ref(x, &bv, None, 1, (m, k, n), false, false, false),
        &av,
        &dcv,
    );
    c.compare(
        "matmul backward dA = dC·Bᵀ",
        format!("{m}x{k}x{n}"),
        matmul(&dc, &b, None, false, true),
        &fd_a,
        TOL_GRAD,
    )
    .await;
    let fd_b = finite_difference_vjp(
        |x| matmul_ref(&av, x, None, 1, (m, k, n), false, false, false),
        &bv,
        &dcv,
    );
    c.compare(
        "matmul backward dB = Aᵀ·dC",
        format!("{m}x{k}x{n}"),
        matmul(&a, &dc, None, true, false),
        &fd_b,
        TOL_GRAD,
    )
    .await;
    Ok(())
}
