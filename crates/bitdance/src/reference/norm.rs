//! f64 references of the normalisations, softmax and adaLN modulation.

/// RMSNorm of rows of width d, optional weight.
pub fn rms_norm_ref(x: &[f64], d: usize, w: Option<&[f64]>, eps: f64) -> Vec<f64> {
    x.chunks(d)
        .flat_map(|row| {
            let r = 1.0 / (row.iter().map(|v| v * v).sum::<f64>() / d as f64 + eps).sqrt();
            row.iter()
                .enumerate()
                .map(move |(c, v)| v * r * w.map_or(1.0, |w| w[c]))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// LayerNorm of rows of width d, optional affine (weight, bias).
pub fn layer_norm_ref(x: &[f64], d: usize, affine: Option<(&[f64], &[f64])>, eps: f64) -> Vec<f64> {
    x.chunks(d)
        .flat_map(|row| {
            let mean = row.iter().sum::<f64>() / d as f64;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / d as f64;
            let r = 1.0 / (var + eps).sqrt();
            row.iter()
                .enumerate()
                .map(move |(c, v)| {
                    let y = (v - mean) * r;
                    affine.map_or(y, |(w, b)| y * w[c] + b[c])
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Softmax of rows of width d.
pub fn softmax_ref(x: &[f64], d: usize) -> Vec<f64> {
    x.chunks(d)
        .flat_map(|row| {
            let m = row.iter().cloned().fold(f64::MIN, f64::max);
            let s: f64 = row.iter().map(|v| (v - m).exp()).sum();
            row.iter()
                .map(move |v| (v - m).exp() / s)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// x [G, T, C] * (1 + scale[G, C]) + shift[G, C].
pub fn modulate_ref(x: &[f64], shift: &[f64], scale: &[f64], t: usize, c: usize) -> Vec<f64> {
    x.iter()
        .enumerate()
        .map(|(i, v)| {
            let gc = (i / (t * c)) * c + i % c;
            v * (1.0 + scale[gc]) + shift[gc]
        })
        .collect()
}

/// x + gate[G, C] * h for x, h [G, T, C].
pub fn gated_residual_ref(x: &[f64], gate: &[f64], h: &[f64], t: usize, c: usize) -> Vec<f64> {
    x.iter()
        .enumerate()
        .map(|(i, v)| v + gate[(i / (t * c)) * c + i % c] * h[i])
        .collect()
}
