//! The AR model's weights as typed structs, each field fetched once by its official name and
//! shape. One description serves every use: with `V = Tensor` it loads inference weights from
//! a store, with `V = Var` it puts them on a training tape, and with `V = ()` it lists the
//! parameter specs (`ar_parameters`), so names and shapes are written in one place.

use super::{ModelConfig, ParamSpec, ParamStore, ParamVars};
use crate::autograd::Var;
use crate::{Result, Tensor};

/// Supplies the value of the parameter `name` of `shape` (official PyTorch names and shapes).
pub type Fetch<'a, V> = dyn FnMut(String, &[usize]) -> Result<V> + 'a;

/// A fetch from a store of inference weights by name (shapes are the store's: `load_generator`
/// checks them against the config when it loads a file).
pub fn from_store(store: &ParamStore) -> impl FnMut(String, &[usize]) -> Result<Tensor> + '_ {
    move |name, _| store.get(&name).cloned()
}

/// A fetch of tape values (trainable or constant as `vars` says).
pub fn from_vars<'a>(vars: &'a ParamVars<'a>) -> impl FnMut(String, &[usize]) -> Result<Var> + 'a {
    move |name, _| vars.get(&name)
}

/// A fetch that records every spec in `specs` (for `ar_parameters`).
pub fn into_specs(specs: &mut Vec<ParamSpec>) -> impl FnMut(String, &[usize]) -> Result<()> + '_ {
    move |name, shape| {
        specs.push(ParamSpec {
            name,
            shape: shape.to_vec(),
        });
        Ok(())
    }
}

/// A linear layer `{prefix}.weight` [out, in] (PyTorch layout) and optional `{prefix}.bias`.
pub struct Linear<V> {
    /// [out, in].
    pub weight: V,
    /// [out].
    pub bias: Option<V>,
}

impl<V> Linear<V> {
    /// Fetches `{prefix}.weight` [out, inp] and, with `bias`, `{prefix}.bias` [out].
    pub fn fetch(
        f: &mut Fetch<V>,
        prefix: &str,
        out: usize,
        inp: usize,
        bias: bool,
    ) -> Result<Self> {
        let weight = f(format!("{prefix}.weight"), &[out, inp])?;
        let bias = if bias {
            Some(f(format!("{prefix}.bias"), &[out])?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }
}

/// An affine norm's `{prefix}.weight` and `{prefix}.bias`, [width] each.
pub struct NormAffine<V> {
    /// Scale [width].
    pub weight: V,
    /// Shift [width].
    pub bias: V,
}

impl<V> NormAffine<V> {
    fn fetch(f: &mut Fetch<V>, prefix: &str, width: usize) -> Result<Self> {
        Ok(Self {
            weight: f(format!("{prefix}.weight"), &[width])?,
            bias: f(format!("{prefix}.bias"), &[width])?,
        })
    }
}

/// One transformer block `layers.{i}`: pre-norm attention and SwiGLU feed-forward, no biases.
pub struct Block<V> {
    /// `attention.wqkv` [3·dim, dim].
    pub wqkv: V,
    /// `attention.wo` [dim, dim].
    pub wo: V,
    /// `feed_forward.w1` [2·ffn_hidden, dim] (gate and value halves).
    pub w1: V,
    /// `feed_forward.w2` [dim, ffn_hidden].
    pub w2: V,
    /// `attention_norm.weight` [dim] (RMSNorm).
    pub attention_norm: V,
    /// `ffn_norm.weight` [dim] (RMSNorm).
    pub ffn_norm: V,
}

/// The transformer between the input embedding and the head conditions: `emb_norm`, the
/// blocks, the final `norm`.
pub struct Trunk<V> {
    /// `emb_norm.weight` [dim].
    pub emb_norm: V,
    /// `layers.{i}`.
    pub layers: Vec<Block<V>>,
    /// `norm.weight` [dim].
    pub norm: V,
}

impl<V> Trunk<V> {
    /// Fetches the trunk of model `c`.
    pub fn fetch(c: &ModelConfig, f: &mut Fetch<V>) -> Result<Self> {
        let d = c.dim;
        let emb_norm = f("emb_norm.weight".into(), &[d])?;
        let layers = (0..c.n_layer)
            .map(|i| {
                let l = format!("layers.{i}");
                let w =
                    |f: &mut Fetch<V>, name: &str, shape: &[usize]| f(format!("{l}.{name}"), shape);
                Ok(Block {
                    wqkv: w(f, "attention.wqkv.weight", &[3 * d, d])?,
                    wo: w(f, "attention.wo.weight", &[d, d])?,
                    w1: w(f, "feed_forward.w1.weight", &[2 * c.ffn_hidden(), d])?,
                    w2: w(f, "feed_forward.w2.weight", &[d, c.ffn_hidden()])?,
                    attention_norm: w(f, "attention_norm.weight", &[d])?,
                    ffn_norm: w(f, "ffn_norm.weight", &[d])?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            emb_norm,
            layers,
            norm: f("norm.weight".into(), &[d])?,
        })
    }
}

/// `proj_in`: the SwiGLU MLP from token bits to the model width.
pub struct Connector<V> {
    /// `proj_in.w1` [2·hidden, token_dim] with bias.
    pub w1: Linear<V>,
    /// `proj_in.w2` [dim, hidden] with bias.
    pub w2: Linear<V>,
}

impl<V> Connector<V> {
    /// Fetches `proj_in` of model `c`.
    pub fn fetch(c: &ModelConfig, f: &mut Fetch<V>) -> Result<Self> {
        let hidden = c.connector_hidden();
        Ok(Self {
            w1: Linear::fetch(f, "proj_in.w1", 2 * hidden, c.token_dim(), true)?,
            w2: Linear::fetch(f, "proj_in.w2", c.dim, hidden, true)?,
        })
    }
}

/// The next-patch head's attention over the p tokens of a patch (`attn.wqkv`, `attn.wo`).
pub struct PatchAttention<V> {
    /// Pre-norm `norm1`.
    pub norm: NormAffine<V>,
    /// `attn.wqkv` [3·width, width] with bias.
    pub wqkv: Linear<V>,
    /// `attn.wo` [width, width] with bias.
    pub wo: Linear<V>,
}

/// One head block `head.net.res_blocks.{i}`: an optional patch attention (next-patch models),
/// then a SwiGLU MLP behind its own norm.
pub struct HeadBlock<V> {
    /// Next-patch models only.
    pub attention: Option<PatchAttention<V>>,
    /// `norm2` (next-patch) or `norm` (1x), before the MLP.
    pub mlp_norm: NormAffine<V>,
    /// `w1` [2·hidden, width] with bias.
    pub w1: Linear<V>,
    /// `w2` [width, hidden] with bias.
    pub w2: Linear<V>,
}

/// The binary diffusion head `head.net.*`.
pub struct Head<V> {
    /// `time_embed.mlp.0` [width, 256] and `.2` [width, width], SiLU between.
    pub time_embed: [Linear<V>; 2],
    /// `cond_embed` [width, dim]: the transformer's condition to the head width.
    pub cond_embed: Linear<V>,
    /// `input_proj` [width, token_dim].
    pub input_proj: Linear<V>,
    /// `res_blocks.{i}`.
    pub blocks: Vec<HeadBlock<V>>,
    /// `ada_ln_blocks.{j}` [modulations·width, width], each shared by consecutive blocks.
    pub ada_ln: Vec<Linear<V>>,
    /// `final_layer.ada_ln_modulation` [2·width, width] (scale, shift).
    pub final_modulation: Linear<V>,
    /// `final_layer.linear` [token_dim, width].
    pub final_linear: Linear<V>,
}

impl<V> Head<V> {
    /// Fetches the head of model `c`.
    pub fn fetch(c: &ModelConfig, f: &mut Fetch<V>) -> Result<Self> {
        let w = c.diff_dim;
        let hidden = w * 3 / 2;
        let n = "head.net";
        let time_embed = [
            Linear::fetch(f, &format!("{n}.time_embed.mlp.0"), w, 256, true)?,
            Linear::fetch(f, &format!("{n}.time_embed.mlp.2"), w, w, true)?,
        ];
        let cond_embed = Linear::fetch(f, &format!("{n}.cond_embed"), w, c.dim, true)?;
        let input_proj = Linear::fetch(f, &format!("{n}.input_proj"), w, c.token_dim(), true)?;
        let parallel = c.parallel_num > 1;
        let blocks = (0..c.diff_layers)
            .map(|i| {
                let b = format!("{n}.res_blocks.{i}");
                let (attention, mlp_norm) = if parallel {
                    let norm1 = NormAffine::fetch(f, &format!("{b}.norm1"), w)?;
                    let norm2 = NormAffine::fetch(f, &format!("{b}.norm2"), w)?;
                    let attention = PatchAttention {
                        norm: norm1,
                        wqkv: Linear::fetch(f, &format!("{b}.attn.wqkv"), 3 * w, w, true)?,
                        wo: Linear::fetch(f, &format!("{b}.attn.wo"), w, w, true)?,
                    };
                    (Some(attention), norm2)
                } else {
                    (None, NormAffine::fetch(f, &format!("{b}.norm"), w)?)
                };
                Ok(HeadBlock {
                    attention,
                    mlp_norm,
                    w1: Linear::fetch(f, &format!("{b}.w1"), 2 * hidden, w, true)?,
                    w2: Linear::fetch(f, &format!("{b}.w2"), w, hidden, true)?,
                })
            })
            .collect::<Result<_>>()?;
        let modulations = if parallel { 6 } else { 3 };
        let ada_ln = (0..c.diff_adanln_layers)
            .map(|j| {
                Linear::fetch(
                    f,
                    &format!("{n}.ada_ln_blocks.{j}"),
                    modulations * w,
                    w,
                    true,
                )
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            time_embed,
            cond_embed,
            input_proj,
            blocks,
            ada_ln,
            final_modulation: Linear::fetch(
                f,
                &format!("{n}.final_layer.ada_ln_modulation"),
                2 * w,
                w,
                true,
            )?,
            final_linear: Linear::fetch(
                f,
                &format!("{n}.final_layer.linear"),
                c.token_dim(),
                w,
                true,
            )?,
        })
    }
}

/// Every parameter of the AR transformer and the diffusion head (not the autoencoder `vae.`),
/// in a stable order: the class table and query tokens, `proj_in`, the trunk, `pos_for_diff`,
/// the head.
pub fn ar_parameters(c: &ModelConfig) -> Vec<ParamSpec> {
    let mut specs = Vec::new();
    {
        let mut f = into_specs(&mut specs);
        let d = c.dim;
        // `into_specs` never fails.
        let _ = f(
            "cls_embedding.weight".into(),
            &[c.num_classes + 1, d * c.cls_token_num],
        );
        if c.parallel_num > 1 {
            let _ = f("query_token".into(), &[1, c.parallel_num - 1, d]);
        }
        let _ = Connector::fetch(c, &mut f);
        let _ = Trunk::fetch(c, &mut f);
        let _ = f("pos_for_diff.weight".into(), &[c.image_tokens(), d]);
        let _ = Head::fetch(c, &mut f);
    }
    specs
}
