//! f64 references of the losses.

/// mean((a - b)²).
pub fn mse_ref(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>() / a.len().max(1) as f64
}
