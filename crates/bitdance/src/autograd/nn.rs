//! Differentiable model ops on the tape: norms, adaLN modulation, softmax, RoPE, attention,
//! head layouts, embeddings, slicing and concatenation.

use super::{Tape, Var};
use crate::ops::{self, AttentionMask};
use crate::{Result, Tensor};

/// Shared by the ops whose backward returns gradients in input order.
fn wrap(g: Vec<Tensor>) -> Vec<Option<Tensor>> {
    g.into_iter().map(Some).collect()
}

impl Tape {
    /// RMSNorm over the last dim with an optional weight [D].
    pub fn rms_norm(&self, x: Var, weight: Option<Var>, eps: f32) -> Result<Var> {
        let xv = self.value(x);
        let wv = weight.map(|w| self.value(w));
        let (y, rstd) = ops::rms_norm(&xv, wv.as_ref(), eps)?;
        let mut inputs = vec![x];
        inputs.extend(weight);
        Ok(self.push(
            y,
            &inputs,
            Box::new(move |dy, _| {
                let (dx, dw) = ops::rms_norm_backward(&xv, wv.as_ref(), &rstd, dy)?;
                let mut g = vec![Some(dx)];
                if dw.is_some() {
                    g.push(dw);
                }
                Ok(g)
            }),
        ))
    }

    /// LayerNorm over the last dim, affine when `affine` = Some((weight, bias)).
    pub fn layer_norm(&self, x: Var, affine: Option<(Var, Var)>, eps: f32) -> Result<Var> {
        let xv = self.value(x);
        let wv = affine.map(|(w, _)| self.value(w));
        let bv = affine.map(|(_, b)| self.value(b));
        let (y, mean, rstd) = ops::layer_norm(&xv, wv.as_ref(), bv.as_ref(), eps)?;
        let mut inputs = vec![x];
        if let Some((w, b)) = affine {
            inputs.extend([w, b]);
        }
        Ok(self.push(
            y,
            &inputs,
            Box::new(move |dy, _| {
                let (dx, dw, db) = ops::layer_norm_backward(&xv, wv.as_ref(), &mean, &rstd, dy)?;
                let mut g = vec![Some(dx)];
                if dw.is_some() {
                    g.extend([dw, db]);
                }
                Ok(g)
            }),
        ))
    }

    /// Per-row mean and sqrt(unbiased variance + eps) of x [.., D] -> ([rows], [rows]).
    pub fn row_stats(&self, x: Var, eps: f32) -> Result<(Var, Var)> {
        let xv = self.value(x);
        let (mean, std) = ops::row_stats(&xv, eps)?;
        let rows = mean.numel();
        let record = |out: &Tensor, of_mean: bool| {
            let (xv, mean, std) = (xv.clone(), mean.clone(), std.clone());
            self.push(
                out.clone(),
                &[x],
                Box::new(move |dy, _| {
                    let zeros = Tensor::zeros(xv.gpu(), &[rows])?;
                    let (dm, ds) = if of_mean { (dy, &zeros) } else { (&zeros, dy) };
                    Ok(vec![Some(ops::row_stats_backward(
                        &xv, &mean, &std, dm, ds,
                    )?)])
                }),
            )
        };
        Ok((record(&mean, true), record(&std, false)))
    }

    /// Softmax over the last dim.
    pub fn softmax(&self, x: Var) -> Result<Var> {
        let y = ops::softmax(&self.value(x))?;
        let yv = y.clone();
        Ok(self.push(
            y,
            &[x],
            Box::new(move |dy, _| Ok(vec![Some(ops::softmax_backward(&yv, dy)?)])),
        ))
    }

    /// adaLN `x * (1 + scale) + shift`: x [G, T, C], shift and scale [G, C].
    pub fn modulate(&self, x: Var, shift: Var, scale: Var) -> Result<Var> {
        let (xv, sv) = (self.value(x), self.value(scale));
        let y = ops::modulate(&xv, &self.value(shift), &sv)?;
        Ok(self.push(
            y,
            &[x, shift, scale],
            Box::new(move |dy, _| {
                let (dx, dshift, dscale) = ops::modulate_backward(&xv, &sv, dy)?;
                Ok(wrap(vec![dx, dshift, dscale]))
            }),
        ))
    }

    /// Gated residual `x + gate * h`: x and h [G, T, C], gate [G, C].
    pub fn gated_residual(&self, x: Var, gate: Var, h: Var) -> Result<Var> {
        let (gv, hv) = (self.value(gate), self.value(h));
        let y = ops::gated_residual(&self.value(x), &gv, &hv)?;
        Ok(self.push(
            y,
            &[x, gate, h],
            Box::new(move |dy, _| {
                let (dx, dgate, dh) = ops::gated_residual_backward(&gv, &hv, dy)?;
                Ok(wrap(vec![dx, dgate, dh]))
            }),
        ))
    }

    /// 2D RoPE of x [B, T, H, Dh] by the angles of `table` (a constant).
    pub fn rope_2d(&self, x: Var, table: &ops::RopeTable) -> Result<Var> {
        let y = table.apply(&self.value(x))?;
        let table = table.clone();
        Ok(self.push(
            y,
            &[x],
            Box::new(move |dy, _| Ok(vec![Some(table.apply_backward(dy)?)])),
        ))
    }

    /// Masked attention over all keys of k, v (no cache): q, k, v [B, H, T, D].
    pub fn attention(
        &self,
        q: Var,
        k: Var,
        v: Var,
        mask: AttentionMask,
        scale: f32,
    ) -> Result<Var> {
        let (qv, kv, vv) = (self.value(q), self.value(k), self.value(v));
        let kv_len = kv.shape().get(2).copied().unwrap_or(0);
        let q_offset = kv_len.saturating_sub(qv.shape().get(2).copied().unwrap_or(0));
        let (out, lse) = ops::attention(&qv, &kv, &vv, kv_len, q_offset, mask, scale)?;
        let ov = out.clone();
        Ok(self.push(
            out,
            &[q, k, v],
            Box::new(move |dy, _| {
                let (dq, dk, dv) = ops::attention_backward(
                    &qv, &kv, &vv, &ov, &lse, dy, kv_len, q_offset, mask, scale,
                )?;
                Ok(wrap(vec![dq, dk, dv]))
            }),
        ))
    }

    /// The q, k, v chunks of a fused projection [B, T, 3·H·D], each [B, H, T, D].
    pub fn split_qkv(&self, qkv: Var, heads: usize) -> Result<(Var, Var, Var)> {
        let (q, k, v) = ops::split_qkv(&self.value(qkv), heads)?;
        let out = self.push_multi(
            vec![q, k, v],
            &[qkv],
            Box::new(|dys, _| Ok(vec![Some(ops::merge_qkv_grad(&dys[0], &dys[1], &dys[2])?)])),
        );
        Ok((out[0], out[1], out[2]))
    }

    /// [B, H, T, D] -> [B, T, H·D].
    pub fn merge_heads(&self, x: Var) -> Result<Var> {
        let heads = self.shape(x).get(1).copied().unwrap_or(1);
        let y = ops::merge_heads(&self.value(x))?;
        Ok(self.push(
            y,
            &[x],
            Box::new(move |dy, _| Ok(vec![Some(ops::split_heads(dy, heads)?)])),
        ))
    }

    /// [B, T, H·D] -> [B, H, T, D].
    pub fn split_heads(&self, x: Var, heads: usize) -> Result<Var> {
        let y = ops::split_heads(&self.value(x), heads)?;
        Ok(self.push(
            y,
            &[x],
            Box::new(|dy, _| Ok(vec![Some(ops::merge_heads(dy)?)])),
        ))
    }

    /// Rows of `table` [V, D] picked by the u32 indices `idx` [N] (a constant) -> [N, D].
    pub fn embedding(&self, table: Var, idx: &Tensor) -> Result<Var> {
        let tv = self.value(table);
        let vocab = tv.shape()[0];
        let idx = idx.clone();
        let y = ops::embedding(&tv, &idx)?;
        Ok(self.push(
            y,
            &[table],
            Box::new(move |dy, _| Ok(vec![Some(ops::embedding_backward(&idx, dy, vocab)?)])),
        ))
    }

    /// `x[.., start..start+len, ..]` along `axis`.
    pub fn slice(&self, x: Var, axis: usize, start: usize, len: usize) -> Result<Var> {
        let shape = self.shape(x);
        let y = ops::slice(&self.value(x), axis, start, len)?;
        Ok(self.push(
            y,
            &[x],
            Box::new(move |dy, _| Ok(vec![Some(ops::slice_backward(dy, &shape, axis, start)?)])),
        ))
    }

    /// Consecutive pieces of `x` along `axis` with lengths `sizes` (summing to that axis).
    pub fn split(&self, x: Var, axis: usize, sizes: &[usize]) -> Result<Vec<Var>> {
        let xv = self.value(x);
        let total: usize = sizes.iter().sum();
        if xv.shape().get(axis) != Some(&total) {
            return Err(crate::Error::Shape {
                op: "split",
                detail: format!(
                    "sizes {sizes:?} do not cover axis {axis} of {:?}",
                    xv.shape()
                ),
            });
        }
        let mut start = 0;
        let mut values = Vec::with_capacity(sizes.len());
        for &len in sizes {
            values.push(ops::slice(&xv, axis, start, len)?);
            start += len;
        }
        Ok(self.push_multi(
            values,
            &[x],
            Box::new(move |dys, _| {
                let refs: Vec<&Tensor> = dys.iter().collect();
                Ok(vec![Some(ops::concat(&refs, axis)?)])
            }),
        ))
    }

    /// `times` copies of x stacked along axis 0 (`concat(&[x; times], 0)` in one dispatch; the
    /// gradient sums the copies).
    pub fn tile(&self, x: Var, times: usize) -> Result<Var> {
        let y = ops::tile(&self.value(x), times)?;
        Ok(self.push(
            y,
            &[x],
            Box::new(move |dy, _| Ok(vec![Some(ops::tile_backward(dy, times)?)])),
        ))
    }

    /// Concatenation along `axis`.
    pub fn concat(&self, xs: &[Var], axis: usize) -> Result<Var> {
        let values: Vec<Tensor> = xs.iter().map(|&v| self.value(v)).collect();
        let refs: Vec<&Tensor> = values.iter().collect();
        let y = ops::concat(&refs, axis)?;
        let lens: Vec<usize> = values.iter().map(|v| v.shape()[axis]).collect();
        Ok(self.push(
            y,
            xs,
            Box::new(move |dy, need| {
                let mut start = 0;
                let mut grads = Vec::new();
                for (len, n) in lens.iter().zip(need) {
                    grads.push(if *n {
                        Some(ops::slice(dy, axis, start, *len)?)
                    } else {
                        None
                    });
                    start += len;
                }
                Ok(grads)
            }),
        ))
    }

    /// The same values seen with another shape.
    pub fn reshape(&self, x: Var, shape: &[usize]) -> Result<Var> {
        let old = self.shape(x);
        let y = self.value(x).reshape(shape)?;
        Ok(self.push(
            y,
            &[x],
            Box::new(move |dy, _| Ok(vec![Some(dy.reshape(&old)?)])),
        ))
    }
}
