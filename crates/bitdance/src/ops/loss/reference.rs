//! f64 references of the loss kernels: MSE and L1.

/// `mean((a - b)^2)`.
pub fn mse_loss(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>() / a.len() as f64
}

/// mean(|a - b|).
pub fn l1_loss(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>() / a.len() as f64
}
