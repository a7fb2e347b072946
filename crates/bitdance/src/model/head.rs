//! The binary diffusion head `head.net`: an x-prediction network over the token bits,
//! conditioned on the transformer's hidden state and the flow time. 1x models use the MLP
//! with adaLN (`res_blocks.{i}.norm/w1/w2`); next-patch models a transformer over the p
//! tokens of a patch (`norm1`, `attn`, `norm2`, `w1`, `w2`) with 6 modulations per block.
//! Consecutive blocks share one adaLN linear, as the official models do.

use super::graph::{Eager, Graph};
use super::weights::{from_store, from_vars, Head, Linear, PatchAttention};
use super::{timestep_embedding, ModelConfig, ParamStore, ParamVars};
use crate::autograd::{Tape, Var};
use crate::ops::AttentionMask;
use crate::{Result, Tensor};

/// LayerNorm epsilon of the head.
const EPS: f32 = 1e-6;
/// Head dimension of the next-patch head's attention.
const HEAD_DIM: usize = 64;

/// Records the head on `tape`: `x_t` [N, token_dim] noisy tokens, `t_freq` [N, 256]
/// (`timestep_embedding` of each row's t), `cond` [N, dim] conditions; N = rows x parallel_num,
/// the p tokens of a patch consecutive. Returns the x-prediction [N, token_dim].
pub fn head_forward(
    tape: &Tape,
    c: &ModelConfig,
    params: &ParamVars,
    x_t: Var,
    t_freq: Var,
    cond: Var,
) -> Result<Var> {
    let head = Head::fetch(c, &mut from_vars(params))?;
    head_pass(tape, c, &head, &x_t, &t_freq, &cond)
}

/// The head on plain tensors (inference): see `head_forward`.
pub fn head_predict(
    c: &ModelConfig,
    params: &ParamStore,
    x_t: &Tensor,
    t_freq: &Tensor,
    cond: &Tensor,
) -> Result<Tensor> {
    let head = Head::fetch(c, &mut from_store(params))?;
    head_pass(&Eager, c, &head, x_t, t_freq, cond)
}

/// `cond_embed` of the head's conditions `cond` [N, dim] -> [N, diff_dim]: computed once per
/// AR step and shared by all the head's sampling steps.
pub fn head_condition(c: &ModelConfig, params: &ParamStore, cond: &Tensor) -> Result<Tensor> {
    let head = Head::fetch(c, &mut from_store(params))?;
    linear(&Eager, &head.cond_embed, cond)
}

/// The head at one flow time `t` shared by every row (sampling): `x_t` [N, token_dim],
/// `cond_emb` [N, diff_dim] from `head_condition`; the time MLP runs on one row.
pub fn head_predict_at(
    c: &ModelConfig,
    params: &ParamStore,
    x_t: &Tensor,
    t: f32,
    cond_emb: &Tensor,
) -> Result<Tensor> {
    let head = Head::fetch(c, &mut from_store(params))?;
    predict_at(c, &head, x_t, t, cond_emb)
}

/// `head_predict_at` with the head's weights already fetched (the sampler's inner loop).
pub(crate) fn predict_at(
    c: &ModelConfig,
    head: &Head<Tensor>,
    x_t: &Tensor,
    t: f32,
    cond_emb: &Tensor,
) -> Result<Tensor> {
    let g = &Eager;
    let freq = Tensor::from_f32(x_t.gpu(), &[1, 256], &timestep_embedding(&[t], 256))?;
    let t_emb = g.reshape(&time_embedding(g, head, &freq)?, &[c.diff_dim])?;
    let y = g.add_bias(cond_emb, &t_emb)?;
    head_body(g, c, head, x_t, &y)
}

/// The whole head: time and condition embeddings, then the body.
fn head_pass<G: Graph>(
    g: &G,
    c: &ModelConfig,
    w: &Head<G::Value>,
    x_t: &G::Value,
    t_freq: &G::Value,
    cond: &G::Value,
) -> Result<G::Value> {
    let t = time_embedding(g, w, t_freq)?;
    let cond = linear(g, &w.cond_embed, cond)?;
    let y = g.add(&t, &cond)?;
    head_body(g, c, w, x_t, &y)
}

/// A linear layer with its optional bias.
fn linear<G: Graph>(g: &G, l: &Linear<G::Value>, x: &G::Value) -> Result<G::Value> {
    g.linear(x, &l.weight, l.bias.as_ref())
}

/// `time_embed.mlp` of `t_freq` [N, 256] -> [N, diff_dim].
fn time_embedding<G: Graph>(g: &G, w: &Head<G::Value>, t_freq: &G::Value) -> Result<G::Value> {
    let t = g.silu(&linear(g, &w.time_embed[0], t_freq)?)?;
    linear(g, &w.time_embed[1], &t)
}

/// One adaLN modulation: `x * (1 + scale) + shift` before a sub-layer, `gate` on its output.
struct Modulation<V> {
    scale: V,
    shift: V,
    gate: V,
}

impl<V: Clone> Modulation<V> {
    /// The modulation at chunk `first` of an adaLN output cut into chunks (the official
    /// order: scale, shift, gate; the transformer head has two such triples).
    fn at(chunks: &[V], first: usize) -> Self {
        Self {
            scale: chunks[first].clone(),
            shift: chunks[first + 1].clone(),
            gate: chunks[first + 2].clone(),
        }
    }
}

/// The head after its conditioning: `x_t` [N, token_dim] and `y` = time + condition
/// embedding [N, diff_dim] (before the SiLU that every adaLN linear starts with).
fn head_body<G: Graph>(
    g: &G,
    c: &ModelConfig,
    w: &Head<G::Value>,
    x_t: &G::Value,
    y: &G::Value,
) -> Result<G::Value> {
    let width = c.diff_dim;
    let rows = g.shape(x_t)[0];
    let mut x = linear(g, &w.input_proj, x_t)?;
    let y = g.silu(y)?;
    let parallel = c.parallel_num > 1;
    let chunks = if parallel { 6 } else { 3 };
    let shared_by = (c.diff_layers / c.diff_adanln_layers).max(1);
    let mut mods: Vec<G::Value> = Vec::new();
    for (i, block) in w.blocks.iter().enumerate() {
        if i % shared_by == 0 {
            let ada = linear(g, &w.ada_ln[i / shared_by], &y)?;
            mods = g.split(&ada, 1, &vec![width; chunks])?;
        }
        if let Some(attention) = &block.attention {
            let m = Modulation::at(&mods, 0);
            let n = &attention.norm;
            let h = g.layer_norm(&x, Some((&n.weight, &n.bias)), EPS)?;
            let h = g.modulate(&h, &m.shift, &m.scale)?;
            let h = patch_attention(g, c, attention, &h, rows)?;
            x = g.gated_residual(&x, &m.gate, &h)?;
        }
        let m = Modulation::at(&mods, if parallel { 3 } else { 0 });
        let n = &block.mlp_norm;
        let h = g.layer_norm(&x, Some((&n.weight, &n.bias)), EPS)?;
        let h = g.modulate(&h, &m.shift, &m.scale)?;
        let h = g.swiglu(&linear(g, &block.w1, &h)?)?;
        let h = linear(g, &block.w2, &h)?;
        x = g.gated_residual(&x, &m.gate, &h)?;
    }
    let fin = linear(g, &w.final_modulation, &y)?;
    let halves = g.split(&fin, 1, &[width, width])?;
    let (scale, shift) = (&halves[0], &halves[1]);
    let x = g.layer_norm(&x, None, EPS)?;
    let x = g.modulate(&x, shift, scale)?;
    linear(g, &w.final_linear, &x)
}

/// Bidirectional attention within each patch of p consecutive rows of `h` [rows, width].
fn patch_attention<G: Graph>(
    g: &G,
    c: &ModelConfig,
    w: &PatchAttention<G::Value>,
    h: &G::Value,
    rows: usize,
) -> Result<G::Value> {
    let (p, width) = (c.parallel_num, c.diff_dim);
    let qkv = g.reshape(&linear(g, &w.wqkv, h)?, &[rows / p, p, 3 * width])?;
    let [q, k, v] = g.split_qkv(&qkv, width / HEAD_DIM)?;
    let scale = 1.0 / (HEAD_DIM as f32).sqrt();
    let o = g.attention(&q, &k, &v, AttentionMask::Full, scale, None)?;
    let o = g.reshape(&g.merge_heads(&o)?, &[rows, width])?;
    linear(g, &w.wo, &o)
}
