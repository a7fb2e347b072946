//! f64 reference of the 2D RoPE.

/// Rotates x [B, T, H, Dh] by positions [T, 2] as BitDance's `apply_rotary_emb` with 2D frequencies.
pub fn rope_2d_ref(x: &[f64], positions: &[f64], (t, h, dh): (usize, usize, usize)) -> Vec<f64> {
    let half = dh / 2;
    let k = dh / 4;
    let mut out = x.to_vec();
    for (p, pair) in out.chunks_mut(2).enumerate() {
        let j = p % half;
        let token = (p / (half * h)) % t;
        let (coord, i) = if j < k {
            (positions[2 * token], j)
        } else {
            (positions[2 * token + 1], j - k)
        };
        let angle = coord * 10000f64.powf(-2.0 * i as f64 / half as f64);
        let (s, c) = angle.sin_cos();
        let (x0, x1) = (pair[0], pair[1]);
        pair[0] = x0 * c - x1 * s;
        pair[1] = x1 * c + x0 * s;
    }
    out
}
