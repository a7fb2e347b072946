//! Conformance of the element-wise ops.

use crate::conformance::{Checker, TOL, TOL_GRAD};
use crate::ops;
use crate::reference::{self as cpu, finite_difference_vjp};

pub(crate) async fn run(c: &mut Checker) {
    // Sizes that are multiples of 4 run the vec4 kernels ([2, 44]: all but swiglu).
    let shapes = [
        vec![7usize, 37],
        vec![3, 5, 74],
        vec![1031],
        vec![5, 262],
        vec![3, 5, 40],
        vec![2, 44],
    ];
    for shape in shapes {
        if let Err(e) = check_shape(c, &shape).await {
            c.fail("elementwise", format!("{shape:?}"), e);
        }
    }
}

async fn check_shape(c: &mut Checker, shape: &[usize]) -> crate::Result<()> {
    let s = format!("{shape:?}");
    let (a, av) = c.randn(shape)?;
    let (b, bv) = c.randn(shape)?;
    let n = *shape.last().unwrap_or(&1);

    let r: Vec<f64> = av.iter().zip(&bv).map(|(x, y)| 0.7 * x - 1.3 * y).collect();
    c.compare("axpby", s.clone(), ops::axpby(0.7, &a, -1.3, &b), &r, TOL)
        .await;

    let r: Vec<f64> = av.iter().zip(&bv).map(|(x, y)| x * y).collect();
    c.compare("mul", s.clone(), ops::mul(&a, &b), &r, TOL).await;

    let r: Vec<f64> = av.iter().map(|x| -2.5 * x).collect();
    c.compare("scale", s.clone(), ops::scale(&a, -2.5), &r, TOL)
        .await;

    let acc = ops::scale(&a, 1.0)?;
    let r: Vec<f64> = av.iter().zip(&bv).map(|(x, y)| 0.9 * x + 0.1 * y).collect();
    let out = ops::axpby_inplace(0.9, &acc, 0.1, &b).map(|_| acc);
    c.compare("axpby_inplace (EMA)", s.clone(), out, &r, TOL)
        .await;

    let (factor, factorv) = c.randn(&[1])?;
    let r: Vec<f64> = av.iter().map(|x| -1.5 * factorv[0] * x).collect();
    c.compare(
        "scale_by_scalar",
        s.clone(),
        ops::scale_by_scalar(&a, &factor, -1.5),
        &r,
        TOL,
    )
    .await;

    let filled = crate::Tensor::empty(&c.gpu, shape, crate::DType::F32)?;
    let out = ops::fill_bits(&filled, 0.375f32.to_bits()).map(|_| filled);
    c.compare("fill", s.clone(), out, &vec![0.375; av.len()], 0.0)
        .await;
    // u32 patterns that are f32 denormals or NaNs survive bit for bit.
    for bits in [1u32, 0x7fc0_0001] {
        let filled = crate::Tensor::empty(&c.gpu, shape, crate::DType::U32)?;
        let out = ops::fill_bits(&filled, bits).map(|_| filled);
        let expected = vec![bits; av.len()];
        crate::ops::data::check::compare_u32(
            c,
            &format!("fill u32 {bits:#x}"),
            s.clone(),
            out,
            &expected,
        )
        .await;
    }

    let (bias, biasv) = c.randn(&[n])?;
    c.compare(
        "add_bias",
        format!("{s} + [{n}]"),
        ops::add_bias(&a, &bias),
        &cpu::add_bias(&av, &biasv),
        TOL,
    )
    .await;

    c.compare("silu", s.clone(), ops::silu(&a), &cpu::silu(&av), TOL)
        .await;
    let fd = finite_difference_vjp(cpu::silu, &av, &bv);
    c.compare(
        "silu backward",
        s.clone(),
        ops::silu_backward(&a, &b),
        &fd,
        TOL_GRAD,
    )
    .await;

    if n.is_multiple_of(2) {
        let h = n / 2;
        let mut dshape = shape.to_vec();
        *dshape.last_mut().unwrap_or(&mut 0) = h;
        let (dy, dyv) = c.randn(&dshape)?;
        c.compare(
            "swiglu",
            s.clone(),
            ops::swiglu(&a),
            &cpu::swiglu(&av, h),
            TOL,
        )
        .await;
        let fd = finite_difference_vjp(|x| cpu::swiglu(x, h), &av, &dyv);
        c.compare(
            "swiglu backward",
            s.clone(),
            ops::swiglu_backward(&a, &dy),
            &fd,
            TOL_GRAD,
        )
        .await;
    }
    Ok(())
}
