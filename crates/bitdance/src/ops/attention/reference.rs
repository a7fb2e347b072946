//! f64 references of the attention kernels: naive masked softmax attention and the head layouts.

use crate::ops::AttentionMask;

/// Sizes of one attention call: q [b, h, tq, d], k and v [b, h, tk_cap, d], keys 0..kv_len used,
/// query row i at position q_offset + i.
#[derive(Clone, Copy, Debug)]
pub struct AttentionDims {
    /// Batch.
    pub b: usize,
    /// Heads.
    pub h: usize,
    /// Query rows per head.
    pub tq: usize,
    /// Key / value rows per head (cache capacity).
    pub tk_cap: usize,
    /// Head dim.
    pub d: usize,
    /// Keys in use.
    pub kv_len: usize,
    /// Position of query row 0.
    pub q_offset: usize,
}

/// Naive softmax(scale * q k^T + mask) v; returns (out [b, h, tq, d], lse [b, h, tq]).
pub fn attention(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    dims: AttentionDims,
    mask: AttentionMask,
    scale: f64,
) -> (Vec<f64>, Vec<f64>) {
    let AttentionDims {
        b,
        h,
        tq,
        tk_cap,
        d,
        kv_len,
        q_offset,
    } = dims;
    let mut out = vec![0.0; b * h * tq * d];
    let mut lse = vec![0.0; b * h * tq];
    for bh in 0..b * h {
        for i in 0..tq {
            let qi = &q[(bh * tq + i) * d..][..d];
            let logits: Vec<Option<f64>> = (0..kv_len)
                .map(|j| {
                    mask.visible(q_offset + i, j).then(|| {
                        let kj = &k[(bh * tk_cap + j) * d..][..d];
                        scale * qi.iter().zip(kj).map(|(a, b)| a * b).sum::<f64>()
                    })
                })
                .collect();
            let m = logits
                .iter()
                .flatten()
                .fold(f64::NEG_INFINITY, |a, &b| a.max(b));
            let sum: f64 = logits.iter().flatten().map(|s| (s - m).exp()).sum();
            lse[bh * tq + i] = m + sum.ln();
            let o = &mut out[(bh * tq + i) * d..][..d];
            for (j, s) in logits.iter().enumerate() {
                if let Some(s) = s {
                    let p = (s - m).exp() / sum;
                    let vj = &v[(bh * tk_cap + j) * d..][..d];
                    for (od, vd) in o.iter_mut().zip(vj) {
                        *od += p * vd;
                    }
                }
            }
        }
    }
    (out, lse)
}

/// [b, n1, n2, d] -> [b, n2, n1, d].
fn swap12(x: &[f64], b: usize, n1: usize, n2: usize, d: usize) -> Vec<f64> {
    let mut out = vec![0.0; x.len()];
    for bi in 0..b {
        for i1 in 0..n1 {
            for i2 in 0..n2 {
                let s = ((bi * n1 + i1) * n2 + i2) * d;
                let o = ((bi * n2 + i2) * n1 + i1) * d;
                out[o..o + d].copy_from_slice(&x[s..s + d]);
            }
        }
    }
    out
}

/// qkv [b, t, 3*h*d] (q | k | v chunks, each [h, d]) -> q | k | v concatenated, each [b, h, t, d].
pub fn split_qkv(qkv: &[f64], b: usize, t: usize, h: usize, d: usize) -> Vec<f64> {
    // View qkv as [b, t, 3h, d] -> [b, 3h, t, d], then move the chunk index outermost.
    let heads = swap12(qkv, b, t, 3 * h, d);
    let chunk = h * t * d;
    (0..3)
        .flat_map(|c| (0..b).flat_map(move |bi| (bi * 3 + c) * chunk..(bi * 3 + c + 1) * chunk))
        .map(|i| heads[i])
        .collect()
}

/// x [b, h, t, d] -> [b, t, h*d].
pub fn merge_heads(x: &[f64], b: usize, h: usize, t: usize, d: usize) -> Vec<f64> {
    swap12(x, b, h, t, d)
}

/// x [b, t, h*d] -> [b, h, t, d].
pub fn split_heads(x: &[f64], b: usize, t: usize, h: usize, d: usize) -> Vec<f64> {
    swap12(x, b, t, h, d)
}
