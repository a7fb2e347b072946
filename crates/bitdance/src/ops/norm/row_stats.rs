//! Per-row mean and unbiased standard deviation (AdaptiveGroupNorm's latent statistics),
//! forward and backward.

use super::ROW_SUMS_SHADER;
use super::{check_len, item_dispatch, params, row_dispatch, rows_of, Params};
use crate::{DType, Result, Tensor};

kernels! { ROW_STATS_KERNELS = ROW_SUMS_SHADER, Params;
    ROW_STATS = "row_stats", [rw, rw, r];
    ROW_STATS_BACKWARD = "row_stats_backward", [rw, r, r, r, r, r];
}

/// Mean and sqrt(unbiased variance + eps) of each row: x [.., D] -> ([rows], [rows]), rows the
/// product of the leading dims (torch `x.mean(-1)` and `(x.var(-1) + eps).sqrt()`).
pub fn row_stats(x: &Tensor, eps: f32) -> Result<(Tensor, Tensor)> {
    let (rows, d) = rows_of("row_stats", x)?;
    let mean = Tensor::empty(x.gpu(), &[rows], DType::F32)?;
    let std = Tensor::empty(x.gpu(), &[rows], DType::F32)?;
    row_dispatch(
        &ROW_STATS,
        1,
        &[&mean, &std, x],
        params(rows, d, eps, 0, rows),
        rows,
    )?;
    Ok((mean, std))
}

/// Gradient of `row_stats` wrt x: dmean / D + dstd * (x - mean) / ((D - 1) * std), shaped as x.
pub fn row_stats_backward(
    x: &Tensor,
    mean: &Tensor,
    std: &Tensor,
    dmean: &Tensor,
    dstd: &Tensor,
) -> Result<Tensor> {
    const OP: &str = "row_stats_backward";
    let (rows, d) = rows_of(OP, x)?;
    for (what, t) in [
        ("mean", mean),
        ("std", std),
        ("dmean", dmean),
        ("dstd", dstd),
    ] {
        check_len(OP, what, t, rows)?;
    }
    let dx = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    item_dispatch(
        &ROW_STATS_BACKWARD,
        &[&dx, x, mean, std, dmean, dstd],
        params(rows, d, 0.0, 0, rows),
        rows * d,
    )?;
    Ok(dx)
}
