//! f64 references of the lookup-free quantizer: sign quantization, code indices, entropy loss.

/// +1 where x > 0, else -1.
pub fn sign_quantize(x: &[f64]) -> Vec<f64> {
    x.iter()
        .map(|&v| if v > 0.0 { 1.0 } else { -1.0 })
        .collect()
}

/// Code index of each group of `bits` consecutive values: bit j set where x[j] > 0.
pub fn lfq_group_indices(x: &[f64], bits: usize) -> Vec<u32> {
    x.chunks(bits)
        .map(|g| {
            g.iter()
                .enumerate()
                .map(|(j, &v)| u32::from(v > 0.0) << j)
                .sum()
        })
        .collect()
}

/// The official LFQ entropy loss, computed the direct way: rows of `bits` values, logits
/// 2 x.c_k / T against every code c_k (c_kj = +1 if bit j of k is set else -1), log-softmax,
/// mean row entropy minus -sum A ln(A + 1e-5) of the row-averaged distribution A.
pub fn lfq_entropy_loss(x: &[f64], bits: usize, temperature: f64) -> f64 {
    let codes = 1usize << bits;
    let rows = x.len() / bits;
    let mut avg = vec![0.0; codes];
    let mut sample_entropy = 0.0;
    let mut logits = vec![0.0; codes];
    for row in x.chunks(bits) {
        for (k, l) in logits.iter_mut().enumerate() {
            let dot: f64 = row
                .iter()
                .enumerate()
                .map(|(j, &v)| if (k >> j) & 1 == 1 { v } else { -v })
                .sum();
            *l = 2.0 * dot / temperature;
        }
        let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + logits.iter().map(|l| (l - max).exp()).sum::<f64>().ln();
        for (k, l) in logits.iter().enumerate() {
            let log_p = l - lse;
            let p = log_p.exp();
            avg[k] += p / rows as f64;
            sample_entropy -= p * log_p / rows as f64;
        }
    }
    let batch_entropy: f64 = -avg.iter().map(|a| a * (a + 1e-5).ln()).sum::<f64>();
    sample_entropy - batch_entropy
}
