//! Data movement and reductions: embedding / row gathers and their scatter-add, slices,
//! concatenation, in-place slice writes, column sums and deterministic two-stage sums.

use super::grid_1d;
use crate::gpu::{Access, Kernel};
use crate::shaders::DATA;
use crate::{DType, Error, Result, Tensor};

/// Define sets of `shaders/data.wgsl` the runtime uses (validated by naga).
pub const DATA_VARIANTS: &[&[(&str, u32)]] = &[&[]];

const RW: Access = Access::ReadWrite;
const R: Access = Access::Read;
const GATHER_ROWS: Kernel = Kernel {
    shader: &DATA,
    entry: "gather_rows",
    bindings: &[RW, R, R],
};
const SCATTER_ADD_ROWS: Kernel = Kernel {
    shader: &DATA,
    entry: "scatter_add_rows",
    bindings: &[RW, R, R],
};
const COPY_BLOCK: Kernel = Kernel {
    shader: &DATA,
    entry: "copy_block",
    bindings: &[RW, R],
};
const SUM_ROWS: Kernel = Kernel {
    shader: &DATA,
    entry: "sum_rows",
    bindings: &[RW, R],
};
const SUM_PARTIALS: Kernel = Kernel {
    shader: &DATA,
    entry: "sum_partials",
    bindings: &[RW, R],
};
const SUM_FINAL: Kernel = Kernel {
    shader: &DATA,
    entry: "sum_final",
    bindings: &[RW, R],
};

/// Elements each stage-1 workgroup reduces (CHUNK in data.wgsl).
const CHUNK: usize = 4096;

fn params(p: [usize; 7], f0: f32) -> [u32; 8] {
    let mut w = [0u32; 8];
    for (slot, v) in w.iter_mut().zip(p) {
        *slot = v as u32;
    }
    w[7] = f0.to_bits();
    w
}

fn rows_and_width(op: &'static str, x: &Tensor) -> Result<(usize, usize)> {
    let d = *x.shape().last().ok_or_else(|| Error::Shape {
        op,
        detail: "scalar input".into(),
    })?;
    Ok((x.numel().checked_div(d).unwrap_or(0), d))
}

/// Rows of `table` [V, D] picked by `idx` (u32 [N]) -> [N, D]; indices >= V give zero rows
/// (use `embedding_checked` to refuse them on the host).
pub fn embedding(table: &Tensor, idx: &Tensor) -> Result<Tensor> {
    gather_rows(table, idx)
}

/// `embedding` with host indices, refusing any index >= V with an error naming it.
pub fn embedding_checked(table: &Tensor, idx: &[u32]) -> Result<Tensor> {
    let v = table.shape().first().copied().unwrap_or(0);
    if let Some(bad) = idx.iter().find(|&&i| i as usize >= v) {
        return Err(Error::Invalid(format!(
            "embedding: index {bad} out of range for a table of {v} rows"
        )));
    }
    embedding(table, &Tensor::from_u32(table.gpu(), &[idx.len()], idx)?)
}

/// Rows of `x` [V, D] in the order `idx` (u32 [N]) -> [N, D] (permutations, embeddings).
pub fn gather_rows(x: &Tensor, idx: &Tensor) -> Result<Tensor> {
    idx.expect_dtype("gather_rows", "idx", DType::U32)?;
    if x.shape().len() != 2 {
        return Err(Error::Shape {
            op: "gather_rows",
            detail: format!("table must be [V, D], found {:?}", x.shape()),
        });
    }
    let (v, d) = (x.shape()[0], x.shape()[1]);
    let n = idx.numel();
    let out = Tensor::empty(x.gpu(), &[n, d], DType::F32)?;
    let grid = grid_1d(x, "gather_rows", n * d)?;
    x.gpu().dispatch(
        &GATHER_ROWS,
        &[],
        &[&out, x, idx],
        &params([n, d, v, 0, 0, 0, 0], 0.0),
        grid,
    )?;
    Ok(out)
}

/// Backward of `gather_rows` / `embedding`: dtable [vocab, D] with dtable[idx[i]] += dy[i],
/// accumulated in index order (deterministic, no atomics).
pub fn embedding_backward(idx: &Tensor, dy: &Tensor, vocab: usize) -> Result<Tensor> {
    idx.expect_dtype("embedding_backward", "idx", DType::U32)?;
    let (n, d) = rows_and_width("embedding_backward", dy)?;
    if n != idx.numel() {
        return Err(Error::Shape {
            op: "embedding_backward",
            detail: format!(
                "dy {:?} has {n} rows for {} indices",
                dy.shape(),
                idx.numel()
            ),
        });
    }
    let out = Tensor::zeros(dy.gpu(), &[vocab, d])?;
    let grid = grid_1d(dy, "embedding_backward", d)?;
    dy.gpu().dispatch(
        &SCATTER_ADD_ROWS,
        &[],
        &[&out, dy, idx],
        &params([n, d, vocab, 0, 0, 0, 0], 0.0),
        grid,
    )?;
    Ok(out)
}

/// (outer, dim, inner) of `shape` around `axis`.
fn split_at_axis(op: &'static str, shape: &[usize], axis: usize) -> Result<(usize, usize, usize)> {
    if axis >= shape.len() {
        return Err(Error::Shape {
            op,
            detail: format!("axis {axis} out of range for {shape:?}"),
        });
    }
    Ok((
        shape[..axis].iter().product(),
        shape[axis],
        shape[axis + 1..].iter().product(),
    ))
}

/// Records dst[.., dst_start + j, ..] = src[.., src_start + j, ..] for j < len along `axis`.
fn copy_block(
    src: &Tensor,
    src_start: usize,
    dst: &Tensor,
    dst_start: usize,
    axis: usize,
    len: usize,
) -> Result<()> {
    let (outer, src_dim, inner) = split_at_axis("copy", src.shape(), axis)?;
    let (_, dst_dim, _) = split_at_axis("copy", dst.shape(), axis)?;
    let n = outer * len * inner;
    let grid = grid_1d(src, "copy_block", n)?;
    let p = params(
        [outer, len, inner, src_dim, src_start, dst_dim, dst_start],
        0.0,
    );
    src.gpu().dispatch(&COPY_BLOCK, &[], &[dst, src], &p, grid)
}

/// `x[.., start..start+len, ..]` along `axis`.
pub fn slice(x: &Tensor, axis: usize, start: usize, len: usize) -> Result<Tensor> {
    let (_, dim, _) = split_at_axis("slice", x.shape(), axis)?;
    if start + len > dim {
        return Err(Error::Shape {
            op: "slice",
            detail: format!(
                "range {start}..{} beyond {dim} along axis {axis} of {:?}",
                start + len,
                x.shape()
            ),
        });
    }
    let mut shape = x.shape().to_vec();
    shape[axis] = len;
    let out = Tensor::empty(x.gpu(), &shape, x.dtype())?;
    copy_block(x, start, &out, 0, axis, len)?;
    Ok(out)
}

/// Backward of `slice`: `dy` placed at `start` along `axis` in zeros of `full_shape`.
pub fn slice_backward(
    dy: &Tensor,
    full_shape: &[usize],
    axis: usize,
    start: usize,
) -> Result<Tensor> {
    let out = Tensor::zeros(dy.gpu(), full_shape)?;
    write_slice(&out, dy, axis, start)?;
    Ok(out)
}

/// In place: `dst[.., start..start+len, ..] = src` along `axis` (KV caches, slice gradients).
pub fn write_slice(dst: &Tensor, src: &Tensor, axis: usize, start: usize) -> Result<()> {
    let (so, len, si) = split_at_axis("write_slice", src.shape(), axis)?;
    let (dout, ddim, di) = split_at_axis("write_slice", dst.shape(), axis)?;
    if so != dout || si != di || start + len > ddim {
        return Err(Error::Shape {
            op: "write_slice",
            detail: format!(
                "{:?} does not fit into {:?} at {start} along axis {axis}",
                src.shape(),
                dst.shape()
            ),
        });
    }
    if src.same_storage(dst) {
        return Err(Error::Invalid(
            "write_slice: source and destination share storage".into(),
        ));
    }
    copy_block(src, 0, dst, start, axis, len)
}

/// Concatenation along `axis`; all other dims must agree.
pub fn concat(xs: &[&Tensor], axis: usize) -> Result<Tensor> {
    let first = xs
        .first()
        .ok_or_else(|| Error::Invalid("concat: no tensors".into()))?;
    let mut shape = first.shape().to_vec();
    split_at_axis("concat", &shape, axis)?;
    shape[axis] = 0;
    for x in xs {
        let s = x.shape();
        let same_rank = s.len() == shape.len();
        if !same_rank
            || s.iter()
                .zip(&shape)
                .enumerate()
                .any(|(i, (a, b))| i != axis && a != b)
        {
            return Err(Error::Shape {
                op: "concat",
                detail: format!("{:?} does not match {:?} off axis {axis}", s, first.shape()),
            });
        }
        shape[axis] += s[axis];
    }
    let out = Tensor::empty(first.gpu(), &shape, first.dtype())?;
    let mut at = 0;
    for x in xs {
        copy_block(x, 0, &out, at, axis, x.shape()[axis])?;
        at += x.shape()[axis];
    }
    Ok(out)
}

/// Column sums: x [.., C] -> [C] (bias gradients), rows summed in order.
pub fn sum_rows(x: &Tensor) -> Result<Tensor> {
    let (rows, c) = rows_and_width("sum_rows", x)?;
    let out = Tensor::empty(x.gpu(), &[c], DType::F32)?;
    let grid = grid_1d(x, "sum_rows", c)?;
    x.gpu().dispatch(
        &SUM_ROWS,
        &[],
        &[&out, x],
        &params([rows, c, 0, 0, 0, 0, 0], 0.0),
        grid,
    )?;
    Ok(out)
}

/// `scale * Σ f(x)` over all elements of all `xs` into a [1] tensor, f = identity or square;
/// two stages, deterministic, no readback.
fn reduce(xs: &[&Tensor], square: bool, scale: f32) -> Result<Tensor> {
    let first = xs
        .first()
        .ok_or_else(|| Error::Invalid("sum: no tensors".into()))?;
    let gpu = first.gpu();
    let groups: Vec<usize> = xs.iter().map(|x| x.numel().div_ceil(CHUNK)).collect();
    let total: usize = groups.iter().sum();
    let partials = Tensor::empty(gpu, &[total.max(1)], DType::F32)?;
    let mut offset = 0;
    for (x, g) in xs.iter().zip(&groups) {
        if *g > 0 {
            let grid = gpu.grid("sum", *g as u32)?;
            let p = params([x.numel(), offset, square as usize, 0, 0, 0, 0], 0.0);
            gpu.dispatch(&SUM_PARTIALS, &[], &[&partials, x], &p, grid)?;
        }
        offset += g;
    }
    let out = Tensor::empty(gpu, &[1], DType::F32)?;
    gpu.dispatch(
        &SUM_FINAL,
        &[],
        &[&out, &partials],
        &params([total, 0, 0, 0, 0, 0, 0], scale),
        [1, 1, 1],
    )?;
    Ok(out)
}

/// Sum of all elements -> [1].
pub fn sum_all(x: &Tensor) -> Result<Tensor> {
    reduce(&[x], false, 1.0)
}

/// Mean of all elements -> [1].
pub fn mean_all(x: &Tensor) -> Result<Tensor> {
    reduce(&[x], false, 1.0 / x.numel().max(1) as f32)
}

/// Σ x² over several tensors (the squared global gradient norm) -> [1], on the GPU.
pub fn sum_squares(xs: &[&Tensor]) -> Result<Tensor> {
    reduce(xs, true, 1.0)
}

/// `scale * Σ x²` -> [1] (mean squares with scale 1/n).
pub fn sum_squares_scaled(x: &Tensor, scale: f32) -> Result<Tensor> {
    reduce(&[x], true, scale)
}
