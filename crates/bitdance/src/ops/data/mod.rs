//! Data kernels: row gathers (embedding, permutations) with a deterministic scatter-add
//! backward, strided region copies (slice, concat, write_slice, slice backward) and
//! deterministic two-stage reductions (column sums, sums, means, sums of squares).

pub(crate) mod check;
pub(crate) mod reference;
mod tape;

use super::shape_err;
use crate::gpu::{Kernel, VEC};
use crate::{DType, Error, Result, Tensor};

shader! {
    /// `shaders/data.wgsl`.
    DATA = "data", ["data"], Params, crate::gpu::Variants::Listed(DATA_VARIANTS), false;
}
shader! {
    /// `shaders/data.wgsl` with `shaders/data_f16.wgsl`: row gathers from 16-bit tables.
    DATA_F16 = "data_f16", ["data", "data_f16", "data_b16"], Params,
        crate::gpu::Variants::Listed(DATA_VARIANTS), false, f16 ["data", "data_f16", "data_h16"];
}

/// The shaders of this family, for validation.
#[cfg(test)]
pub(crate) const SHADERS: &[&crate::gpu::Shader] = &[&DATA, &DATA_F16];

uniform! {
    /// The uniform of `data.wgsl`; each entry point gives p1..p6 and scale their meaning.
    struct Params {
        /// Work items of the dispatch.
        n: u32,
        p1: u32, p2: u32, p3: u32, p4: u32, p5: u32, p6: u32,
        scale: f32,
    }
}

kernels! { DATA_KERNELS = DATA, Params;
    COPY_REGION = "copy_region", [rw, r];
    PAD_REGION = "pad_region", [rw, r];
    GATHER_ROWS = "gather_rows", [rw, r, r];
    EMBEDDING_BACKWARD = "embedding_backward", [rw, r, r];
    REDUCE_COLS = "reduce_cols", [rw, r];
}
kernels! { DATA_F16_KERNELS = DATA_F16, Params;
    GATHER_ROWS_F16 = "gather_rows_f16", [rw, r, r];
}

/// Define sets of `shaders/data.wgsl` the runtime uses (validated by naga).
pub const DATA_VARIANTS: &[&[(&str, u32)]] = super::VEC_VARIANTS;

/// Rows one thread of a reduction stage adds up (strided, so reads stay coalesced).
pub(crate) const REDUCE_CHUNK: usize = 256;

/// Threads per output column in `embedding_backward` aim for this many threads in total.
const SCATTER_THREADS: usize = 4096;

/// The uniform of a data kernel over n work items.
fn params(n: usize, p: [usize; 6], scale: f32) -> Params {
    let [p1, p2, p3, p4, p5, p6] = p.map(|v| v as u32);
    Params {
        n: n as u32,
        p1,
        p2,
        p3,
        p4,
        p5,
        p6,
        scale,
    }
}

/// Dispatches `kernel` over p.n work items of single words.
fn launch(kernel: &Kernel, tensors: &[&Tensor], p: Params) -> Result<()> {
    launch_width(kernel, 1, tensors, p)
}

/// Dispatches `kernel` over p.n work items of `width` (1 or 4) words each.
fn launch_width(kernel: &Kernel, width: u32, tensors: &[&Tensor], p: Params) -> Result<()> {
    if p.n == 0 {
        return Ok(());
    }
    let items = p.n as usize;
    tensors[0]
        .gpu()
        .dispatch_items(kernel, &[(VEC, width)], tensors, &p, items)
}

/// `(outer, dim, inner)` of `shape` around `axis`.
fn axis_view(op: &'static str, shape: &[usize], axis: usize) -> Result<(usize, usize, usize)> {
    if axis >= shape.len() {
        return Err(shape_err(
            op,
            format!("axis {axis} out of range for shape {shape:?}"),
        ));
    }
    let outer = shape[..axis].iter().product();
    let inner = shape[axis + 1..].iter().product();
    Ok((outer, shape[axis], inner))
}

/// The region copy of `src` [outer, src_dim, inner] rows `src_start..+len` into `dst`
/// [outer, dst_dim, inner] rows `dst_start..`.
#[allow(clippy::too_many_arguments)]
fn copy_region(
    dst: &Tensor,
    src: &Tensor,
    outer: usize,
    inner: usize,
    len: usize,
    (src_dim, src_start): (usize, usize),
    (dst_dim, dst_start): (usize, usize),
) -> Result<()> {
    // Rows m of `inner` words are contiguous, so the region is `outer` runs of len * inner
    // words: copy those, as vec4s when every run length and offset is a multiple of 4.
    let words = [len, src_dim, src_start, dst_dim, dst_start].map(|v| v * inner);
    let unit = if words.iter().all(|v| v.is_multiple_of(4)) {
        4
    } else {
        1
    };
    let [len, src_dim, src_start, dst_dim, dst_start] = words.map(|v| v / unit);
    let n = outer * len;
    let p = params(n, [0, len, src_dim, src_start, dst_dim, dst_start], 1.0);
    launch_width(&COPY_REGION, unit as u32, &[dst, src], p)
}

/// `times` copies of x stacked along axis 0 (`concat(&[x; times], 0)`, any dtype) in one
/// dispatch: x [d0, ..] -> [times * d0, ..].
pub fn tile(x: &Tensor, times: usize) -> Result<Tensor> {
    let Some((&d0, rest)) = x.shape().split_first() else {
        return Err(shape_err("tile", "x must have at least one dim".into()));
    };
    if times == 0 {
        return Err(shape_err("tile", format!("0 copies of {:?}", x.shape())));
    }
    let mut shape = vec![times * d0];
    shape.extend_from_slice(rest);
    let out = Tensor::empty(x.gpu(), &shape, x.dtype())?;
    // `times` runs of the whole of x, all read from source offset 0 (a source row stride of 0).
    copy_region(&out, x, times, x.numel(), 1, (0, 0), (1, 0))?;
    Ok(out)
}

/// Backward of `tile`: dy [times * d0, ..] -> the sum of its `times` blocks [d0, ..], in a
/// fixed order (deterministic).
pub fn tile_backward(dy: &Tensor, times: usize) -> Result<Tensor> {
    let mut shape = dy.shape().to_vec();
    match shape.first_mut() {
        Some(d0) if times > 0 && *d0 % times == 0 => *d0 /= times,
        _ => {
            return Err(shape_err(
                "tile_backward",
                format!("dy {:?} is not {times} blocks along axis 0", dy.shape()),
            ))
        }
    }
    reduce_columns(dy, times, dy.numel() / times, false, 1.0)?.reshape(&shape)
}

/// Rows `start..start + len` of `x` along `axis` (any dtype); the other dims are kept.
pub fn slice(x: &Tensor, axis: usize, start: usize, len: usize) -> Result<Tensor> {
    let (outer, dim, inner) = axis_view("slice", x.shape(), axis)?;
    if start + len > dim {
        return Err(shape_err(
            "slice",
            format!(
                "range {start}..{} exceeds dim {dim} of axis {axis} in {:?}",
                start + len,
                x.shape()
            ),
        ));
    }
    let mut shape = x.shape().to_vec();
    shape[axis] = len;
    let out = Tensor::empty(x.gpu(), &shape, x.dtype())?;
    copy_region(&out, x, outer, inner, len, (dim, start), (len, 0))?;
    Ok(out)
}

/// Gradient of `slice`: `dy` placed at `start` along `axis` of a zero tensor of `full_shape`.
pub fn slice_backward(
    dy: &Tensor,
    full_shape: &[usize],
    axis: usize,
    start: usize,
) -> Result<Tensor> {
    let (outer, dim, inner) = axis_view("slice_backward", full_shape, axis)?;
    let len = dy.shape().get(axis).copied().unwrap_or(0);
    let mut expect = full_shape.to_vec();
    expect[axis] = len;
    if dy.shape() != expect || start + len > dim {
        return Err(shape_err(
            "slice_backward",
            format!(
                "dy {:?} does not fit {full_shape:?} at {start} along axis {axis}",
                dy.shape()
            ),
        ));
    }
    let out = Tensor::empty(dy.gpu(), full_shape, dy.dtype())?;
    let p = params(outer * dim * inner, [inner, len, len, 0, dim, start], 1.0);
    launch(&PAD_REGION, &[&out, dy], p)?;
    Ok(out)
}

/// Concatenation of `parts` (same dtype, same shape except along `axis`) along `axis`.
pub fn concat(parts: &[&Tensor], axis: usize) -> Result<Tensor> {
    let first = parts
        .first()
        .ok_or_else(|| shape_err("concat", "no tensors given".into()))?;
    let (outer, _, inner) = axis_view("concat", first.shape(), axis)?;
    let mut total = 0;
    for t in parts {
        let fits = t.shape().len() == first.shape().len()
            && t.shape()
                .iter()
                .zip(first.shape())
                .enumerate()
                .all(|(i, (a, b))| i == axis || a == b);
        if !fits || t.dtype() != first.dtype() {
            return Err(shape_err(
                "concat",
                format!(
                    "{:?} ({:?}) does not match {:?} ({:?}) outside axis {axis}",
                    t.shape(),
                    t.dtype(),
                    first.shape(),
                    first.dtype()
                ),
            ));
        }
        total += t.shape()[axis];
    }
    let mut shape = first.shape().to_vec();
    shape[axis] = total;
    let out = Tensor::empty(first.gpu(), &shape, first.dtype())?;
    let mut at = 0;
    for t in parts {
        let len = t.shape()[axis];
        copy_region(&out, t, outer, inner, len, (len, 0), (total, at))?;
        at += len;
    }
    Ok(out)
}

/// In place: `dst[.., start..start + len, ..] = src` along `axis` (len = src's dim there).
pub fn write_slice(dst: &Tensor, src: &Tensor, axis: usize, start: usize) -> Result<()> {
    let (outer, dim, inner) = axis_view("write_slice", dst.shape(), axis)?;
    let len = src.shape().get(axis).copied().unwrap_or(0);
    let mut expect = dst.shape().to_vec();
    expect[axis] = len;
    if src.shape() != expect || start + len > dim || src.dtype() != dst.dtype() {
        return Err(shape_err(
            "write_slice",
            format!(
                "src {:?} ({:?}) does not fit dst {:?} ({:?}) at {start} along axis {axis}",
                src.shape(),
                src.dtype(),
                dst.shape(),
                dst.dtype()
            ),
        ));
    }
    if dst.same_storage(src) {
        return Err(Error::Invalid(
            "write_slice: source and destination share storage".into(),
        ));
    }
    copy_region(dst, src, outer, inner, len, (len, 0), (dim, start))
}

fn check_indices(op: &'static str, idx: &Tensor) -> Result<()> {
    idx.expect_dtype(op, "idx", DType::U32)
}

fn check_first_row(op: &'static str, first_row: usize, rows: usize) -> Result<()> {
    if first_row + rows > u32::MAX as usize {
        return Err(Error::Invalid(format!(
            "{op}: rows {first_row}..{} exceed the u32 index range",
            first_row + rows
        )));
    }
    Ok(())
}

fn gather(
    op: &'static str,
    src: &Tensor,
    (rows, first_row): (usize, usize),
    idx: &Tensor,
    shape: &[usize],
) -> Result<Tensor> {
    check_indices(op, idx)?;
    check_first_row(op, first_row, rows)?;
    // A 16-bit table (inference's class table) gathers into f32 rows.
    let (kernel, dtype) = match src.dtype() {
        DType::F16 => (&GATHER_ROWS_F16, DType::F32),
        dtype => (&GATHER_ROWS, dtype),
    };
    let out = Tensor::empty(src.gpu(), shape, dtype)?;
    let width = src.numel().checked_div(rows).unwrap_or(0);
    let p = params(idx.numel() * width, [width, rows, first_row, 0, 0, 0], 1.0);
    launch(kernel, &[&out, src, idx], p)?;
    Ok(out)
}

/// Embedding lookup: table [V, D] (f32, u32, or f16 widened to f32), idx u32 of any shape ->
/// idx.shape + [D].
/// The kernel cannot report bad indices: an index >= V yields a row of zeros
/// (use `embedding_checked` to validate host-side indices).
pub fn embedding(table: &Tensor, idx: &Tensor) -> Result<Tensor> {
    embedding_rows(table, idx, 0)
}

/// `embedding` from a row chunk holding table rows `first_row..first_row + V` (for tables
/// larger than one storage binding): part [V, D] -> idx.shape + [D], zero rows for indices
/// outside the chunk, so the chunks' results sum to the full lookup.
pub fn embedding_rows(part: &Tensor, idx: &Tensor, first_row: usize) -> Result<Tensor> {
    let [vocab, width] = part.shape() else {
        return Err(shape_err(
            "embedding",
            format!("table must be [V, D], found {:?}", part.shape()),
        ));
    };
    let mut shape = idx.shape().to_vec();
    shape.push(*width);
    gather("embedding", part, (*vocab, first_row), idx, &shape)
}

/// `t` in f32: a 16-bit tensor widened (its rows gathered as `embedding` reads a 16-bit
/// table), an f32 one as it is. Same shape.
pub fn to_f32(t: &Tensor) -> Result<Tensor> {
    if t.dtype() == DType::F32 {
        return Ok(t.clone());
    }
    let rows = t.shape().first().copied().unwrap_or(1);
    let table = t.reshape(&[rows, t.numel() / rows.max(1)])?;
    let idx: Vec<u32> = (0..rows as u32).collect();
    let idx = Tensor::from_u32(t.gpu(), &[rows], &idx)?;
    embedding(&table, &idx)?.reshape(t.shape())
}

/// `embedding` of host indices [N], each checked against V first (Error naming the index).
pub fn embedding_checked(table: &Tensor, idx: &[u32]) -> Result<Tensor> {
    let vocab = table.shape().first().copied().unwrap_or(0);
    if let Some((pos, bad)) = idx.iter().enumerate().find(|(_, &i)| i as usize >= vocab) {
        return Err(Error::Invalid(format!(
            "embedding: index {bad} (position {pos}) is out of range for a table of V = {vocab} rows"
        )));
    }
    let idx = Tensor::from_u32(table.gpu(), &[idx.len()], idx)?;
    embedding(table, &idx)
}

/// Row gather x [N, ..] by idx [M] (u32) -> [M, ..] (e.g. patch-raster reordering);
/// an index >= N yields zeros. Backward: `embedding_backward(idx, dy, N)`.
pub fn gather_rows(x: &Tensor, idx: &Tensor) -> Result<Tensor> {
    let Some((&rows, rest)) = x.shape().split_first() else {
        return Err(shape_err(
            "gather_rows",
            "x must have at least one dim".into(),
        ));
    };
    let mut shape = vec![idx.numel()];
    shape.extend_from_slice(rest);
    gather("gather_rows", x, (rows, 0), idx, &shape)
}

/// Gradient of `embedding`/`gather_rows` w.r.t. the table: idx (u32, N values), dy holding
/// N rows of D (idx.shape + [D] or [N, ..]) -> dtable [vocab] + dy's trailing dims (or
/// [vocab, D]); rows are summed in index order (no float atomics: deterministic) and indices
/// >= vocab contribute nothing.
pub fn embedding_backward(idx: &Tensor, dy: &Tensor, vocab: usize) -> Result<Tensor> {
    embedding_backward_rows(idx, dy, 0, vocab)
}

/// `embedding_backward` restricted to table rows `first_row..first_row + rows` (the gradient
/// of one row chunk, see `embedding_rows`) -> [rows, ..]; other indices are skipped.
pub fn embedding_backward_rows(
    idx: &Tensor,
    dy: &Tensor,
    first_row: usize,
    rows: usize,
) -> Result<Tensor> {
    let vocab = rows;
    check_indices("embedding_backward", idx)?;
    check_first_row("embedding_backward", first_row, rows)?;
    dy.expect_dtype("embedding_backward", "dy", DType::F32)?;
    let n = idx.numel();
    if n == 0 || !dy.numel().is_multiple_of(n) {
        return Err(shape_err(
            "embedding_backward",
            format!(
                "dy {:?} must hold one row per index ({n} indices)",
                dy.shape()
            ),
        ));
    }
    let width = dy.numel() / n;
    let mut shape = vec![vocab];
    match dy.shape().strip_prefix(idx.shape()) {
        Some(rest) => shape.extend_from_slice(rest),
        None => shape.push(width),
    }
    let out = Tensor::empty(dy.gpu(), &shape, DType::F32)?;
    let blocks = SCATTER_THREADS
        .div_ceil(width.max(1))
        .clamp(1, vocab.max(1));
    let p = params(
        blocks * width * usize::from(vocab > 0),
        [width, vocab, n, blocks, first_row, 0],
        1.0,
    );
    launch(&EMBEDDING_BACKWARD, &[&out, dy, idx], p)?;
    Ok(out)
}

/// Parts a reduction stage over `rows` rows produces.
pub(crate) fn reduce_parts(rows: usize) -> usize {
    rows.div_ceil(REDUCE_CHUNK).max(1)
}

/// Records one stage: `dst[offset + q * cols + c] = scale * sum_{r ≡ q mod parts} f(x[r, c])`.
pub(crate) fn reduce_stage(
    dst: &Tensor,
    x: &Tensor,
    (rows, cols, parts): (usize, usize, usize),
    offset: usize,
    square: bool,
    scale: f32,
) -> Result<()> {
    // Columns (and the offset) in multiples of 4 are summed as vec4s.
    let unit = if cols.is_multiple_of(4) && offset.is_multiple_of(4) {
        4
    } else {
        1
    };
    let (cols, offset) = (cols / unit, offset / unit);
    let p = params(
        parts * cols,
        [cols, rows, parts, offset, usize::from(square), 0],
        scale,
    );
    launch_width(&REDUCE_COLS, unit as u32, &[dst, x], p)
}

/// Column sums of x viewed [rows, cols] -> [cols], scaled by `scale` (squares first when
/// `square`); stages of `REDUCE_CHUNK` rows per thread until one row is left: deterministic.
pub(crate) fn reduce_columns(
    x: &Tensor,
    rows: usize,
    cols: usize,
    square: bool,
    scale: f32,
) -> Result<Tensor> {
    x.expect_dtype("reduction", "x", DType::F32)?;
    let mut cur = x.clone();
    let mut rows = rows;
    let mut square = square;
    loop {
        let parts = reduce_parts(rows);
        let last = parts == 1;
        let out = Tensor::empty(x.gpu(), &[parts * cols], DType::F32)?;
        let s = if last { scale } else { 1.0 };
        reduce_stage(&out, &cur, (rows, cols, parts), 0, square, s)?;
        if last {
            return out.reshape(&[cols]);
        }
        cur = out;
        rows = parts;
        square = false;
    }
}

/// Column sums (bias gradients): x [.., C] -> [C], deterministic.
pub fn sum_rows(x: &Tensor) -> Result<Tensor> {
    let cols = x.shape().last().copied().unwrap_or(0);
    if cols == 0 {
        return Err(shape_err(
            "sum_rows",
            format!("x {:?} needs a non-empty last dim", x.shape()),
        ));
    }
    reduce_columns(x, x.numel() / cols, cols, false, 1.0)
}

/// Sum of all elements -> [1], deterministic.
pub fn sum_all(x: &Tensor) -> Result<Tensor> {
    reduce_columns(x, x.numel(), 1, false, 1.0)
}

/// Mean of all elements -> [1].
pub fn mean_all(x: &Tensor) -> Result<Tensor> {
    if x.numel() == 0 {
        return Err(shape_err("mean_all", "mean of an empty tensor".into()));
    }
    reduce_columns(x, x.numel(), 1, false, 1.0 / x.numel() as f32)
}

/// Sum of squares of every element of every tensor -> [1] (the global grad norm²), one
/// partials buffer on the GPU, no readback in between; deterministic.
pub fn sum_squares(tensors: &[&Tensor]) -> Result<Tensor> {
    let first = tensors
        .first()
        .ok_or_else(|| shape_err("sum_squares", "no tensors given".into()))?;
    for t in tensors {
        t.expect_dtype("sum_squares", "tensor", DType::F32)?;
    }
    // Each tensor viewed [rows, cols]: 4 columns when its size allows (vec4 loads), else 1.
    let view = |t: &Tensor| {
        let cols = if t.numel().is_multiple_of(4) { 4 } else { 1 };
        (t.numel() / cols, cols)
    };
    let total: usize = tensors
        .iter()
        .map(|t| {
            let (rows, cols) = view(t);
            reduce_parts(rows) * cols
        })
        .sum();
    let partials = Tensor::empty(first.gpu(), &[total], DType::F32)?;
    let mut offset = 0;
    for t in tensors {
        let (rows, cols) = view(t);
        let parts = reduce_parts(rows);
        reduce_stage(&partials, t, (rows, cols, parts), offset, true, 1.0)?;
        offset += parts * cols;
    }
    reduce_columns(&partials, total, 1, false, 1.0)
}

/// Every kernel this family declares, for the binding contract test.
#[cfg(test)]
pub(crate) const KERNELS: &[&[crate::gpu::Kernel]] = &[DATA_KERNELS, DATA_F16_KERNELS];
