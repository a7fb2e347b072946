//! Conformance of the conv family's backward ops against f64 finite differences: conv2d's
//! input, weight and bias gradients (strides 1 and 2, 3x3 and 1x1, asymmetric padding; dx as a
//! transposed convolution or through col2im),
//! and space_to_depth as depth_to_space's adjoint.

use crate::conformance::{Checker, TOL, TOL_GRAD};
use crate::ops;
use crate::reference::{self as cpu, finite_difference_vjp as fd_vjp, ConvCase, ConvDims};
use crate::Result;

const CONVS: &[ConvCase] = &[
    (2, 3, 5, 7, 4, 3, 1, [1, 1, 1, 1]),
    (2, 3, 7, 6, 5, 3, 2, [1, 1, 1, 1]),
    (1, 5, 5, 5, 3, 1, 1, [0, 0, 0, 0]),
    (1, 2, 6, 5, 3, 3, 2, [0, 1, 0, 1]),
    // Stride 1: dx is a convolution with the transposed, flipped weight (here asymmetric
    // padding and more input channels than one tile of output channels of the dx convolution).
    (2, 37, 6, 5, 6, 3, 1, [0, 2, 1, 2]),
    // Wide enough for dx in the Winograd form on CPU adapters (flipped weight, asymmetric
    // padding).
    (1, 16, 3, 4, 16, 3, 1, [1, 1, 0, 1]),
    // Padding beyond kernel - 1: dx through the matmul and col2im.
    (1, 3, 4, 5, 2, 1, 1, [1, 0, 0, 1]),
];

pub(crate) async fn run(c: &mut Checker) {
    for &case in CONVS {
        if let Err(e) = check_conv(c, case).await {
            c.fail("conv2d backward", format!("{case:?}"), e);
        }
    }
    for case in [[2usize, 3, 2, 3, 2], [1, 2, 3, 2, 3]] {
        if let Err(e) = check_space_to_depth(c, case).await {
            c.fail("space_to_depth", format!("{case:?}"), e);
        }
    }
}

async fn check_conv(c: &mut Checker, case: ConvCase) -> Result<()> {
    let d = ConvDims::from(case);
    let (b, cin, h, w, cout, k, stride) = (d.b, d.cin, d.h, d.w, d.cout, d.kh, d.stride);
    let (ho, wo) = d.out_hw();
    let s = d.label();
    let (x, xv) = c.randn(&[b, cin, h, w])?;
    let (wt, wv) = c.randn(&[cout, cin, k, k])?;
    let (_, bv) = c.randn(&[cout])?;
    let (dy, dyv) = c.randn(&[b, cout, ho, wo])?;
    let (dx, dw, db) = ops::conv2d_backward(&x, &wt, &dy, stride, d.padding())?;
    let fd = fd_vjp(|x| cpu::conv2d(x, &wv, Some(&bv), d), &xv, &dyv);
    c.compare("conv2d backward dx", s.clone(), Ok(dx), &fd, TOL_GRAD)
        .await;
    let fd = fd_vjp(|w| cpu::conv2d(&xv, w, Some(&bv), d), &wv, &dyv);
    c.compare("conv2d backward dweight", s.clone(), Ok(dw), &fd, TOL_GRAD)
        .await;
    let fd = fd_vjp(|bias| cpu::conv2d(&xv, &wv, Some(bias), d), &bv, &dyv);
    c.compare("conv2d backward dbias", s, Ok(db), &fd, TOL_GRAD)
        .await;
    Ok(())
}

/// space_to_depth(dy) is the vector-Jacobian product of depth_to_space (a permutation).
async fn check_space_to_depth(c: &mut Checker, case: [usize; 5]) -> Result<()> {
    let [b, ch, h, w, s] = case;
    let (_, xv) = c.randn(&[b, s * s * ch, h, w])?;
    let (dy, dyv) = c.randn(&[b, ch, s * h, s * w])?;
    let fd = fd_vjp(|x| cpu::depth_to_space(x, b, ch, h, w, s), &xv, &dyv);
    let shape = format!("[{b},{ch},{},{}] block {s}", s * h, s * w);
    c.compare(
        "space_to_depth",
        shape,
        ops::space_to_depth(&dy, s),
        &fd,
        TOL,
    )
    .await;
    Ok(())
}
