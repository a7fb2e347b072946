//! Attention and its head layouts on the autograd tape.

use crate::autograd::wrap;
use crate::autograd::{Tape, Var};
use crate::ops::{self, AttentionMask, AttentionSpan};
use crate::Result;

impl Tape {
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
        let tk = kv.shape().get(2).copied().unwrap_or(0);
        let span =
            AttentionSpan::all_keys(tk, qv.shape().get(2).copied().unwrap_or(0), mask, scale);
        let (out, lse) = ops::attention(&qv, &kv, &vv, span)?;
        let ov = out.clone();
        Ok(self.push(
            out,
            &[q, k, v],
            Box::new(move |dy, _| {
                let (dq, dk, dv) = ops::attention_backward(&qv, &kv, &vv, &ov, &lse, dy, span)?;
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
}
