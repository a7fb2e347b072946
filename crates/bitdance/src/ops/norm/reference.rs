//! f64 references of the norm kernels: RMSNorm, LayerNorm, softmax and row statistics. Rows
//! have length `d`.

/// RMSNorm of rows of length d: `(y, rstd per row)`; `w` defaults to ones.
pub fn rms_norm(x: &[f64], w: Option<&[f64]>, d: usize, eps: f64) -> (Vec<f64>, Vec<f64>) {
    let mut y = Vec::with_capacity(x.len());
    let mut rstd = Vec::new();
    for row in x.chunks(d) {
        let ms = row.iter().map(|v| v * v).sum::<f64>() / d as f64;
        let r = 1.0 / (ms + eps).sqrt();
        rstd.push(r);
        y.extend(
            row.iter()
                .enumerate()
                .map(|(j, v)| v * r * w.map_or(1.0, |w| w[j])),
        );
    }
    (y, rstd)
}

/// LayerNorm of rows of length d (biased variance): `(y, mean, rstd)`; w ones, b zeros by default.
pub fn layer_norm(
    x: &[f64],
    w: Option<&[f64]>,
    b: Option<&[f64]>,
    d: usize,
    eps: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut y = Vec::with_capacity(x.len());
    let (mut means, mut rstds) = (Vec::new(), Vec::new());
    for row in x.chunks(d) {
        let mean = row.iter().sum::<f64>() / d as f64;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / d as f64;
        let r = 1.0 / (var + eps).sqrt();
        means.push(mean);
        rstds.push(r);
        y.extend(
            row.iter()
                .enumerate()
                .map(|(j, v)| (v - mean) * r * w.map_or(1.0, |w| w[j]) + b.map_or(0.0, |b| b[j])),
        );
    }
    (y, means, rstds)
}

/// Softmax over rows of length d.
pub fn softmax(x: &[f64], d: usize) -> Vec<f64> {
    x.chunks(d)
        .flat_map(|row| {
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = row.iter().map(|v| (v - m).exp()).sum();
            row.iter().map(move |v| (v - m).exp() / s)
        })
        .collect()
}

/// Per-row mean and sqrt(unbiased variance + eps) of x [rows, d] (d = 1 divides by 1).
pub fn row_stats(x: &[f64], d: usize, eps: f64) -> (Vec<f64>, Vec<f64>) {
    let mut means = Vec::new();
    let mut stds = Vec::new();
    for row in x.chunks(d) {
        let mean = row.iter().sum::<f64>() / d as f64;
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (d.max(2) - 1) as f64;
        means.push(mean);
        stds.push((var + eps).sqrt());
    }
    (means, stds)
}
