//! Conformance of gathers, scatter-adds, slices, concatenation and reductions.

use super::{Checker, TOL, TOL_GRAD, TOL_LONG};
use crate::ops;
use crate::reference::{finite_difference_vjp, gather_rows_ref, slice_ref, sum_rows_ref};
use crate::{Result, Tensor};

pub(super) async fn run(c: &mut Checker) {
    if let Err(e) = all(c).await {
        c.fail("data", "setup".into(), e);
    }
}

async fn all(c: &mut Checker) -> Result<()> {
    let (v, d) = (13, 37);
    let (table, tv) = c.randn(&[v, d])?;
    let idx: Vec<u32> = [5, 0, 12, 5, 7, 5, 1, 13, 2].to_vec(); // repeats and one out of range
    let idx_t = Tensor::from_u32(&c.gpu, &[idx.len()], &idx)?;
    c.compare(
        "embedding gather",
        format!("[{v},{d}] by {} (one OOB)", idx.len()),
        ops::embedding(&table, &idx_t),
        &gather_rows_ref(&tv, d, &idx),
        TOL,
    )
    .await;
    let (dy, dyv) = c.randn(&[idx.len(), d])?;
    let fd = finite_difference_vjp(|t| gather_rows_ref(t, d, &idx), &tv, &dyv);
    c.compare(
        "embedding scatter-add backward",
        format!("[{},{d}] -> [{v},{d}]", idx.len()),
        ops::embedding_backward(&idx_t, &dy, v),
        &fd,
        TOL_GRAD,
    )
    .await;

    let shape = [3, 11, 5];
    let (x, xv) = c.randn(&shape)?;
    c.compare(
        "slice axis 1",
        "[3,11,5] 4..11".into(),
        ops::slice(&x, 1, 4, 7),
        &slice_ref(&xv, (3, 11, 5), 4, 7),
        TOL,
    )
    .await;
    c.compare(
        "slice axis 2",
        "[3,11,5] 1..3".into(),
        ops::slice(&x, 2, 1, 2),
        &slice_ref(&xv, (33, 5, 1), 1, 2),
        TOL,
    )
    .await;
    let (ds, dsv) = c.randn(&[3, 7, 5])?;
    let fd = finite_difference_vjp(|x| slice_ref(x, (3, 11, 5), 4, 7), &xv, &dsv);
    c.compare(
        "slice backward",
        "[3,7,5] into [3,11,5]".into(),
        ops::slice_backward(&ds, &shape, 1, 4),
        &fd,
        TOL_GRAD,
    )
    .await;
    let (y, yv) = c.randn(&[3, 2, 5])?;
    let mut r = Vec::new();
    for o in 0..3 {
        r.extend_from_slice(&xv[o * 55..(o + 1) * 55]);
        r.extend_from_slice(&yv[o * 10..(o + 1) * 10]);
    }
    c.compare(
        "concat axis 1",
        "[3,11,5] ++ [3,2,5]".into(),
        ops::concat(&[&x, &y], 1),
        &r,
        TOL,
    )
    .await;
    let cache = ops::duplicate(&x)?;
    let mut r = xv.clone();
    for o in 0..3 {
        for j in 0..2 {
            for i in 0..5 {
                r[(o * 11 + 6 + j) * 5 + i] = yv[(o * 2 + j) * 5 + i];
            }
        }
    }
    let wrote = ops::write_slice(&cache, &y, 1, 6).map(|_| cache);
    c.compare(
        "write_slice in place",
        "[3,2,5] at 6 in [3,11,5]".into(),
        wrote,
        &r,
        TOL,
    )
    .await;

    let (m, mv) = c.randn(&[129, 67])?;
    c.compare(
        "sum_rows",
        "[129,67]".into(),
        ops::sum_rows(&m),
        &sum_rows_ref(&mv, 67),
        TOL,
    )
    .await;
    let n = 100_003;
    let (big, bigv) = c.randn(&[n])?;
    let s: f64 = bigv.iter().sum();
    c.compare(
        "sum_all (two-stage)",
        format!("[{n}]"),
        ops::sum_all(&big),
        &[s],
        TOL_LONG,
    )
    .await;
    c.compare(
        "mean_all",
        format!("[{n}]"),
        ops::mean_all(&big),
        &[s / n as f64],
        TOL_LONG,
    )
    .await;
    let sq: f64 = bigv.iter().chain(&mv).map(|v| v * v).sum();
    c.compare(
        "sum_squares of 2 tensors",
        format!("[{n}] + [129,67]"),
        ops::sum_squares(&[&big, &m]),
        &[sq],
        TOL_LONG,
    )
    .await;
    Ok(())
}
