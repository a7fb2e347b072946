//! f64 references of adaLN modulation and gated residuals: x [G, T, C], per-group [G, C].

/// `x * (1 + scale[g]) + shift[g]` with x [G, T, C] and shift/scale [G, C].
pub fn modulate(x: &[f64], shift: &[f64], scale: &[f64], t: usize, c: usize) -> Vec<f64> {
    x.iter()
        .enumerate()
        .map(|(i, v)| {
            let gc = i / (t * c) * c + i % c;
            v * (1.0 + scale[gc]) + shift[gc]
        })
        .collect()
}

/// `x + gate[g] * h` with x, h [G, T, C] and gate [G, C].
pub fn gated_residual(x: &[f64], gate: &[f64], h: &[f64], t: usize, c: usize) -> Vec<f64> {
    x.iter()
        .zip(h)
        .enumerate()
        .map(|(i, (v, hv))| v + gate[i / (t * c) * c + i % c] * hv)
        .collect()
}
