//! f64 references of the rope kernels.

/// 2D RoPE on x [B, T, H, Dh] with positions [T, 2] (x, y): interleaved pairs, pair j < Dh/4
/// rotated by x * f_j, pair Dh/4 + j by y * f_j, f_j = 10000^(-2j/(Dh/2)); `sign` -1 inverts.
pub fn rope_2d(x: &[f64], positions: &[f64], t: usize, h: usize, dh: usize, sign: f64) -> Vec<f64> {
    let k = dh / 4;
    let mut out = x.to_vec();
    for (n, pair) in out.chunks_mut(2).enumerate() {
        let j = n % (dh / 2);
        let token = n / (dh / 2) / h % t;
        let (axis, i) = if j < k { (0, j) } else { (1, j - k) };
        let f = 10000f64.powf(-2.0 * i as f64 / (dh / 2) as f64);
        let a = positions[2 * token + axis] * f;
        let (s, c) = (sign * a.sin(), a.cos());
        let (x0, x1) = (pair[0], pair[1]);
        pair[0] = x0 * c - x1 * s;
        pair[1] = x1 * c + x0 * s;
    }
    out
}
