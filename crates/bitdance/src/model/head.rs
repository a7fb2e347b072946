//! The binary diffusion head `head.net`: an x-prediction network over the token bits,
//! conditioned on the transformer's hidden state and the flow time. 1x models use the MLP
//! with adaLN (`res_blocks.{i}.norm/w1/w2`); next-patch models a transformer over the p
//! tokens of a patch (`norm1`, `attn`, `norm2`, `w1`, `w2`) with 6 modulations per block.
//! Consecutive blocks share one adaLN linear, as the official models do.

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
    let t = time_embedding(tape, params, t_freq)?;
    let cond = linear(tape, params, cond, "cond_embed")?;
    let y = tape.add(t, cond)?;
    head_body(tape, c, params, x_t, y)
}

/// `time_embed.mlp` of `t_freq` [N, 256] -> [N, diff_dim].
fn time_embedding(tape: &Tape, params: &ParamVars, t_freq: Var) -> Result<Var> {
    let t = linear(tape, params, t_freq, "time_embed.mlp.0")?;
    let t = tape.silu(t)?;
    linear(tape, params, t, "time_embed.mlp.2")
}

/// The head's linear `head.net.{name}` (with bias).
fn linear(tape: &Tape, params: &ParamVars, x: Var, name: &str) -> Result<Var> {
    tape.linear(
        x,
        params.get(&format!("head.net.{name}.weight"))?,
        Some(params.get(&format!("head.net.{name}.bias"))?),
    )
}

/// The head after its conditioning: `x_t` [N, token_dim] and `y` = time + condition
/// embedding [N, diff_dim] (before the SiLU that every adaLN linear starts with).
fn head_body(tape: &Tape, c: &ModelConfig, params: &ParamVars, x_t: Var, y: Var) -> Result<Var> {
    let w = |name: &str| params.get(&format!("head.net.{name}"));
    let linear = |x: Var, name: &str| linear(tape, params, x, name);
    let width = c.diff_dim;
    let rows = tape.shape(x_t)[0];
    let mut x = linear(x_t, "input_proj")?;
    let y = tape.silu(y)?;

    let parallel = c.parallel_num > 1;
    let per_block = if parallel { 6 } else { 3 };
    let switch = (c.diff_layers / c.diff_adanln_layers).max(1);
    let mut mods: Vec<Var> = Vec::new();
    for i in 0..c.diff_layers {
        if i % switch == 0 {
            let ada = linear(y, &format!("ada_ln_blocks.{}", i / switch))?;
            mods = tape.split(ada, 1, &vec![width; per_block])?;
        }
        let b = format!("res_blocks.{i}");
        let norm = |x: Var, name: &str| -> Result<Var> {
            tape.layer_norm(
                x,
                Some((
                    w(&format!("{b}.{name}.weight"))?,
                    w(&format!("{b}.{name}.bias"))?,
                )),
                EPS,
            )
        };
        let ffn = |h: Var| -> Result<Var> {
            let h = linear(h, &format!("{b}.w1"))?;
            let h = tape.swiglu(h)?;
            linear(h, &format!("{b}.w2"))
        };
        // Chunk order of the adaLN output: scale, shift, gate (x2 for the transformer head).
        if parallel {
            let h = norm(x, "norm1")?;
            let h = tape.modulate(h, mods[1], mods[0])?;
            let h = attention(tape, c, h, rows, &|x, name| {
                linear(x, &format!("{b}.attn.{name}"))
            })?;
            x = tape.gated_residual(x, mods[2], h)?;
            let h = norm(x, "norm2")?;
            let h = tape.modulate(h, mods[4], mods[3])?;
            let h = ffn(h)?;
            x = tape.gated_residual(x, mods[5], h)?;
        } else {
            let h = norm(x, "norm")?;
            let h = tape.modulate(h, mods[1], mods[0])?;
            let h = ffn(h)?;
            x = tape.gated_residual(x, mods[2], h)?;
        }
    }
    let fin = linear(y, "final_layer.ada_ln_modulation")?;
    let halves = tape.split(fin, 1, &[width, width])?;
    let (scale, shift) = (halves[0], halves[1]);
    let x = tape.layer_norm(x, None, EPS)?;
    let x = tape.modulate(x, shift, scale)?;
    linear(x, "final_layer.linear")
}

/// Bidirectional attention within each patch of p consecutive rows (wqkv and wo with bias).
fn attention(
    tape: &Tape,
    c: &ModelConfig,
    h: Var,
    rows: usize,
    linear: &dyn Fn(Var, &str) -> Result<Var>,
) -> Result<Var> {
    let p = c.parallel_num;
    let width = c.diff_dim;
    let qkv = linear(h, "wqkv")?;
    let qkv = tape.reshape(qkv, &[rows / p, p, 3 * width])?;
    let (q, k, v) = tape.split_qkv(qkv, width / HEAD_DIM)?;
    let o = tape.attention(q, k, v, AttentionMask::Full, 1.0 / (HEAD_DIM as f32).sqrt())?;
    let o = tape.merge_heads(o)?;
    let o = tape.reshape(o, &[rows, width])?;
    linear(o, "wo")
}

/// The head on plain tensors (inference): see `head_forward`.
pub fn head_predict(
    c: &ModelConfig,
    params: &ParamStore,
    x_t: &Tensor,
    t_freq: &Tensor,
    cond: &Tensor,
) -> Result<Tensor> {
    let tape = Tape::new();
    let (x, t, z) = (
        tape.constant(x_t.clone()),
        tape.constant(t_freq.clone()),
        tape.constant(cond.clone()),
    );
    let out = head_forward(&tape, c, &ParamVars::new(&tape, params, false), x, t, z)?;
    Ok(tape.value(out))
}

/// `cond_embed` of the head's conditions `cond` [N, dim] -> [N, diff_dim]: computed once per
/// AR step and shared by all the head's sampling steps.
pub fn head_condition(params: &ParamStore, cond: &Tensor) -> Result<Tensor> {
    let tape = Tape::new();
    let vars = ParamVars::new(&tape, params, false);
    let out = linear(&tape, &vars, tape.constant(cond.clone()), "cond_embed")?;
    Ok(tape.value(out))
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
    let tape = Tape::new();
    let vars = ParamVars::new(&tape, params, false);
    let freq = Tensor::from_f32(x_t.gpu(), &[1, 256], &timestep_embedding(&[t], 256))?;
    let t_emb = time_embedding(&tape, &vars, tape.constant(freq))?;
    let t_emb = tape.reshape(t_emb, &[c.diff_dim])?;
    let y = tape.add_bias(tape.constant(cond_emb.clone()), t_emb)?;
    let out = head_body(&tape, c, &vars, tape.constant(x_t.clone()), y)?;
    Ok(tape.value(out))
}
