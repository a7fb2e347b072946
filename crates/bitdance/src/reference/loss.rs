//! f64 references of the losses and the lookup-free quantizer.

/// mean((a - b)²).
pub fn mse_ref(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>() / a.len().max(1) as f64
}

/// +1 where x > 0, else -1.
pub fn sign_quantize_ref(x: &[f64]) -> Vec<f64> {
    x.iter()
        .map(|&v| if v > 0.0 { 1.0 } else { -1.0 })
        .collect()
}

/// Σ_d [x_d > 0] 2^d per group of 8.
pub fn lfq_group_indices_ref(x: &[f64]) -> Vec<u32> {
    x.chunks(8)
        .map(|g| {
            g.iter()
                .enumerate()
                .map(|(d, &v)| u32::from(v > 0.0) << d)
                .sum()
        })
        .collect()
}

/// GFQ entropy loss (mean sample entropy − codebook entropy), as the official `entropy_loss`.
pub fn lfq_entropy_ref(x: &[f64], temperature: f64) -> f64 {
    let samples: Vec<&[f64]> = x.chunks(8).collect();
    let mut avg = [0.0f64; 256];
    let mut sample_entropy = 0.0;
    for s in &samples {
        let z: Vec<f64> = (0..256)
            .map(|j| {
                2.0 * (0..8)
                    .map(|d| s[d] * if (j >> d) & 1 == 1 { 1.0 } else { -1.0 })
                    .sum::<f64>()
                    / temperature
            })
            .collect();
        let m = z.iter().cloned().fold(f64::MIN, f64::max);
        let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        for (j, zj) in z.iter().enumerate() {
            let p = (zj - lse).exp();
            avg[j] += p / samples.len() as f64;
            sample_entropy -= p * (zj - lse) / samples.len() as f64;
        }
    }
    let codebook: f64 = -avg.iter().map(|a| a * (a + 1e-5).ln()).sum::<f64>();
    sample_entropy - codebook
}
