//! The binary diffusion head `head.net`: an x-prediction network over the token bits,
//! conditioned on the transformer's hidden state and the flow time. 1x models use the MLP
//! with adaLN (`res_blocks.{i}.norm/w1/w2`); next-patch models a transformer over the p
//! tokens of a patch (`norm1`, `attn`, `norm2`, `w1`, `w2`) with 6 modulations per block.
//! Consecutive blocks share one adaLN linear, as the official models do.

use std::rc::Rc;

use super::graph::{Eager, Graph};
use super::weights::{from_store, from_vars, Head, HeadBlock, Linear, NormAffine, PatchAttention};
use super::{timestep_embedding, ModelConfig, ParamStore, ParamVars};
use crate::autograd::{Tape, Var};
use crate::ops::{self, AdaLn};
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
    let times = [t];
    let cond = StepConditions::new(c, &head, cond_emb, &times).at(0)?;
    head_body(&Eager, c, &head, x_t, &cond)
}

/// Evaluations whose adaLN modulations `StepConditions` computes with one matmul per linear:
/// at most this many rows (evaluations x rows per evaluation) at a time.
const CONDITION_BLOCK_ROWS: usize = 512;

/// The head's conditioning at every evaluation of one sampling run of rows with condition
/// embeddings `cond_emb` [N, width]: the time MLP and every adaLN linear run on blocks of
/// evaluations at once (the weights are read once per block, not once per evaluation), and
/// `at(i)` hands out evaluation i's rows.
pub(crate) struct StepConditions<'a> {
    c: &'a ModelConfig,
    head: &'a Head<Tensor>,
    cond_emb: &'a Tensor,
    times: &'a [f32],
    block: usize,
    cached: Option<(usize, Conditioning<Tensor>)>,
}

impl<'a> StepConditions<'a> {
    /// Conditions for evaluations at flow times `times` (in order of use).
    pub(crate) fn new(
        c: &'a ModelConfig,
        head: &'a Head<Tensor>,
        cond_emb: &'a Tensor,
        times: &'a [f32],
    ) -> Self {
        let rows = cond_emb.shape()[0].max(1);
        Self {
            c,
            head,
            cond_emb,
            times,
            block: (CONDITION_BLOCK_ROWS / rows).max(1),
            cached: None,
        }
    }

    /// The conditioning of evaluation `i` (rows [N, width] per modulation chunk).
    pub(crate) fn at(&mut self, i: usize) -> Result<Conditioning<Tensor>> {
        let block = i / self.block;
        if self.cached.as_ref().map(|(b, _)| *b) != Some(block) {
            self.cached = Some((block, self.compute(block)?));
        }
        let Some((_, all)) = &self.cached else {
            unreachable!("set above")
        };
        let n = self.cond_emb.shape()[0];
        let rows = |t: &Tensor| t.rows((i % self.block) * n, n);
        Ok(Conditioning {
            blocks: all
                .blocks
                .iter()
                .map(|chunks| chunks.iter().map(rows).collect())
                .collect::<Result<_>>()?,
            final_scale: rows(&all.final_scale)?,
            final_shift: rows(&all.final_shift)?,
        })
    }

    /// Modulations of every row of the evaluations of block `block`, evaluation-major.
    fn compute(&self, block: usize) -> Result<Conditioning<Tensor>> {
        let g = &Eager;
        let first = block * self.block;
        let times = &self.times[first..(first + self.block).min(self.times.len())];
        let (steps, gpu) = (times.len(), self.cond_emb.gpu());
        let (n, width) = (self.cond_emb.shape()[0], self.c.diff_dim);
        let freq = Tensor::from_f32(gpu, &[steps, 256], &timestep_embedding(times, 256))?;
        let t_emb = time_embedding(g, self.head, &freq)?;
        // y = cond_emb + t_emb of each evaluation: a modulation with zero scale adds the
        // evaluation's time embedding to its n rows.
        let rows = ops::tile(self.cond_emb, steps)?.reshape(&[steps, n, width])?;
        let zero = Tensor::zeros(gpu, &[steps, width])?;
        let y = ops::modulate(&rows, &t_emb, &zero)?.reshape(&[steps * n, width])?;
        conditioning(g, self.c, self.head, &y)
    }
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
    head_body(g, c, w, x_t, &conditioning(g, c, w, &y)?)
}

/// The adaLN modulations of one head pass: per adaLN linear its chunks (scale, shift, gate,
/// twice for the transformer head), and the final layer's scale and shift; each [N, width].
pub(crate) struct Conditioning<V> {
    blocks: Vec<Vec<V>>,
    final_scale: V,
    final_shift: V,
}

/// The modulations for conditioning rows `y` [N, width] (time + condition embedding, before
/// the SiLU that every adaLN linear starts with).
fn conditioning<G: Graph>(
    g: &G,
    c: &ModelConfig,
    w: &Head<G::Value>,
    y: &G::Value,
) -> Result<Conditioning<G::Value>> {
    let width = c.diff_dim;
    let chunks = if c.parallel_num > 1 { 6 } else { 3 };
    let y = g.silu(y)?;
    let blocks = w
        .ada_ln
        .iter()
        .map(|l| g.split(&linear(g, l, &y)?, 1, &vec![width; chunks]))
        .collect::<Result<_>>()?;
    let halves = g.split(&linear(g, &w.final_modulation, &y)?, 1, &[width, width])?;
    let [final_scale, final_shift]: [G::Value; 2] = halves
        .try_into()
        .map_err(|_| crate::Error::Invalid("final modulation: two halves expected".into()))?;
    Ok(Conditioning {
        blocks,
        final_scale,
        final_shift,
    })
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

    /// The adaLN operands of this modulation after the LayerNorm `norm`.
    fn before<'a>(&'a self, norm: &'a NormAffine<V>) -> AdaLn<'a, V> {
        AdaLn {
            affine: Some((&norm.weight, &norm.bias)),
            eps: EPS,
            shift: &self.shift,
            scale: &self.scale,
        }
    }
}

/// The head after its conditioning: `x_t` [N, token_dim] and the modulations of its rows.
/// On a recomputing tape each block is a `Graph::checkpoint` (recomputed in the backward).
pub(crate) fn head_body<G: Graph>(
    g: &G,
    c: &ModelConfig,
    w: &Head<G::Value>,
    x_t: &G::Value,
    cond: &Conditioning<G::Value>,
) -> Result<G::Value> {
    let mut stream = Stream::Ready(linear(g, &w.input_proj, x_t)?);
    let patch = Patch {
        size: c.parallel_num,
        width: c.diff_dim,
    };
    let shared_by = (c.diff_layers / c.diff_adanln_layers).max(1);
    for (i, block) in w.blocks.iter().enumerate() {
        let mods = &cond.blocks[i / shared_by];
        stream = if g.recomputes() {
            let (mods, block, input) = (mods.clone(), block.clone(), stream.settled(g)?);
            Stream::Ready(g.checkpoint(Rc::new(move |g| {
                head_block(g, patch, &block, &mods, Stream::Ready(input.clone()))?.settled(g)
            }))?)
        } else {
            head_block(g, patch, block, mods, stream)?
        };
    }
    let final_norm = AdaLn {
        affine: None,
        eps: EPS,
        shift: &cond.final_shift,
        scale: &cond.final_scale,
    };
    let (_, x) = stream.normalized(g, final_norm)?;
    linear(g, &w.final_linear, &x)
}

/// The head's residual stream between sub-layers: its rows, or rows whose last sub-layer's
/// gated output is still to be added (`x + gate * h`), so that the sum and the next adaLN
/// run as one kernel.
enum Stream<V> {
    Ready(V),
    Pending { x: V, gate: V, h: V },
}

impl<V: Clone> Stream<V> {
    /// (the stream's rows, those rows after adaLN `m`).
    fn normalized<G: Graph<Value = V>>(self, g: &G, m: AdaLn<V>) -> Result<(V, V)> {
        match self {
            Stream::Ready(x) => {
                let y = g.layer_norm_modulated(&x, m)?;
                Ok((x, y))
            }
            Stream::Pending { x, gate, h } => g.residual_layer_norm_modulated(&x, &gate, &h, m),
        }
    }

    /// The stream's rows.
    fn settled<G: Graph<Value = V>>(self, g: &G) -> Result<V> {
        match self {
            Stream::Ready(x) => Ok(x),
            Stream::Pending { x, gate, h } => g.gated_residual(&x, &gate, &h),
        }
    }
}

/// The head's patches: `size` consecutive rows (the tokens of one AR step) of `width` values.
#[derive(Clone, Copy)]
struct Patch {
    size: usize,
    width: usize,
}

/// One head block over the stream of rows [rows, width] with its adaLN chunks `mods` (scale,
/// shift and gate of each sub-layer, the patch attention's first): plus the gated attention
/// (next-patch models), then plus the gated MLP, left pending in the returned stream.
fn head_block<G: Graph>(
    g: &G,
    patch: Patch,
    block: &HeadBlock<G::Value>,
    mods: &[G::Value],
    stream: Stream<G::Value>,
) -> Result<Stream<G::Value>> {
    let mut stream = stream;
    if let Some(attention) = &block.attention {
        let m = Modulation::at(mods, 0);
        let (x, h) = stream.normalized(g, m.before(&attention.norm))?;
        let h = patch_attention(g, patch, attention, &h)?;
        stream = Stream::Pending { x, gate: m.gate, h };
    }
    let m = Modulation::at(mods, if patch.size > 1 { 3 } else { 0 });
    let (x, h) = stream.normalized(g, m.before(&block.mlp_norm))?;
    let h = g.swiglu(&linear(g, &block.w1, &h)?)?;
    let h = linear(g, &block.w2, &h)?;
    Ok(Stream::Pending { x, gate: m.gate, h })
}

/// Bidirectional attention within each patch of `h` [rows, width].
fn patch_attention<G: Graph>(
    g: &G,
    patch: Patch,
    w: &PatchAttention<G::Value>,
    h: &G::Value,
) -> Result<G::Value> {
    let qkv = linear(g, &w.wqkv, h)?;
    let scale = 1.0 / (HEAD_DIM as f32).sqrt();
    let o = g.patch_attention(&qkv, patch.size, patch.width / HEAD_DIM, scale)?;
    linear(g, &w.wo, &o)
}
