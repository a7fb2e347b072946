//! Conformance of the data kernels: gathers, region copies and reductions.

use crate::conformance::{f16_form_suffix, CheckResult, Checker, TOL, TOL_GRAD, TOL_LONG};
use crate::ops;
use crate::reference::{self as cpu, finite_difference_vjp};
use crate::{Result, Tensor};

pub(crate) async fn run(c: &mut Checker) {
    if let Err(e) = gathers(c).await {
        c.fail("embedding / gather_rows", String::new(), e);
    }
    if let Err(e) = copies(c).await {
        c.fail("slice / concat", String::new(), e);
    }
    if let Err(e) = reductions(c).await {
        c.fail("reductions", String::new(), e);
    }
}

/// Records an exact comparison of a u32 result (rel_error = fraction of wrong values).
pub(crate) async fn compare_u32(
    c: &mut Checker,
    op: &str,
    shapes: String,
    out: Result<Tensor>,
    expected: &[u32],
) {
    let got = match out {
        Ok(t) => t.to_vec_u32().await,
        Err(e) => Err(e),
    };
    match got {
        Ok(v) => {
            let wrong = if v.len() == expected.len() {
                v.iter().zip(expected).filter(|(a, b)| a != b).count() as f64
            } else {
                f64::INFINITY
            };
            c.results.push(CheckResult {
                op: op.into(),
                shapes,
                rel_error: wrong / expected.len().max(1) as f64,
                tolerance: 0.0,
                error: None,
                skipped: None,
            });
        }
        Err(e) => c.fail(op, shapes, e),
    }
}

fn indices(c: &mut Checker, n: usize, below: usize) -> Vec<u32> {
    (0..n).map(|_| c.rng.below(below as u64) as u32).collect()
}

async fn gathers(c: &mut Checker) -> Result<()> {
    let (v, d, n) = (37, 67, 129);
    let (table, tv) = c.randn(&[v, d])?;
    let iv = indices(c, n, v);
    let idx = Tensor::from_u32(&c.gpu, &[n], &iv)?;
    let s = format!("[{v}, {d}] by [{n}]");
    let r = cpu::embedding(&tv, d, &iv);
    c.compare("embedding", s, ops::embedding(&table, &idx), &r, TOL)
        .await;

    // Out-of-range indices give zero rows; any index shape gives idx.shape + [D].
    let mut iv = indices(c, 15, v);
    iv[2] = v as u32;
    iv[7] = 1000;
    iv[14] = u32::MAX;
    let idx = Tensor::from_u32(&c.gpu, &[3, 5], &iv)?;
    let r = cpu::embedding(&tv, d, &iv);
    let out = ops::embedding(&table, &idx).and_then(|t| t.reshape(&[15 * d]));
    let s = format!("[{v}, {d}] by [3, 5], 3 out of range");
    c.compare("embedding (zeros out of range)", s, out, &r, TOL)
        .await;

    // A 16-bit table (odd width: rows straddle words) gathers into f32, out-of-range indices
    // included, from a chunk holding rows 5.. of a larger table.
    let values: Vec<f32> = tv.iter().map(|&x| x as f32).collect();
    let shifted: Vec<u32> = iv.iter().map(|&i| i.wrapping_sub(5)).collect();
    for form in c.f16_forms() {
        // Made in the form under check: kernels read in the form of their inputs' handle.
        c.use_f16_form(form)?;
        let half = Tensor::from_f32_as_f16(&c.gpu, &[v, d], &values)?;
        let idx = Tensor::from_u32(&c.gpu, &[3, 5], &iv)?;
        let rounded: Vec<f64> = half.to_vec_f32().await?.iter().map(|&x| x as f64).collect();
        let r = cpu::embedding(&rounded, d, &shifted);
        let out = ops::embedding_rows(&half, &idx, 5).and_then(|t| t.reshape(&[15 * d]));
        let s = format!("[{v}, {d}] f16 rows 5.. by [3, 5]");
        let op = format!("embedding (16-bit table){}", f16_form_suffix(form));
        c.compare(&op, s, out, &r, TOL).await;
    }

    let s = format!("[{v}, {d}] by index {v}");
    match ops::embedding_checked(&table, &[0, 5, v as u32]) {
        Ok(_) => c.fail(
            "embedding_checked",
            s,
            crate::Error::Invalid("an out-of-range index was accepted".into()),
        ),
        Err(e) => {
            let msg = e.to_string();
            let named = msg.contains(&format!("index {v}")) && msg.contains(&format!("V = {v}"));
            c.results.push(CheckResult {
                op: "embedding_checked rejects".into(),
                shapes: s,
                rel_error: if named { 0.0 } else { 1.0 },
                tolerance: 0.0,
                error: None,
                skipped: None,
            });
        }
    }
    // A table stored as row chunks (larger than one binding): each chunk's lookup.
    let iv = indices(c, n, v);
    let idx = Tensor::from_u32(&c.gpu, &[n], &iv)?;
    for (first, rows) in [(0usize, 20usize), (20, 17)] {
        let part = ops::slice(&table, 0, first, rows)?;
        let shifted: Vec<u32> = iv.iter().map(|i| i.wrapping_sub(first as u32)).collect();
        let r = cpu::embedding(&tv[first * d..(first + rows) * d], d, &shifted);
        let s = format!("rows {first}..{} of [{v}, {d}] by [{n}]", first + rows);
        let out = ops::embedding_rows(&part, &idx, first);
        c.compare("embedding_rows", s, out, &r, TOL).await;
    }

    let iv = indices(c, 5, v);
    let r = cpu::embedding(&tv, d, &iv);
    let s = format!("[{v}, {d}] by host [5]");
    c.compare(
        "embedding_checked",
        s,
        ops::embedding_checked(&table, &iv),
        &r,
        TOL,
    )
    .await;

    // Backward: repeated indices (N > V) and one out-of-range index.
    let (v, d, n) = (13, 37, 67);
    let (_, tv) = c.randn(&[v, d])?;
    let mut iv = indices(c, n, v);
    iv[4] = v as u32 + 2;
    let idx = Tensor::from_u32(&c.gpu, &[n], &iv)?;
    let (dy, dyv) = c.randn(&[n, d])?;
    let fd = finite_difference_vjp(|t| cpu::embedding(t, d, &iv), &tv, &dyv);
    let s = format!("[{v}, {d}] by [{n}]");
    c.compare(
        "embedding backward",
        s,
        ops::embedding_backward(&idx, &dy, v),
        &fd,
        TOL_GRAD,
    )
    .await;

    let (first, rows) = (5usize, 6usize);
    let shifted: Vec<u32> = iv.iter().map(|i| i.wrapping_sub(first as u32)).collect();
    let part = &tv[first * d..(first + rows) * d];
    let fd = finite_difference_vjp(|t| cpu::embedding(t, d, &shifted), part, &dyv);
    let s = format!("rows {first}..{} of [{v}, {d}] by [{n}]", first + rows);
    let out = ops::embedding_backward_rows(&idx, &dy, first, rows);
    c.compare("embedding_backward_rows", s, out, &fd, TOL_GRAD)
        .await;

    // Row permutation (patch-raster order) of x [29, 3, 7] and its backward.
    let rows = 29;
    let width = 21;
    let (x, xv) = c.randn(&[rows, 3, 7])?;
    let mut perm: Vec<u32> = (0..rows as u32).collect();
    for i in (1..rows).rev() {
        perm.swap(i, c.rng.below(i as u64 + 1) as usize);
    }
    let idx = Tensor::from_u32(&c.gpu, &[rows], &perm)?;
    let s = format!("[{rows}, 3, 7] by permutation");
    let r = cpu::embedding(&xv, width, &perm);
    c.compare(
        "gather_rows",
        s.clone(),
        ops::gather_rows(&x, &idx),
        &r,
        TOL,
    )
    .await;
    let (dy, dyv) = c.randn(&[rows, 3, 7])?;
    let fd = finite_difference_vjp(|t| cpu::embedding(t, width, &perm), &xv, &dyv);
    let out = ops::embedding_backward(&idx, &dy, rows);
    c.compare("gather_rows backward", s, out, &fd, TOL_GRAD)
        .await;

    // u32 rows move bit-exactly (small values are denormal patterns as f32).
    let data: Vec<u32> = (0..41 * 5)
        .map(|i| {
            if i % 3 == 0 {
                i
            } else {
                c.rng.next_u64() as u32
            }
        })
        .collect();
    let x = Tensor::from_u32(&c.gpu, &[41, 5], &data)?;
    let iv = indices(c, 43, 41);
    let idx = Tensor::from_u32(&c.gpu, &[43], &iv)?;
    let expected: Vec<u32> = iv
        .iter()
        .flat_map(|&r| data[r as usize * 5..r as usize * 5 + 5].to_vec())
        .collect();
    compare_u32(
        c,
        "gather_rows u32",
        "[41, 5] by [43]".into(),
        ops::gather_rows(&x, &idx),
        &expected,
    )
    .await;
    Ok(())
}

async fn copies(c: &mut Checker) -> Result<()> {
    // Inner runs of 5 move word by word; of 8 (axes 0 and 1 of the second shape) as vec4s.
    let cases = [
        (
            [7usize, 37, 5],
            [(1usize, 3usize, 17usize), (0, 2, 4), (2, 1, 3), (1, 36, 1)],
        ),
        ([3, 13, 8], [(1, 3, 7), (0, 1, 2), (2, 4, 4), (1, 12, 1)]),
    ];
    for (shape, slices) in cases {
        copies_of(c, shape, &slices).await?;
    }

    let (a, av) = c.randn(&[7, 5, 4])?;
    let (b, bv) = c.randn(&[7, 11, 4])?;
    let r = cpu::concat(&[(&av, &[7, 5, 4]), (&bv, &[7, 11, 4])], 1);
    let s = "[7,5,4]+[7,11,4] axis 1".to_string();
    c.compare("concat", s, ops::concat(&[&a, &b], 1), &r, TOL)
        .await;
    remaining_copies(c).await
}

/// Slices of `shape` (axis, start, len) and their backward.
async fn copies_of(
    c: &mut Checker,
    shape: [usize; 3],
    slices: &[(usize, usize, usize)],
) -> Result<()> {
    let (x, xv) = c.randn(&shape)?;
    for &(axis, start, len) in slices {
        let s = format!("{shape:?} axis {axis} {start}..{}", start + len);
        let r = cpu::slice(&xv, &shape, axis, start, len);
        c.compare(
            "slice",
            s.clone(),
            ops::slice(&x, axis, start, len),
            &r,
            TOL,
        )
        .await;
        let mut dshape = shape.to_vec();
        dshape[axis] = len;
        let (dy, dyv) = c.randn(&dshape)?;
        let fd = finite_difference_vjp(|t| cpu::slice(t, &shape, axis, start, len), &xv, &dyv);
        c.compare(
            "slice backward",
            s,
            ops::slice_backward(&dy, &shape, axis, start),
            &fd,
            TOL_GRAD,
        )
        .await;
    }
    Ok(())
}

/// Concatenations and in-place slice writes.
async fn remaining_copies(c: &mut Checker) -> Result<()> {
    let (a, av) = c.randn(&[7, 5, 3])?;
    let (b, bv) = c.randn(&[7, 11, 3])?;
    let (d, dv) = c.randn(&[7, 1, 3])?;
    let r = cpu::concat(
        &[(&av, &[7, 5, 3]), (&bv, &[7, 11, 3]), (&dv, &[7, 1, 3])],
        1,
    );
    let s = "[7,5,3]+[7,11,3]+[7,1,3] axis 1".to_string();
    c.compare("concat", s, ops::concat(&[&a, &b, &d], 1), &r, TOL)
        .await;
    let (e, ev) = c.randn(&[3, 37])?;
    let (f, fv) = c.randn(&[5, 37])?;
    let r = cpu::concat(&[(&ev, &[3, 37]), (&fv, &[5, 37])], 0);
    let s = "[3,37]+[5,37] axis 0".to_string();
    c.compare("concat", s, ops::concat(&[&e, &f], 0), &r, TOL)
        .await;

    let (dst, dstv) = c.randn(&[7, 37])?;
    let (src, srcv) = c.randn(&[7, 5])?;
    let r = cpu::write_slice(&dstv, &[7, 37], &srcv, 1, 11);
    let out = ops::write_slice(&dst, &src, 1, 11).map(|_| dst);
    let s = "[7, 5] into [7, 37] axis 1 at 11".to_string();
    c.compare("write_slice (in place)", s, out, &r, TOL).await;
    let (dst, dstv) = c.randn(&[9, 3, 5])?;
    let (src, srcv) = c.randn(&[2, 3, 5])?;
    let r = cpu::write_slice(&dstv, &[9, 3, 5], &srcv, 0, 7);
    let out = ops::write_slice(&dst, &src, 0, 7).map(|_| dst);
    let s = "[2, 3, 5] into [9, 3, 5] axis 0 at 7".to_string();
    c.compare("write_slice (in place)", s, out, &r, TOL).await;
    Ok(())
}

async fn reductions(c: &mut Checker) -> Result<()> {
    // tile: copies along axis 0 (exact); its backward sums them (odd and vec4 block sizes).
    for (shape, times) in [(vec![3usize, 5], 4usize), (vec![1, 3, 8], 16), (vec![7], 1)] {
        let (x, xv) = c.randn(&shape)?;
        let s = format!("{shape:?} x{times}");
        let r: Vec<f64> = (0..times).flat_map(|_| xv.iter().copied()).collect();
        c.compare("tile", s.clone(), ops::tile(&x, times), &r, 0.0)
            .await;
        let mut dy_shape = shape.clone();
        dy_shape[0] *= times;
        let (dy, dyv) = c.randn(&dy_shape)?;
        let r: Vec<f64> = (0..xv.len())
            .map(|i| (0..times).map(|t| dyv[t * xv.len() + i]).sum())
            .collect();
        c.compare("tile backward", s, ops::tile_backward(&dy, times), &r, TOL)
            .await;
    }
    // 12 and 40 columns sum as vec4s.
    let cases = [
        (7usize, 37usize, TOL),
        (1031, 5, TOL),
        (3001, 37, TOL_LONG),
        (5, 12, TOL),
        (1031, 40, TOL_LONG),
    ];
    for (rows, cols, tol) in cases {
        let (x, xv) = c.randn(&[rows, cols])?;
        let r = cpu::sum_rows(&xv, cols);
        let s = format!("[{rows}, {cols}]");
        c.compare("sum_rows", s, ops::sum_rows(&x), &r, tol).await;
    }
    for (shape, tol) in [(vec![1031usize], TOL), (vec![317, 331], TOL_LONG)] {
        let (x, xv) = c.randn(&shape)?;
        let sum: f64 = xv.iter().sum();
        let s = format!("{shape:?}");
        c.compare("sum_all", s.clone(), ops::sum_all(&x), &[sum], tol)
            .await;
        let mean = sum / xv.len() as f64;
        c.compare("mean_all", s, ops::mean_all(&x), &[mean], tol)
            .await;
    }
    let (a, av) = c.randn(&[1031])?;
    let (b, bv) = c.randn(&[100_003])?;
    let (d, dv) = c.randn(&[7, 37])?;
    // Sizes that are multiples of 4 reduce as vec4s, before and after an odd one.
    let (e, ev) = c.randn(&[1032])?;
    let (f, fv) = c.randn(&[36, 12])?;
    let r = cpu::sum_squares(&[&ev, &av, &bv, &dv, &fv]);
    let s = "[1032], [1031], [100003], [7, 37], [36, 12]".to_string();
    c.compare(
        "sum_squares",
        s,
        ops::sum_squares(&[&e, &a, &b, &d, &f]),
        &[r],
        TOL_LONG,
    )
    .await;
    let r = cpu::sum_squares(&[&dv]);
    c.compare(
        "sum_squares",
        "[7, 37]".into(),
        ops::sum_squares(&[&d]),
        &[r],
        TOL,
    )
    .await;
    Ok(())
}
