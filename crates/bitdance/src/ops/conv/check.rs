//! Conformance of the conv family (forward here, backward in `check_backward.rs`): 2D convolutions
//! (3x3 and 1x1, strides 1 and 2, symmetric and asymmetric padding; every kernel form and the
//! Winograd form, in chunks of a few tiles),
//! and DCR depth-to-space.

use crate::conformance::{f16_form_suffix, Checker, TOL, TOL_LONG};
use crate::gpu::F16Form;
use crate::ops;
use crate::ops::conv::{conv2d_on, Path};
use crate::reference::{self as cpu, ConvCase, ConvDims};
use crate::{Result, Tensor};

/// A convolution case and whether it has a bias.
type BiasedCase = (ConvCase, bool);

const CONVS: &[BiasedCase] = &[
    ((2, 5, 9, 11, 7, 3, 1, [1, 1, 1, 1]), true),
    ((2, 5, 9, 11, 7, 3, 2, [1, 1, 1, 1]), true),
    ((1, 6, 7, 13, 9, 1, 1, [0, 0, 0, 0]), false),
    ((2, 5, 9, 11, 7, 1, 2, [0, 0, 0, 0]), true),
    ((1, 3, 8, 10, 5, 3, 2, [0, 1, 0, 1]), true),
    ((1, 3, 10, 7, 1, 3, 1, [1, 1, 1, 1]), false),
    ((1, 67, 6, 5, 13, 3, 1, [1, 1, 1, 1]), true),
    // Several output-channel tiles and pixel workgroups of the CPU forms (16 x 16 per lane).
    ((2, 9, 20, 17, 37, 3, 1, [1, 1, 1, 1]), true),
    // Wide enough for the Winograd form on CPU adapters' own path; odd output sizes (partial
    // 2x2 tiles) and asymmetric padding.
    ((2, 17, 7, 9, 16, 3, 1, [0, 2, 1, 0]), true),
];

/// (B, C out, H, W, block).
const DEPTH_TO_SPACE: &[[usize; 5]] = &[[2, 7, 5, 9, 2], [1, 3, 3, 5, 2], [1, 2, 2, 3, 3]];

pub(crate) async fn run(c: &mut Checker) {
    c.skip_subgroup_form("conv2d_sg");
    // The adapter's own kernels, then the portable (GPU) ones, whatever the adapter.
    for path in [Path::Auto, Path::Portable, Path::Winograd] {
        for &case in CONVS {
            let (_, _, _, _, _, k, stride, _) = case.0;
            if path == Path::Winograd && (k, stride) != (3, 1) {
                continue;
            }
            let halves = c.f16_forms().into_iter().map(Some);
            for half in std::iter::once(None).chain(halves) {
                if let Err(e) = check_conv(c, case, path, half).await {
                    c.fail(name("conv2d", path), format!("{case:?}"), e);
                }
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
        ("conv2d", Path::Winograd) => "conv2d winograd",
        _ => op,
    }
}

/// One convolution case on `path`, its weight in 16 bits read in that form when `half`
/// (against f64 on the f16-rounded weight).
async fn check_conv(
    c: &mut Checker,
    (case, has_bias): BiasedCase,
    path: Path,
    half: Option<F16Form>,
) -> Result<()> {
    let d = ConvDims::from(case);
    let (b, cin, h, w, cout, k, stride) = (d.b, d.cin, d.h, d.w, d.cout, d.kh, d.stride);
    let s = format!(
        "{}{}{}",
        d.label(),
        if has_bias { " bias" } else { "" },
        match half {
            Some(form) => format!(" f16 weight{}", f16_form_suffix(form)),
            None => String::new(),
        }
    );
    // Every tensor of a 16-bit case is made in its form: kernels read 16-bit tensors in the
    // form of the handle they are dispatched on, that of the op's inputs.
    if let Some(form) = half {
        c.use_f16_form(form)?;
    }
    let (x, xv) = c.randn(&[b, cin, h, w])?;
    let (mut wt, mut wv) = c.randn(&[cout, cin, k, k])?;
    if half.is_some() {
        let values: Vec<f32> = wv.iter().map(|&v| v as f32).collect();
        wt = Tensor::from_f32_as_f16(&c.gpu, wt.shape(), &values)?;
        wv = wt.to_vec_f32().await?.iter().map(|&v| v as f64).collect();
    }
    let (bt, bv) = c.randn(&[cout])?;
    let r = cpu::conv2d(&xv, &wv, has_bias.then_some(bv.as_slice()), d);
    let padding = d.padding();
    let y = if path == Path::Auto {
        ops::conv2d_padded(&x, &wt, has_bias.then_some(&bt), stride, padding)
    } else {
        conv2d_on(&x, &wt, has_bias.then_some(&bt), stride, padding, path)
    };
    let tol = if cin * k * k > 64 { TOL_LONG } else { TOL };
    c.compare(name("conv2d", path), s, y, &r, tol).await;
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
