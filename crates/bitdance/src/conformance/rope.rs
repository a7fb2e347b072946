//! Conformance of the 2D RoPE and its position tables.

use super::{Checker, TOL, TOL_GRAD};
use crate::ops::{
    patch_raster_order, rope_2d, rope_2d_backward, rope_positions_patch_raster,
    rope_positions_raster,
};
use crate::reference::{finite_difference_vjp, rope_2d_ref, widen};
use crate::{Result, Tensor};

pub(super) async fn run(c: &mut Checker) {
    if let Err(e) = all(c).await {
        c.fail("rope", "setup".into(), e);
    }
}

async fn all(c: &mut Checker) -> Result<()> {
    // 3 prefix tokens + a 4x4 grid in patch-raster order (patch 2), heads of 8 and 64.
    for (b, h, dh) in [(2usize, 3usize, 8usize), (1, 2, 64)] {
        let pos = rope_positions_patch_raster(3, 4, 4, 2);
        let t = pos.len() / 2;
        let pos_t = Tensor::from_f32(&c.gpu, &[t, 2], &pos)?;
        let posv = widen(&pos);
        let (x, xv) = c.randn(&[b, t, h, dh])?;
        let s = format!("[{b},{t},{h},{dh}]");
        c.compare(
            "rope_2d",
            s.clone(),
            rope_2d(&x, &pos_t),
            &rope_2d_ref(&xv, &posv, (t, h, dh)),
            TOL,
        )
        .await;
        let (dy, dyv) = c.randn(&[b, t, h, dh])?;
        let fd = finite_difference_vjp(|x| rope_2d_ref(x, &posv, (t, h, dh)), &xv, &dyv);
        c.compare(
            "rope_2d backward",
            s,
            rope_2d_backward(&dy, &pos_t),
            &fd,
            TOL_GRAD,
        )
        .await;
    }
    // The position tables themselves (exact).
    let order = patch_raster_order(4, 4, 2);
    let want = [0u32, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15];
    let raster = rope_positions_raster(1, 2, 3);
    let want_pos = [
        0.0f32, 0.0, 1.5, 1.5, 2.5, 1.5, 3.5, 1.5, 1.5, 2.5, 2.5, 2.5, 3.5, 2.5,
    ];
    let ok = order == want && raster == want_pos;
    c.results.push(super::CheckResult {
        op: "rope position tables".into(),
        shapes: "4x4 patch 2; 2x3 raster".into(),
        rel_error: if ok { 0.0 } else { f64::INFINITY },
        tolerance: 0.0,
        error: None,
    });
    Ok(())
}
