//! f64 reference of masked attention and the head layouts.

use crate::ops::AttentionMask;

/// softmax(scale q kᵀ + mask) v per (batch, head): q [BH, tq, d], k and v [BH, tcap, d],
/// keys 0..kv_len, query i at position q_offset + i.
#[allow(clippy::too_many_arguments)]
pub fn attention_ref(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    (bh, tq, tcap, d): (usize, usize, usize, usize),
    kv_len: usize,
    q_offset: usize,
    mask: AttentionMask,
    scale: f64,
) -> Vec<f64> {
    let mut out = vec![0.0; bh * tq * d];
    for z in 0..bh {
        for i in 0..tq {
            let qi = &q[(z * tq + i) * d..(z * tq + i + 1) * d];
            let keys: Vec<usize> = (0..kv_len)
                .filter(|&j| mask.visible(q_offset + i, j))
                .collect();
            let s: Vec<f64> = keys
                .iter()
                .map(|&j| {
                    scale
                        * qi.iter()
                            .zip(&k[(z * tcap + j) * d..])
                            .map(|(a, b)| a * b)
                            .sum::<f64>()
                })
                .collect();
            let m = s.iter().cloned().fold(f64::MIN, f64::max);
            let total: f64 = s.iter().map(|x| (x - m).exp()).sum();
            for (&j, sj) in keys.iter().zip(&s) {
                let p = (sj - m).exp() / total;
                for c in 0..d {
                    out[(z * tq + i) * d + c] += p * v[(z * tcap + j) * d + c];
                }
            }
        }
    }
    out
}

/// [B, T, H·D] -> [B, H, T, D].
pub fn split_heads_ref(x: &[f64], (b, t, h, d): (usize, usize, usize, usize)) -> Vec<f64> {
    let mut out = vec![0.0; x.len()];
    for bi in 0..b {
        for ti in 0..t {
            for hi in 0..h {
                for c in 0..d {
                    out[((bi * h + hi) * t + ti) * d + c] = x[(bi * t + ti) * h * d + hi * d + c];
                }
            }
        }
    }
    out
}
