//! Attention within the patches of the next-patch head, read straight from the fused q|k|v
//! projection and written with the heads merged: one kernel instead of split_qkv, attention
//! and merge_heads (inference; the tape composes those three).

use super::shape_err;
use crate::{DType, Result, Tensor};

shader! {
    /// `shaders/patch_attention.wgsl`.
    PATCH_ATTENTION_SHADER = "patch_attention", ["patch_attention"], Params,
        crate::gpu::Variants::Listed(&[&[]]), false;
}

uniform! {
    /// The uniform of `patch_attention.wgsl`.
    struct Params {
        /// Rows of qkv (patches x tokens).
        rows: u32,
        /// Rows per patch (at most 16).
        tokens: u32,
        heads: u32,
        /// Head dimension / 4.
        d4: u32,
        /// Softmax scale applied to q.k.
        scale: f32,
    }
}

kernels! { PATCH_ATTENTION_KERNELS = PATCH_ATTENTION_SHADER, Params;
    PATCH_ATTENTION = "patch_attention", [rw, r];
}

/// Most rows per patch (`MAX_TOKENS` in the shader).
const MAX_TOKENS: usize = 16;

/// Bidirectional attention within each patch of `tokens` consecutive rows: qkv [rows, 3·H·D]
/// (the fused projection, q | k | v, each `heads` heads of D, D a multiple of 4) -> the
/// attention output [rows, H·D], heads merged; `scale` multiplies q·k.
pub fn patch_attention(qkv: &Tensor, tokens: usize, heads: usize, scale: f32) -> Result<Tensor> {
    const OP: &str = "patch_attention";
    qkv.expect_dtype(OP, "qkv", DType::F32)?;
    let (rows, width) = match *qkv.shape() {
        [rows, w] => (rows, w),
        ref s => return Err(shape_err(OP, format!("qkv {s:?} must be [rows, 3 H D]"))),
    };
    let valid = tokens > 0 && tokens <= MAX_TOKENS && rows.is_multiple_of(tokens);
    let d = width / (3 * heads.max(1));
    if !valid || heads == 0 || d == 0 || 3 * heads * d != width || !d.is_multiple_of(4) {
        return Err(shape_err(
            OP,
            format!(
                "qkv {:?} must be [rows, 3 H D] with rows a multiple of the {tokens} tokens of \
                 a patch (1..={MAX_TOKENS}), H = {heads} and D a multiple of 4",
                qkv.shape()
            ),
        ));
    }
    let out = Tensor::empty(qkv.gpu(), &[rows, heads * d], DType::F32)?;
    let p = Params {
        rows: rows as u32,
        tokens: tokens as u32,
        heads: heads as u32,
        d4: (d / 4) as u32,
        scale,
    };
    let gpu = qkv.gpu();
    gpu.dispatch_items(&PATCH_ATTENTION, &[], &[&out, qkv], &p, rows * heads)?;
    Ok(out)
}
