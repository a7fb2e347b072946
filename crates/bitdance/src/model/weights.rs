//! The AR model's weights as typed structs, each field fetched once by its official name and
//! shape. One description serves every use: with `V = Tensor` it loads inference weights from
//! a store, with `V = Var` it puts them on a training tape, and with `V = ()` it lists the
//! parameter specs (`ar_parameters`), so names and shapes are written in one place.

use super::{ModelConfig, ParamSpec, ParamStore, ParamVars};
use crate::autograd::Var;
use crate::{Result, Tensor};

/// Supplies parameters by official PyTorch name and shape: inference tensors from a store,
/// values on a training tape, or (for the parameter list) the specs themselves.
pub trait WeightSource<V> {
    /// The parameter `name` of `shape`.
    fn get(&mut self, name: String, shape: &[usize]) -> Result<V>;

    /// The convolution weight `name` of `shape` as chunks of its first dimension, in order: one
    /// chunk unless the source holds it split (a weight larger than one storage binding). Read
    /// only by the convolution's weight packing, so inference may hold it in 16 bits.
    fn chunks(&mut self, name: String, shape: &[usize]) -> Result<Vec<V>> {
        Ok(vec![self.get(name, shape)?])
    }

    /// The weight `name` [rows, width] of a linear layer or a table (read only by matmul or row
    /// gathers, which widen 16-bit values, so inference may hold it in 16 bits).
    fn layer_weight(&mut self, name: String, shape: &[usize]) -> Result<V> {
        self.get(name, shape)
    }
}

/// A source of parameters of type `V`, as the `fetch` functions take it.
pub type Fetch<'a, V> = dyn WeightSource<V> + 'a;

/// Inference weights from a store, by name (shapes are the store's: `load_generator` checks
/// them against the config when it loads a file); large ones in the store's row chunks.
struct StoreSource<'a>(&'a ParamStore);

impl WeightSource<Tensor> for StoreSource<'_> {
    fn get(&mut self, name: String, _: &[usize]) -> Result<Tensor> {
        self.0.get(&name).cloned()
    }

    fn chunks(&mut self, name: String, _: &[usize]) -> Result<Vec<Tensor>> {
        Ok(self.0.get_chunks(&name)?.into_iter().cloned().collect())
    }
}

/// Tape values (trainable or constant as the vars say).
struct VarsSource<'a>(&'a ParamVars<'a>);

impl WeightSource<Var> for VarsSource<'_> {
    fn get(&mut self, name: String, _: &[usize]) -> Result<Var> {
        self.0.get(&name)
    }
}

/// The specs of every parameter asked for (for the parameter lists).
struct SpecsSource<'a>(&'a mut Vec<ParamSpec>);

impl WeightSource<()> for SpecsSource<'_> {
    fn get(&mut self, name: String, shape: &[usize]) -> Result<()> {
        self.0.push(ParamSpec {
            name,
            shape: shape.to_vec(),
        });
        Ok(())
    }
}

/// The names of the linear and convolution weights asked for (`WeightSource::layer_weight`
/// and `chunks`): the tensors inference may hold in 16 bits.
pub(crate) struct LayerWeightNames<'a>(pub(crate) &'a mut Vec<String>);

impl WeightSource<()> for LayerWeightNames<'_> {
    fn get(&mut self, _: String, _: &[usize]) -> Result<()> {
        Ok(())
    }

    fn chunks(&mut self, name: String, _: &[usize]) -> Result<Vec<()>> {
        self.0.push(name);
        Ok(vec![()])
    }

    fn layer_weight(&mut self, name: String, _: &[usize]) -> Result<()> {
        self.0.push(name);
        Ok(())
    }
}

/// Weights from a store of inference tensors.
pub fn from_store(store: &ParamStore) -> impl WeightSource<Tensor> + '_ {
    StoreSource(store)
}

/// Weights as tape values.
pub fn from_vars<'a>(vars: &'a ParamVars<'a>) -> impl WeightSource<Var> + 'a {
    VarsSource(vars)
}

/// A source that records every spec asked for in `specs` (it never fails).
pub fn into_specs(specs: &mut Vec<ParamSpec>) -> impl WeightSource<()> + '_ {
    SpecsSource(specs)
}

/// A linear layer `{prefix}.weight` [out, in] (PyTorch layout) and optional `{prefix}.bias`.
#[derive(Clone)]
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
        let weight = f.layer_weight(format!("{prefix}.weight"), &[out, inp])?;
        let bias = if bias {
            Some(f.get(format!("{prefix}.bias"), &[out])?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }
}

/// An affine norm's `{prefix}.weight` and `{prefix}.bias`, [width] each.
#[derive(Clone)]
pub struct NormAffine<V> {
    /// Scale [width].
    pub weight: V,
    /// Shift [width].
    pub bias: V,
}

impl<V> NormAffine<V> {
    pub(crate) fn fetch(f: &mut Fetch<V>, prefix: &str, width: usize) -> Result<Self> {
        Ok(Self {
            weight: f.get(format!("{prefix}.weight"), &[width])?,
            bias: f.get(format!("{prefix}.bias"), &[width])?,
        })
    }
}

/// One transformer block `layers.{i}`: pre-norm attention and SwiGLU feed-forward, no biases.
#[derive(Clone)]
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
        let emb_norm = f.get("emb_norm.weight".into(), &[d])?;
        let layers = (0..c.n_layer)
            .map(|i| {
                let l = format!("layers.{i}");
                let w = |f: &mut Fetch<V>, name: &str, shape: &[usize]| {
                    f.get(format!("{l}.{name}"), shape)
                };
                let m = |f: &mut Fetch<V>, name: &str, shape: &[usize]| {
                    f.layer_weight(format!("{l}.{name}"), shape)
                };
                Ok(Block {
                    wqkv: m(f, "attention.wqkv.weight", &[3 * d, d])?,
                    wo: m(f, "attention.wo.weight", &[d, d])?,
                    w1: m(f, "feed_forward.w1.weight", &[2 * c.ffn_hidden(), d])?,
                    w2: m(f, "feed_forward.w2.weight", &[d, c.ffn_hidden()])?,
                    attention_norm: w(f, "attention_norm.weight", &[d])?,
                    ffn_norm: w(f, "ffn_norm.weight", &[d])?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            emb_norm,
            layers,
            norm: f.get("norm.weight".into(), &[d])?,
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
#[derive(Clone)]
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
#[derive(Clone)]
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
    visit_ar(c, &mut into_specs(&mut specs));
    specs
}

/// The names of the AR model's and head's linear-layer weights (the ones inference may hold
/// in 16 bits), in `ar_parameters` order.
pub fn ar_layer_weights(c: &ModelConfig) -> Vec<String> {
    let mut names = Vec::new();
    visit_ar(c, &mut LayerWeightNames(&mut names));
    names
}

/// Asks `f` for every AR and head parameter, in order (sources of `()` never fail).
fn visit_ar(c: &ModelConfig, f: &mut Fetch<()>) {
    let d = c.dim;
    let _ = f.layer_weight(
        "cls_embedding.weight".into(),
        &[c.num_classes + 1, d * c.cls_token_num],
    );
    if c.parallel_num > 1 {
        let _ = f.get("query_token".into(), &[1, c.parallel_num - 1, d]);
    }
    let _ = Connector::fetch(c, f);
    let _ = Trunk::fetch(c, f);
    let _ = f.get("pos_for_diff.weight".into(), &[c.image_tokens(), d]);
    let _ = Head::fetch(c, f);
}
