//! f64 reference of the batched matmul.

/// `op(a) @ op(b) (+ bias)` per batch; a holds `batch` blocks (or one shared when `shared_a`),
/// likewise b; returns [batch, m, n].
#[allow(clippy::too_many_arguments)]
pub fn matmul_ref(
    a: &[f64],
    b: &[f64],
    bias: Option<&[f64]>,
    batch: usize,
    (m, k, n): (usize, usize, usize),
    trans_a: bool,
    trans_b: bool,
    shared_b: bool,
) -> Vec<f64> {
    let mut out = vec![0.0; batch * m * n];
    for z in 0..batch {
        let ab = &a[z * m * k..(z + 1) * m * k];
        let bb = if shared_b {
            b
        } else {
            &b[z * k * n..(z + 1) * k * n]
        };
        for r in 0..m {
            for c in 0..n {
                let mut s = bias.map_or(0.0, |bias| bias[c]);
                for kk in 0..k {
                    let x = if trans_a {
                        ab[kk * m + r]
                    } else {
                        ab[r * k + kk]
                    };
                    let y = if trans_b {
                        bb[c * k + kk]
                    } else {
                        bb[kk * n + c]
                    };
                    s += x * y;
                }
                out[z * m * n + r * n + c] = s;
            }
        }
    }
    out
}
