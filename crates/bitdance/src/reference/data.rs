//! f64 references of the data-movement ops and reductions.

/// Rows of `table` [V, d] picked by `idx`; out-of-range rows are zeros.
pub fn gather_rows_ref(table: &[f64], d: usize, idx: &[u32]) -> Vec<f64> {
    let v = table.len() / d.max(1);
    idx.iter()
        .flat_map(|&i| {
            if (i as usize) < v {
                table[i as usize * d..(i as usize + 1) * d].to_vec()
            } else {
                vec![0.0; d]
            }
        })
        .collect()
}

/// `x[.., start..start+len, ..]` along the middle dim of an (outer, dim, inner) view.
pub fn slice_ref(
    x: &[f64],
    (outer, dim, inner): (usize, usize, usize),
    start: usize,
    len: usize,
) -> Vec<f64> {
    (0..outer)
        .flat_map(|o| x[(o * dim + start) * inner..(o * dim + start + len) * inner].to_vec())
        .collect()
}

/// Column sums of a [rows, c] matrix.
pub fn sum_rows_ref(x: &[f64], c: usize) -> Vec<f64> {
    let mut out = vec![0.0; c];
    for (i, v) in x.iter().enumerate() {
        out[i % c] += v;
    }
    out
}
