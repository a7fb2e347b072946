//! The diffusion head's sinusoidal timestep features, computed on the host in f64: the angles
//! reach about 1000 rad, where GPU sin/cos lose accuracy.

/// Features of the timesteps `t` in [0, 1]: for each t, [cos(1000 t f_i) | sin(1000 t f_i)] with
/// f_i = exp(-ln(10000) i / (dim/2)), i < dim/2; a zero column is appended when dim is odd.
/// Returns [t.len(), dim] row-major.
pub fn timestep_embedding(t: &[f32], dim: usize) -> Vec<f32> {
    let half = dim / 2;
    let mut out = Vec::with_capacity(t.len() * dim);
    for &ti in t {
        // The official code scales and forms the angle in f32; only the sin/cos are exact here.
        let scaled = 1000.0f32 * ti;
        for pass in 0..2 {
            for i in 0..half {
                // torch: exp(-ln(10000) * arange(half, f32) / half) with the exponent formed
                // in f32 (the Python scalar is cast to f32); exp itself is correctly rounded
                // here (torch's vectorised f32 exp can differ by one ulp, e.g. at i = 12).
                let exponent = (-(10000f64.ln() as f32) * i as f32) / half as f32;
                let freq = (exponent as f64).exp() as f32;
                let angle = (scaled * freq) as f64;
                out.push(if pass == 0 { angle.cos() } else { angle.sin() } as f32);
            }
        }
        if dim % 2 == 1 {
            out.push(0.0);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::timestep_embedding;

    #[test]
    fn embedding_layout_is_cos_then_sin() {
        let e = timestep_embedding(&[0.0, 0.5], 8);
        assert_eq!(&e[..8], &[1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
        assert!((e[8] - (500f64).cos() as f32).abs() < 1e-6);
        assert!((e[12] - (500f64).sin() as f32).abs() < 1e-6);
        assert_eq!(timestep_embedding(&[0.3], 5).len(), 5);
    }
}
