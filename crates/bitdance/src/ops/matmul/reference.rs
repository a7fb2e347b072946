//! f64 references of the matmul kernels.

/// Shapes of one reference matmul: `batch` products of [m, k] x [k, n], each operand
/// optionally stored transposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulDims {
    /// Batch entries of a and of the output.
    pub batch: usize,
    /// Rows of the output.
    pub m: usize,
    /// Reduction length.
    pub k: usize,
    /// Columns of the output.
    pub n: usize,
    /// a is stored [batch, k, m] instead of [batch, m, k].
    pub trans_a: bool,
    /// b is stored [.., n, k] instead of [.., k, n].
    pub trans_b: bool,
    /// b is one 2-D matrix shared by every batch entry.
    pub b_shared: bool,
}

/// `a · b (+ bias)` in f64: a [batch, m, k] (or [batch, k, m]), b [batch, k, n] (or [.., n, k];
/// one matrix when `b_shared`), bias [n]; returns [batch, m, n].
pub fn matmul_ref(a: &[f64], b: &[f64], bias: Option<&[f64]>, d: MatmulDims) -> Vec<f64> {
    let MatmulDims { batch, m, k, n, .. } = d;
    let mut out = vec![0.0; batch * m * n];
    for bi in 0..batch {
        let ab = &a[bi * m * k..(bi + 1) * m * k];
        let bb = if d.b_shared {
            &b[..k * n]
        } else {
            &b[bi * k * n..(bi + 1) * k * n]
        };
        for i in 0..m {
            for j in 0..n {
                let mut s = bias.map_or(0.0, |bias| bias[j]);
                for kk in 0..k {
                    let x = if d.trans_a {
                        ab[kk * m + i]
                    } else {
                        ab[i * k + kk]
                    };
                    let y = if d.trans_b {
                        bb[j * k + kk]
                    } else {
                        bb[kk * n + j]
                    };
                    s += x * y;
                }
                out[(bi * m + i) * n + j] = s;
            }
        }
    }
    out
}
