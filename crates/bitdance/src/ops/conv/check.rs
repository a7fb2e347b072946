//! Conformance of the conv family (forward here, backward in `conv_grad`): 2D convolutions
//! (3x3 and 1x1, strides 1 and 2, symmetric and asymmetric padding; every kernel form),
//! GroupNorm (affine or not) and DCR depth-to-space.

use crate::conformance::{Checker, TOL, TOL_LONG};
use crate::ops::conv::{adaptive_group_norm_on, conv2d_on, group_norm_on, Path};
use crate::ops::{self, Padding};
use crate::reference::{self as cpu, ConvDims};
use crate::Result;

/// (B, Cin, H, W, Cout, k, stride, padding (top, bottom, left, right), bias).
type ConvCase = (
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    [usize; 4],
    bool,
);

const CONVS: &[ConvCase] = &[
    (2, 5, 9, 11, 7, 3, 1, [1, 1, 1, 1], true),
    (2, 5, 9, 11, 7, 3, 2, [1, 1, 1, 1], true),
    (1, 6, 7, 13, 9, 1, 1, [0, 0, 0, 0], false),
    (2, 5, 9, 11, 7, 1, 2, [0, 0, 0, 0], true),
    (1, 3, 8, 10, 5, 3, 2, [0, 1, 0, 1], true),
    (1, 3, 10, 7, 1, 3, 1, [1, 1, 1, 1], false),
    (1, 67, 6, 5, 13, 3, 1, [1, 1, 1, 1], true),
    // Several output-channel tiles and pixel workgroups of the CPU forms (16 x 16 per lane).
    (2, 9, 20, 17, 37, 3, 1, [1, 1, 1, 1], true),
];

/// (B, C, H, W, groups).
const GROUP_NORMS: &[[usize; 5]] = &[
    [2, 12, 5, 7, 4],
    [1, 32, 9, 11, 32],
    [3, 8, 3, 3, 1],
    [1, 64, 17, 19, 32],
];

/// (B, C out, H, W, block).
const DEPTH_TO_SPACE: &[[usize; 5]] = &[[2, 7, 5, 9, 2], [1, 3, 3, 5, 2], [1, 2, 2, 3, 3]];

pub(crate) async fn run(c: &mut Checker) {
    c.skip_subgroup_form("conv2d_sg");
    // The adapter's own kernels, then the portable (GPU) ones, whatever the adapter.
    for path in [Path::Auto, Path::Portable] {
        for &case in CONVS {
            if let Err(e) = check_conv(c, case, path).await {
                c.fail(name("conv2d", path), format!("{case:?}"), e);
            }
        }
        for &case in GROUP_NORMS {
            for affine in [true, false] {
                if let Err(e) = check_group_norm(c, case, affine, path).await {
                    c.fail(name("group_norm", path), format!("{case:?}"), e);
                }
            }
            if let Err(e) = check_adaptive_group_norm(c, case, path).await {
                c.fail(name("adaptive_group_norm", path), format!("{case:?}"), e);
            }
        }
    }
    for &case in DEPTH_TO_SPACE {
        if let Err(e) = check_depth_to_space(c, case).await {
            c.fail("depth_to_space", format!("{case:?}"), e);
        }
    }
    super::check_backward::run(c).await;
}

/// Row name of `op` on `path`.
fn name(op: &'static str, path: Path) -> &'static str {
    match (op, path) {
        ("conv2d", Path::Portable) => "conv2d portable",
        ("group_norm", Path::Portable) => "group_norm portable",
        ("adaptive_group_norm", Path::Portable) => "adaptive_group_norm portable",
        _ => op,
    }
}

async fn check_conv(c: &mut Checker, case: ConvCase, path: Path) -> Result<()> {
    let (b, cin, h, w, cout, k, stride, pad, has_bias) = case;
    let d = ConvDims {
        b,
        cin,
        h,
        w,
        cout,
        kh: k,
        kw: k,
        stride,
        pad,
    };
    let s = format!(
        "[{b},{cin},{h},{w}]->{cout} {k}x{k} s{stride} pad{pad:?}{}",
        if has_bias { " bias" } else { "" }
    );
    let (x, xv) = c.randn(&[b, cin, h, w])?;
    let (wt, wv) = c.randn(&[cout, cin, k, k])?;
    let (bt, bv) = c.randn(&[cout])?;
    let r = cpu::conv2d(&xv, &wv, has_bias.then_some(bv.as_slice()), d);
    let padding = Padding {
        top: pad[0],
        bottom: pad[1],
        left: pad[2],
        right: pad[3],
    };
    let y = if path == Path::Auto {
        ops::conv2d_padded(&x, &wt, has_bias.then_some(&bt), stride, padding)
    } else {
        conv2d_on(&x, &wt, has_bias.then_some(&bt), stride, padding, path)
    };
    let tol = if cin * k * k > 64 { TOL_LONG } else { TOL };
    c.compare(name("conv2d", path), s, y, &r, tol).await;
    Ok(())
}

async fn check_group_norm(
    c: &mut Checker,
    case: [usize; 5],
    affine: bool,
    path: Path,
) -> Result<()> {
    let [b, ch, h, w, groups] = case;
    let eps = 1e-6;
    let s = format!(
        "[{b},{ch},{h},{w}] g{groups}{}",
        if affine { " affine" } else { "" }
    );
    let (x, xv) = c.randn(&[b, ch, h, w])?;
    let (wt, wv) = c.randn(&[ch])?;
    let (bt, bv) = c.randn(&[ch])?;
    let (wr, br) = (
        affine.then_some(wv.as_slice()),
        affine.then_some(bv.as_slice()),
    );
    let r = cpu::group_norm(&xv, ch, h * w, groups, wr, br, eps);
    let (wo, bo) = (affine.then_some(&wt), affine.then_some(&bt));
    let y = if path == Path::Auto {
        ops::group_norm(&x, groups, wo, bo, eps as f32)
    } else {
        group_norm_on(&x, groups, wo, bo, eps as f32, path)
    };
    let tol = if ch / groups * h * w > 256 {
        TOL_LONG
    } else {
        TOL
    };
    c.compare(name("group_norm", path), s, y, &r, tol).await;
    Ok(())
}

async fn check_adaptive_group_norm(c: &mut Checker, case: [usize; 5], path: Path) -> Result<()> {
    let [b, ch, h, w, groups] = case;
    let eps = 1e-6;
    let (x, xv) = c.randn(&[b, ch, h, w])?;
    let (scale, sv) = c.randn(&[b, ch])?;
    let (shift, tv) = c.randn(&[b, ch])?;
    let r = cpu::adaptive_group_norm(&xv, ch, h * w, groups, &sv, &tv, eps);
    let y = adaptive_group_norm_on(&x, groups, &scale, &shift, eps as f32, path);
    let tol = if ch / groups * h * w > 256 {
        TOL_LONG
    } else {
        TOL
    };
    let s = format!("[{b},{ch},{h},{w}] g{groups}");
    c.compare(name("adaptive_group_norm", path), s, y, &r, tol).await;
    Ok(())
}

async fn check_depth_to_space(c: &mut Checker, case: [usize; 5]) -> Result<()> {
    let [b, ch, h, w, bs] = case;
    let s = format!("[{b},{},{h},{w}] block {bs}", bs * bs * ch);
    let (x, xv) = c.randn(&[b, bs * bs * ch, h, w])?;
    let r = cpu::depth_to_space(&xv, b, ch, h, w, bs);
    c.compare("depth_to_space", s, ops::depth_to_space(&x, bs), &r, TOL)
        .await;
    Ok(())
}
