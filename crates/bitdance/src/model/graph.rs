//! The operations the models are written over, once: the autograd [`Tape`] implements them for
//! training (values are `Var`s, backward recorded) and [`Eager`] for inference (values are
//! tensors, each freed as soon as the model drops it). The KV cache is an optional argument of
//! the attention, so a cached decoding step and a full-sequence pass run the same code.

use std::rc::Rc;

use crate::autograd::{Tape, Var};
use crate::ops::{self, AdaLn, AttentionMask, AttentionSpan, RopeTable};
use crate::{Error, Result, Tensor};

/// Keys and values of one layer's cache ([B, H, capacity, D] each) and the position at which
/// the attention's new rows go.
pub struct CacheSlot<'a> {
    /// Cached keys.
    pub keys: &'a Tensor,
    /// Cached values.
    pub values: &'a Tensor,
    /// Positions already filled; the new rows are written from here.
    pub start: usize,
}

/// How an attention attends: which keys each query sees, the softmax scale applied to q·k, and
/// the KV cache (inference) or none.
pub struct Attend<'a> {
    /// Which keys each query position may see.
    pub mask: AttentionMask,
    /// Softmax scale applied to q·k.
    pub scale: f32,
    /// The layer's cache slot, or none (every key is in k and v).
    pub cache: Option<CacheSlot<'a>>,
}

/// A model block over values it captured (`Graph::checkpoint`).
pub type GraphBlock<G> = Rc<dyn Fn(&G) -> Result<<G as Graph>::Value>>;

/// Model operations over values of type `Value` (shapes as the `ops` functions document).
pub trait Graph {
    /// A value: `Var` on the tape, `Tensor` eagerly.
    type Value: Clone + 'static;

    /// The shape of `x`.
    fn shape(&self, x: &Self::Value) -> Vec<usize>;
    /// `x` [.., K] · `w` [N, K]ᵀ (+ `bias` [N]).
    fn linear(
        &self,
        x: &Self::Value,
        w: &Self::Value,
        bias: Option<&Self::Value>,
    ) -> Result<Self::Value>;
    /// RMSNorm over the last dim, times `weight`.
    fn rms_norm(&self, x: &Self::Value, weight: &Self::Value, eps: f32) -> Result<Self::Value>;
    /// LayerNorm over the last dim, with (weight, bias) when given.
    fn layer_norm(
        &self,
        x: &Self::Value,
        affine: Option<(&Self::Value, &Self::Value)>,
        eps: f32,
    ) -> Result<Self::Value>;
    /// `a + b`, same shapes.
    fn add(&self, a: &Self::Value, b: &Self::Value) -> Result<Self::Value>;
    /// `x + bias` over the last dim.
    fn add_bias(&self, x: &Self::Value, bias: &Self::Value) -> Result<Self::Value>;
    /// SiLU.
    fn silu(&self, x: &Self::Value) -> Result<Self::Value>;
    /// SwiGLU of the two halves of the last dim: silu(a) * b -> half the width.
    fn swiglu(&self, x: &Self::Value) -> Result<Self::Value>;
    /// adaLN before a sub-layer: `layer_norm(x) * (1 + scale) + shift` per row group.
    fn layer_norm_modulated(&self, x: &Self::Value, m: AdaLn<Self::Value>) -> Result<Self::Value>;
    /// `x + gate * h` per row group (adaLN).
    fn gated_residual(
        &self,
        x: &Self::Value,
        gate: &Self::Value,
        h: &Self::Value,
    ) -> Result<Self::Value>;
    /// `gated_residual(x, gate, h)` and `layer_norm_modulated` of that sum, returned as
    /// (sum, modulated): one kernel on plain tensors.
    fn residual_layer_norm_modulated(
        &self,
        x: &Self::Value,
        gate: &Self::Value,
        h: &Self::Value,
        m: AdaLn<Self::Value>,
    ) -> Result<(Self::Value, Self::Value)>;
    /// The same values seen with another shape.
    fn reshape(&self, x: &Self::Value, shape: &[usize]) -> Result<Self::Value>;
    /// `x` cut along `axis` into parts of `sizes`.
    fn split(&self, x: &Self::Value, axis: usize, sizes: &[usize]) -> Result<Vec<Self::Value>>;
    /// The q, k, v [B, H, T, D] of a fused projection [B, T, 3·H·D].
    fn split_qkv(&self, qkv: &Self::Value, heads: usize) -> Result<[Self::Value; 3]>;
    /// [B, H, T, D] -> [B, T, H·D].
    fn merge_heads(&self, x: &Self::Value) -> Result<Self::Value>;
    /// 2D RoPE of x [B, T, H, D] by `table`'s angles.
    fn rope(&self, x: &Self::Value, table: &RopeTable) -> Result<Self::Value>;
    /// Masked attention of q [B, H, n, D] over k, v [B, H, n, D] (`[q, k, v]`); with
    /// `how.cache`, k and v are first written at `cache.start` and q (positions
    /// start..start + n) attends to the whole filled cache.
    fn attention(&self, qkv: [&Self::Value; 3], how: Attend) -> Result<Self::Value>;
    /// Bidirectional attention within each patch of `tokens` consecutive rows of the fused
    /// projection qkv [rows, 3·H·D] (`heads` heads), q·k scaled by `scale`: [rows, H·D] with the
    /// heads merged (one kernel on plain tensors).
    fn patch_attention(
        &self,
        qkv: &Self::Value,
        tokens: usize,
        heads: usize,
        scale: f32,
    ) -> Result<Self::Value>;
    /// `block(self)`, a model block over values it captured. On a recomputing tape
    /// (`Tape::recomputing`) its activations are not kept: the backward runs it again.
    fn checkpoint(&self, block: GraphBlock<Self>) -> Result<Self::Value> {
        block(self)
    }
    /// Whether `checkpoint` recomputes (else a block may just run, nothing captured).
    fn recomputes(&self) -> bool {
        false
    }
}

/// Inference: every op runs at once on tensors; nothing is recorded.
#[derive(Clone, Copy, Debug, Default)]
pub struct Eager;

impl Graph for Eager {
    type Value = Tensor;

    fn shape(&self, x: &Tensor) -> Vec<usize> {
        x.shape().to_vec()
    }
    fn linear(&self, x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        ops::matmul(x, w, bias, false, true)
    }
    fn rms_norm(&self, x: &Tensor, weight: &Tensor, eps: f32) -> Result<Tensor> {
        Ok(ops::rms_norm(x, Some(weight), eps)?.0)
    }
    fn layer_norm(
        &self,
        x: &Tensor,
        affine: Option<(&Tensor, &Tensor)>,
        eps: f32,
    ) -> Result<Tensor> {
        let (w, b) = affine.unzip();
        Ok(ops::layer_norm(x, w, b, eps)?.0)
    }
    fn add(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        ops::add(a, b)
    }
    fn add_bias(&self, x: &Tensor, bias: &Tensor) -> Result<Tensor> {
        ops::add_bias(x, bias)
    }
    fn silu(&self, x: &Tensor) -> Result<Tensor> {
        ops::silu(x)
    }
    fn swiglu(&self, x: &Tensor) -> Result<Tensor> {
        ops::swiglu(x)
    }
    fn layer_norm_modulated(&self, x: &Tensor, m: AdaLn) -> Result<Tensor> {
        ops::layer_norm_modulated(x, m)
    }
    fn gated_residual(&self, x: &Tensor, gate: &Tensor, h: &Tensor) -> Result<Tensor> {
        ops::gated_residual(x, gate, h)
    }
    fn residual_layer_norm_modulated(
        &self,
        x: &Tensor,
        gate: &Tensor,
        h: &Tensor,
        m: AdaLn,
    ) -> Result<(Tensor, Tensor)> {
        ops::residual_layer_norm_modulated(x, gate, h, m)
    }
    fn reshape(&self, x: &Tensor, shape: &[usize]) -> Result<Tensor> {
        x.reshape(shape)
    }
    fn split(&self, x: &Tensor, axis: usize, sizes: &[usize]) -> Result<Vec<Tensor>> {
        check_split(x.shape(), axis, sizes)?;
        let mut start = 0;
        sizes
            .iter()
            .map(|&len| {
                start += len;
                ops::slice(x, axis, start - len, len)
            })
            .collect()
    }
    fn split_qkv(&self, qkv: &Tensor, heads: usize) -> Result<[Tensor; 3]> {
        let (q, k, v) = ops::split_qkv(qkv, heads)?;
        Ok([q, k, v])
    }
    fn merge_heads(&self, x: &Tensor) -> Result<Tensor> {
        ops::merge_heads(x)
    }
    fn rope(&self, x: &Tensor, table: &RopeTable) -> Result<Tensor> {
        table.apply(x)
    }
    fn patch_attention(
        &self,
        qkv: &Tensor,
        tokens: usize,
        heads: usize,
        scale: f32,
    ) -> Result<Tensor> {
        ops::patch_attention(qkv, tokens, heads, scale)
    }
    fn attention(&self, [q, k, v]: [&Tensor; 3], how: Attend) -> Result<Tensor> {
        let Attend { mask, scale, cache } = how;
        let n = q.shape().get(2).copied().unwrap_or(0);
        let out = match cache {
            None => {
                let tk = k.shape().get(2).copied().unwrap_or(0);
                ops::attention(q, k, v, AttentionSpan::all_keys(tk, n, mask, scale))?
            }
            Some(slot) => {
                ops::kv_cache_write(slot.keys, k, slot.start)?;
                ops::kv_cache_write(slot.values, v, slot.start)?;
                let filled = slot.start + n;
                let span = AttentionSpan::new(filled, slot.start, mask, scale);
                ops::attention(q, slot.keys, slot.values, span)?
            }
        };
        Ok(out.0)
    }
}

/// Training: every op is recorded with its backward.
impl Graph for Tape {
    type Value = Var;

    fn shape(&self, x: &Var) -> Vec<usize> {
        Tape::shape(self, *x)
    }
    fn linear(&self, x: &Var, w: &Var, bias: Option<&Var>) -> Result<Var> {
        Tape::linear(self, *x, *w, bias.copied())
    }
    fn rms_norm(&self, x: &Var, weight: &Var, eps: f32) -> Result<Var> {
        Tape::rms_norm(self, *x, Some(*weight), eps)
    }
    fn layer_norm(&self, x: &Var, affine: Option<(&Var, &Var)>, eps: f32) -> Result<Var> {
        Tape::layer_norm(self, *x, affine.map(|(w, b)| (*w, *b)), eps)
    }
    fn add(&self, a: &Var, b: &Var) -> Result<Var> {
        Tape::add(self, *a, *b)
    }
    fn add_bias(&self, x: &Var, bias: &Var) -> Result<Var> {
        Tape::add_bias(self, *x, *bias)
    }
    fn silu(&self, x: &Var) -> Result<Var> {
        Tape::silu(self, *x)
    }
    fn swiglu(&self, x: &Var) -> Result<Var> {
        Tape::swiglu(self, *x)
    }
    fn layer_norm_modulated(&self, x: &Var, m: AdaLn<Var>) -> Result<Var> {
        let h = Tape::layer_norm(self, *x, m.affine.map(|(w, b)| (*w, *b)), m.eps)?;
        Tape::modulate(self, h, *m.shift, *m.scale)
    }
    fn gated_residual(&self, x: &Var, gate: &Var, h: &Var) -> Result<Var> {
        Tape::gated_residual(self, *x, *gate, *h)
    }
    fn residual_layer_norm_modulated(
        &self,
        x: &Var,
        gate: &Var,
        h: &Var,
        m: AdaLn<Var>,
    ) -> Result<(Var, Var)> {
        let sum = Tape::gated_residual(self, *x, *gate, *h)?;
        Ok((sum, Graph::layer_norm_modulated(self, &sum, m)?))
    }
    fn reshape(&self, x: &Var, shape: &[usize]) -> Result<Var> {
        Tape::reshape(self, *x, shape)
    }
    fn split(&self, x: &Var, axis: usize, sizes: &[usize]) -> Result<Vec<Var>> {
        Tape::split(self, *x, axis, sizes)
    }
    fn patch_attention(&self, qkv: &Var, tokens: usize, heads: usize, scale: f32) -> Result<Var> {
        let &[rows, width] = Tape::shape(self, *qkv).as_slice() else {
            return Err(Error::Invalid(
                "patch_attention: qkv must be [rows, 3 H D]".into(),
            ));
        };
        let qkv = Tape::reshape(self, *qkv, &[rows / tokens.max(1), tokens, width])?;
        let [q, k, v] = Graph::split_qkv(self, &qkv, heads)?;
        let how = Attend {
            mask: AttentionMask::Full,
            scale,
            cache: None,
        };
        let o = Graph::attention(self, [&q, &k, &v], how)?;
        Tape::reshape(self, Tape::merge_heads(self, o)?, &[rows, width / 3])
    }
    fn split_qkv(&self, qkv: &Var, heads: usize) -> Result<[Var; 3]> {
        let (q, k, v) = Tape::split_qkv(self, *qkv, heads)?;
        Ok([q, k, v])
    }
    fn merge_heads(&self, x: &Var) -> Result<Var> {
        Tape::merge_heads(self, *x)
    }
    fn rope(&self, x: &Var, table: &RopeTable) -> Result<Var> {
        Tape::rope_2d(self, *x, table)
    }
    fn checkpoint(&self, block: GraphBlock<Tape>) -> Result<Var> {
        Tape::checkpoint(self, block)
    }
    fn recomputes(&self) -> bool {
        self.is_recomputing()
    }
    fn attention(&self, [q, k, v]: [&Var; 3], how: Attend) -> Result<Var> {
        if how.cache.is_some() {
            return Err(Error::Invalid(
                "attention: the KV cache is for inference (Eager), not for the autograd tape"
                    .into(),
            ));
        }
        Tape::attention(self, *q, *k, *v, how.mask, how.scale)
    }
}

/// Checks that `sizes` cover `axis` of `shape` exactly.
fn check_split(shape: &[usize], axis: usize, sizes: &[usize]) -> Result<()> {
    if shape.get(axis) != Some(&sizes.iter().sum()) {
        return Err(Error::Shape {
            op: "split",
            detail: format!("sizes {sizes:?} do not cover axis {axis} of {shape:?}"),
        });
    }
    Ok(())
}
