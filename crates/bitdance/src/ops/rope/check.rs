//! Conformance of the rope kernels: 2D RoPE forward on raster and patch-raster positions
//! (prefix tokens at the origin, angles up to ~17 rad), backward against finite differences.

use crate::conformance::{Checker, TOL, TOL_GRAD};
use crate::ops::{self, rope_positions_patch_raster, rope_positions_raster};
use crate::reference::{self as cpu, finite_difference_vjp, widen};
use crate::{Result, Tensor};

/// Largest input checked against finite differences.
const FD_MAX: usize = 4096;

pub(crate) async fn run(c: &mut Checker) {
    // (B, H, Dh, positions, what)
    let raster_small = rope_positions_raster(2, 2, 3);
    let raster_16 = rope_positions_raster(1, 16, 16);
    let cases: Vec<(usize, usize, usize, Vec<f32>, &str)> = vec![
        (2, 3, 8, raster_small.clone(), "raster 2+2x3"),
        (1, 2, 64, raster_small, "raster 2+2x3"),
        (1, 1, 32, raster_16, "raster 1+16x16"),
    ];
    let mut cases = cases;
    match rope_positions_patch_raster(3, 4, 4, 2) {
        Ok(p) => cases.push((2, 3, 16, p, "patch-raster 3+4x4 p2")),
        Err(e) => c.fail("rope_2d", "patch-raster positions".into(), e),
    }
    for (b, h, dh, pos, what) in cases {
        let t = pos.len() / 2;
        let shape = format!("[{b}, {t}, {h}, {dh}] {what}");
        if let Err(e) = check(c, [b, t, h, dh], &pos, &shape).await {
            c.fail("rope_2d", shape, e);
        }
    }
}

async fn check(c: &mut Checker, s: [usize; 4], pos: &[f32], shape: &str) -> Result<()> {
    let [_, t, h, dh] = s;
    let positions = Tensor::from_f32(&c.gpu, &[t, 2], pos)?;
    let pv = widen(pos);
    let (x, xv) = c.randn(&s)?;
    let (dy, dyv) = c.randn(&s)?;
    let r = cpu::rope_2d(&xv, &pv, t, h, dh, 1.0);
    c.compare(
        "rope_2d",
        shape.into(),
        ops::rope_2d(&x, &positions),
        &r,
        TOL,
    )
    .await;
    // Finite differences cost O(n²): on the large case the reference is the exact adjoint
    // (rotation by the negative angles) instead.
    let (what, r) = if xv.len() <= FD_MAX {
        let f = |x: &[f64]| cpu::rope_2d(x, &pv, t, h, dh, 1.0);
        ("rope_2d backward", finite_difference_vjp(f, &xv, &dyv))
    } else {
        (
            "rope_2d backward (vs adjoint)",
            cpu::rope_2d(&dyv, &pv, t, h, dh, -1.0),
        )
    };
    let out = ops::rope_2d_backward(&dy, &positions);
    c.compare(what, shape.into(), out, &r, TOL_GRAD).await;
    Ok(())
}
