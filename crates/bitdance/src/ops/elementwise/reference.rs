//! f64 references of the element-wise ops.

/// `x * sigmoid(x)`.
pub fn silu(x: &[f64]) -> Vec<f64> {
    x.iter().map(|&v| v / (1.0 + (-v).exp())).collect()
}

/// SwiGLU on rows of width 2h: silu(first half) * second half.
pub fn swiglu(x: &[f64], h: usize) -> Vec<f64> {
    x.chunks(2 * h)
        .flat_map(|row| (0..h).map(move |j| row[j] / (1.0 + (-row[j]).exp()) * row[h + j]))
        .collect()
}

/// `a[.., j] + bias[j]`.
pub fn add_bias(a: &[f64], bias: &[f64]) -> Vec<f64> {
    a.iter()
        .enumerate()
        .map(|(i, v)| v + bias[i % bias.len()])
        .collect()
}
