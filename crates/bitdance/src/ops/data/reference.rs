//! f64 references of the data kernels.

/// `(outer, dim, inner)` of `shape` around `axis`.
fn view(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        shape[..axis].iter().product(),
        shape[axis],
        shape[axis + 1..].iter().product(),
    )
}

/// Rows `idx` of `table` (rows of width `d`); out-of-range indices give zero rows.
pub fn embedding(table: &[f64], d: usize, idx: &[u32]) -> Vec<f64> {
    let rows = table.len() / d.max(1);
    idx.iter()
        .flat_map(|&i| {
            let i = i as usize;
            (0..d).map(move |k| if i < rows { table[i * d + k] } else { 0.0 })
        })
        .collect()
}

/// Scatter-add of `dy` rows (width `d`) into a zero [vocab, d] table at `idx`.
pub fn embedding_backward(idx: &[u32], dy: &[f64], d: usize, vocab: usize) -> Vec<f64> {
    let mut out = vec![0.0; vocab * d];
    for (r, &i) in idx.iter().enumerate() {
        let i = i as usize;
        if i < vocab {
            for k in 0..d {
                out[i * d + k] += dy[r * d + k];
            }
        }
    }
    out
}

/// `x[.., start..start + len, ..]` along `axis` of a tensor of `shape`.
pub fn slice(x: &[f64], shape: &[usize], axis: usize, start: usize, len: usize) -> Vec<f64> {
    let (outer, dim, inner) = view(shape, axis);
    (0..outer)
        .flat_map(|o| x[(o * dim + start) * inner..(o * dim + start + len) * inner].iter())
        .copied()
        .collect()
}

/// `src` (shape `full_shape` with `len` along `axis`) written into `dst` of `full_shape` at `start`.
pub fn write_slice(
    dst: &[f64],
    full_shape: &[usize],
    src: &[f64],
    axis: usize,
    start: usize,
) -> Vec<f64> {
    let (outer, dim, inner) = view(full_shape, axis);
    let len = src.len() / (outer * inner).max(1);
    let mut out = dst.to_vec();
    for o in 0..outer {
        let to = (o * dim + start) * inner;
        out[to..to + len * inner].copy_from_slice(&src[o * len * inner..(o + 1) * len * inner]);
    }
    out
}

/// Gradient of `slice`: `dy` at `start` along `axis` in zeros of `full_shape`.
pub fn slice_backward(dy: &[f64], full_shape: &[usize], axis: usize, start: usize) -> Vec<f64> {
    let zeros = vec![0.0; full_shape.iter().product()];
    write_slice(&zeros, full_shape, dy, axis, start)
}

/// Concatenation along `axis` of tensors given with their shapes.
pub fn concat(parts: &[(&[f64], &[usize])], axis: usize) -> Vec<f64> {
    let outer: usize = parts[0].1[..axis].iter().product();
    let mut out = Vec::new();
    for o in 0..outer {
        for (x, _) in parts {
            let block = x.len() / outer;
            out.extend_from_slice(&x[o * block..(o + 1) * block]);
        }
    }
    out
}

/// Column sums of x [rows, cols].
pub fn sum_rows(x: &[f64], cols: usize) -> Vec<f64> {
    let mut out = vec![0.0; cols];
    for (i, v) in x.iter().enumerate() {
        out[i % cols] += v;
    }
    out
}

/// Sum of squares of all elements of all slices.
pub fn sum_squares(xs: &[&[f64]]) -> f64 {
    xs.iter().flat_map(|x| x.iter()).map(|v| v * v).sum()
}
