//! The AR transformer over a whole sequence (training, and the reference for cached decoding):
//! class tokens, next-patch query tokens, `proj_in` of the token bits, RMSNorm pre-norm blocks
//! with 2D RoPE and causal (1x) or block-causal (next-patch) attention, and the conditions
//! `norm(h) + pos_for_diff` for the diffusion head.

use super::{ModelConfig, ParamVars};
use crate::autograd::{Tape, Var};
use crate::ops::{rope_positions_patch_raster, AttentionMask, RopeTable};
use crate::{Error, Result, Tensor};

/// RMSNorm epsilon of the transformer.
const EPS: f32 = 1e-6;

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
    let gpu = class_idx.gpu();
    let w = |name: &str| params.get(name);

    let cls = tape.embedding(w("cls_embedding.weight")?, class_idx)?;
    let mut parts = vec![tape.reshape(cls, &[b, c.cls_token_num, d])?];
    if p > 1 {
        let q = w("query_token")?;
        parts.push(tape.tile(q, b)?);
    }
    let inputs = tape.slice(tokens, 1, 0, t - p)?;
    let h = tape.linear(inputs, w("proj_in.w1.weight")?, Some(w("proj_in.w1.bias")?))?;
    let h = tape.swiglu(h)?;
    parts.push(tape.linear(h, w("proj_in.w2.weight")?, Some(w("proj_in.w2.bias")?))?);
    let x = tape.concat(&parts, 1)?;
    let mut x = tape.rms_norm(x, Some(w("emb_norm.weight")?), EPS)?;

    let len = c.sequence_len();
    let positions = Tensor::from_f32(gpu, &[len, 2], &sequence_positions(c)?)?;
    let rope = RopeTable::new(&positions, 1, c.head_dim())?;
    let (heads, head_dim) = (c.n_head, c.head_dim());
    let mask = sequence_mask(c);
    for i in 0..c.n_layer {
        let l = format!("layers.{i}");
        let h = tape.rms_norm(x, Some(w(&format!("{l}.attention_norm.weight"))?), EPS)?;
        let qkv = tape.linear(h, w(&format!("{l}.attention.wqkv.weight"))?, None)?;
        let (q, k, v) = tape.split_qkv(qkv, heads)?;
        // RoPE depends only on the token and the place in the head, so the heads of
        // q, k [B, H, T, D] rotate as B·H sequences of one head each.
        let rotated = |x: Var| -> Result<Var> {
            let x = tape.reshape(x, &[b * heads, len, 1, head_dim])?;
            let x = tape.rope_2d(x, &rope)?;
            tape.reshape(x, &[b, heads, len, head_dim])
        };
        let (q, k) = (rotated(q)?, rotated(k)?);
        let o = tape.attention(q, k, v, mask, 1.0 / (head_dim as f32).sqrt())?;
        let o = tape.merge_heads(o)?;
        let o = tape.linear(o, w(&format!("{l}.attention.wo.weight"))?, None)?;
        x = tape.add(x, o)?;
        let h = tape.rms_norm(x, Some(w(&format!("{l}.ffn_norm.weight"))?), EPS)?;
        let h = tape.linear(h, w(&format!("{l}.feed_forward.w1.weight"))?, None)?;
        let h = tape.swiglu(h)?;
        let h = tape.linear(h, w(&format!("{l}.feed_forward.w2.weight"))?, None)?;
        x = tape.add(x, h)?;
    }
    let x = tape.slice(x, 1, len - t, t)?;
    let x = tape.rms_norm(x, Some(w("norm.weight")?), EPS)?;
    let x = tape.reshape(x, &[b, t * d])?;
    let pos = tape.reshape(w("pos_for_diff.weight")?, &[t * d])?;
    let x = tape.add_bias(x, pos)?;
    tape.reshape(x, &[b, t, d])
}
