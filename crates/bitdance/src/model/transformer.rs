//! The AR transformer over a whole sequence (training, and the reference for cached decoding):
//! class tokens, next-patch query tokens, `proj_in` of the token bits, RMSNorm pre-norm blocks
//! with 2D RoPE and causal (1x) or block-causal (next-patch) attention, and the conditions
//! `norm(h) + pos_for_diff` for the diffusion head.

use std::rc::Rc;

use super::graph::{Attend, CacheSlot, Graph};
use super::weights::{from_vars, Block, Connector, Trunk};
use super::{KvCache, ModelConfig, ParamVars};
use crate::autograd::{Tape, Var};
use crate::ops::{rope_positions_patch_raster, AttentionMask, RopeTable};
use crate::{Error, Result, Tensor};

/// RMSNorm epsilon of the transformer.
pub(crate) const EPS: f32 = 1e-6;

/// RoPE positions [L, 2] of the input sequence: zeros for class and query tokens, then the
/// image cells in the model's token order (patch-raster for next-patch), without the last patch.
pub fn sequence_positions(c: &ModelConfig) -> Result<Vec<f32>> {
    let g = c.grid();
    let mut pos =
        rope_positions_patch_raster(c.cls_token_num + c.parallel_num - 1, g, g, c.patch_side())?;
    pos.truncate(2 * c.sequence_len());
    Ok(pos)
}

/// The attention mask of the full sequence.
pub fn sequence_mask(c: &ModelConfig) -> AttentionMask {
    if c.parallel_num > 1 {
        AttentionMask::BlockCausal {
            start: c.cls_token_num - 1,
            block: c.parallel_num,
        }
    } else {
        AttentionMask::Causal
    }
}

/// Records the transformer on `tape`: `class_idx` u32 [B] (the null class is `num_classes`),
/// `tokens` [B, T, token_dim] (±1 bits of all T image tokens, in the model's token order).
/// Returns the head conditions [B, T, dim]: row i conditions the prediction of token i.
pub fn transformer_forward(
    tape: &Tape,
    c: &ModelConfig,
    params: &ParamVars,
    class_idx: &Tensor,
    tokens: Var,
) -> Result<Var> {
    let s = tape.shape(tokens);
    let (t, p, d) = (c.image_tokens(), c.parallel_num, c.dim);
    if s.len() != 3 || s[1] != t || s[2] != c.token_dim() || s[0] != class_idx.numel() {
        return Err(Error::Shape {
            op: "transformer_forward",
            detail: format!(
                "tokens {s:?} must be [{}, {t}, {}]",
                class_idx.numel(),
                c.token_dim()
            ),
        });
    }
    let b = s[0];
    let mut fetch = from_vars(params);
    let connector = Connector::fetch(c, &mut fetch)?;
    let trunk = Trunk::fetch(c, &mut fetch)?;

    let table = params.get_chunks("cls_embedding.weight")?;
    let cls = tape.embedding_chunks(&table, class_idx)?;
    let mut parts = vec![tape.reshape(cls, &[b, c.cls_token_num, d])?];
    if p > 1 {
        parts.push(tape.tile(params.get("query_token")?, b)?);
    }
    let inputs = tape.slice(tokens, 1, 0, t - p)?;
    parts.push(connect(tape, &connector, &inputs)?);
    let x = tape.concat(&parts, 1)?;

    let len = c.sequence_len();
    let positions = Tensor::from_f32(class_idx.gpu(), &[len, 2], &sequence_positions(c)?)?;
    let rope = RopeTable::new(&positions, 1, c.head_dim())?;
    let x = trunk_blocks(tape, c, &trunk, &x, &rope, None)?;
    let x = tape.slice(x, 1, len - t, t)?;
    let x = tape.rms_norm(x, Some(trunk.norm), EPS)?;
    let x = tape.reshape(x, &[b, t * d])?;
    let pos = tape.reshape(params.get("pos_for_diff.weight")?, &[t * d])?;
    let x = tape.add_bias(x, pos)?;
    tape.reshape(x, &[b, t, d])
}

/// `proj_in` of token bits [B, n, token_dim] -> [B, n, dim].
pub(crate) fn connect<G: Graph>(g: &G, w: &Connector<G::Value>, x: &G::Value) -> Result<G::Value> {
    let h = g.linear(x, &w.w1.weight, w.w1.bias.as_ref())?;
    let h = g.swiglu(&h)?;
    g.linear(&h, &w.w2.weight, w.w2.bias.as_ref())
}

/// `emb_norm` and every block over the input rows `x` [B, n, dim] whose RoPE angles `rope`
/// holds (before the final `norm`). With `cache`, the rows are the next n positions of the
/// cached sequence: their keys and values are appended and they attend to the whole cache.
/// Without it, on a recomputing tape, each block is a `Graph::checkpoint` (recomputed in the
/// backward).
pub(crate) fn trunk_blocks<G: Graph>(
    g: &G,
    c: &ModelConfig,
    w: &Trunk<G::Value>,
    x: &G::Value,
    rope: &RopeTable,
    cache: Option<&mut KvCache>,
) -> Result<G::Value> {
    let s = g.shape(x);
    let ctx = BlockContext {
        rows: [s[0], s[1]],
        heads: c.n_head,
        head_dim: c.head_dim(),
        mask: sequence_mask(c),
        rope: rope.clone(),
    };
    let mut x = g.rms_norm(x, &w.emb_norm, EPS)?;
    for (i, block) in w.layers.iter().enumerate() {
        x = match cache.as_deref() {
            Some(cache) => ctx.forward(g, block, &x, Some(cache.slot(i)))?,
            None if g.recomputes() => {
                let (ctx, block, x) = (ctx.clone(), block.clone(), x.clone());
                g.checkpoint(Rc::new(move |g| ctx.forward(g, &block, &x, None)))?
            }
            None => ctx.forward(g, block, &x, None)?,
        };
    }
    if let Some(cache) = cache {
        cache.len += s[1];
    }
    Ok(x)
}

/// What the blocks of one trunk pass share.
#[derive(Clone)]
struct BlockContext {
    /// B sequences of n rows.
    rows: [usize; 2],
    heads: usize,
    head_dim: usize,
    mask: AttentionMask,
    /// The RoPE angles of the n rows.
    rope: RopeTable,
}

impl BlockContext {
    /// One block `layers.{i}` over x [B, n, dim]: pre-norm attention (its keys and values
    /// appended to `slot` when given) and the SwiGLU feed-forward, each added to x.
    fn forward<G: Graph>(
        &self,
        g: &G,
        block: &Block<G::Value>,
        x: &G::Value,
        slot: Option<CacheSlot>,
    ) -> Result<G::Value> {
        let [b, n] = self.rows;
        let (heads, head_dim) = (self.heads, self.head_dim);
        let h = g.rms_norm(x, &block.attention_norm, EPS)?;
        let qkv = g.linear(&h, &block.wqkv, None)?;
        let [q, k, v] = g.split_qkv(&qkv, heads)?;
        // RoPE depends only on the token and the place in the head, so the heads of
        // q, k [B, H, n, D] rotate as B·H sequences of one head each.
        let rotated = |x: &G::Value| -> Result<G::Value> {
            let x = g.reshape(x, &[b * heads, n, 1, head_dim])?;
            g.reshape(&g.rope(&x, &self.rope)?, &[b, heads, n, head_dim])
        };
        let (q, k) = (rotated(&q)?, rotated(&k)?);
        let how = Attend {
            mask: self.mask,
            scale: 1.0 / (head_dim as f32).sqrt(),
            cache: slot,
        };
        let o = g.attention([&q, &k, &v], how)?;
        let o = g.linear(&g.merge_heads(&o)?, &block.wo, None)?;
        let x = g.add(x, &o)?;
        let h = g.rms_norm(&x, &block.ffn_norm, EPS)?;
        let h = g.swiglu(&g.linear(&h, &block.w1, None)?)?;
        let h = g.linear(&h, &block.w2, None)?;
        g.add(&x, &h)
    }
}
