//! Incremental decoding of the AR transformer with a KV cache: each AR step feeds only the new
//! positions (class + query tokens first, then one sampled patch) and attends to the cache.

use super::graph::{CacheSlot, Eager, Graph};
use super::transformer::{connect, trunk_blocks, EPS};
use super::weights::{from_store, Connector, Trunk};
use super::{sequence_positions, ModelConfig, ParamStore};
use crate::ops::{self, RopeTable};
use crate::{DType, Error, Result, Tensor};

/// Keys and values of every layer, [B, H, capacity, head_dim] each, and how many are filled.
pub struct KvCache {
    keys: Vec<Tensor>,
    values: Vec<Tensor>,
    /// Positions already in the cache.
    pub len: usize,
    positions: Vec<f32>,
}

impl KvCache {
    /// An empty cache for `batch` sequences of the model's full length.
    pub fn new(c: &ModelConfig, gpu: &crate::Gpu, batch: usize) -> Result<Self> {
        let shape = [batch, c.n_head, c.sequence_len(), c.head_dim()];
        let mut keys = Vec::with_capacity(c.n_layer);
        let mut values = Vec::with_capacity(c.n_layer);
        for _ in 0..c.n_layer {
            keys.push(Tensor::empty(gpu, &shape, DType::F32)?);
            values.push(Tensor::empty(gpu, &shape, DType::F32)?);
        }
        Ok(Self {
            keys,
            values,
            len: 0,
            positions: sequence_positions(c)?,
        })
    }

    /// Layer `i`'s keys and values, new rows going at `len`.
    pub(crate) fn slot(&self, i: usize) -> CacheSlot<'_> {
        CacheSlot {
            keys: &self.keys[i],
            values: &self.values[i],
            start: self.len,
        }
    }
}

/// The input rows of the first AR step: 64 class-token rows from `cls_embedding` (and the
/// p - 1 query tokens of next-patch models) -> [B, cls + p - 1, dim]. Class ids are host values
/// (`num_classes` is the null class); they are checked here.
pub fn embed_prefix(c: &ModelConfig, params: &ParamStore, classes: &[u32]) -> Result<Tensor> {
    let b = classes.len();
    let chunks = params.get_chunks("cls_embedding.weight")?;
    if let Some(bad) = classes.iter().find(|&&k| k as usize > c.num_classes) {
        return Err(Error::Invalid(format!(
            "class index {bad} out of range: the model has {} classes (index {} is the null class)",
            c.num_classes, c.num_classes
        )));
    }
    let rows = class_rows(&chunks, classes)?.reshape(&[b, c.cls_token_num, c.dim])?;
    if c.parallel_num == 1 {
        return Ok(rows);
    }
    let queries = ops::tile(params.get("query_token")?, b)?;
    ops::concat(&[&rows, &queries], 1)
}

/// Table rows of `classes` [B, width] from a table held whole or in row chunks (the B-size
/// table is 197 MB): each chunk gathers the rows it holds, zeros elsewhere, and the parts add.
pub(crate) fn class_rows(chunks: &[&Tensor], classes: &[u32]) -> Result<Tensor> {
    if let [table] = chunks {
        return ops::embedding_checked(table, classes);
    }
    let gpu = chunks[0].gpu();
    let idx = Tensor::from_u32(gpu, &[classes.len()], classes)?;
    let mut first = 0;
    let mut sum: Option<Tensor> = None;
    for part in chunks {
        let rows = part.shape()[0];
        if classes
            .iter()
            .any(|&k| (first..first + rows).contains(&(k as usize)))
        {
            let got = ops::embedding_rows(part, &idx, first)?;
            sum = Some(match sum {
                None => got,
                Some(acc) => ops::add(&acc, &got)?,
            });
        }
        first += rows;
    }
    sum.ok_or_else(|| Error::Invalid("class embedding: no chunk holds the classes".into()))
}

/// `proj_in` of token bits [B, n, token_dim] -> [B, n, dim].
pub fn embed_tokens(c: &ModelConfig, params: &ParamStore, tokens: &Tensor) -> Result<Tensor> {
    let connector = Connector::fetch(c, &mut from_store(params))?;
    connect(&Eager, &connector, tokens)
}

/// Runs `x` [B, n, dim] (the next n input positions) through the transformer against the cache,
/// appends their keys and values, and returns `norm` of the hidden states [B, n, dim]: the
/// blocks of `transformer_forward`, run eagerly with the cache.
pub fn transformer_step(
    c: &ModelConfig,
    params: &ParamStore,
    cache: &mut KvCache,
    x: &Tensor,
) -> Result<Tensor> {
    let s = x.shape().to_vec();
    let start = cache.len;
    if s.len() != 3 || s[2] != c.dim || start + s[1] > c.sequence_len() {
        return Err(Error::Shape {
            op: "transformer_step",
            detail: format!(
                "input {s:?} at position {start} does not fit a sequence of {} x {}",
                c.sequence_len(),
                c.dim
            ),
        });
    }
    let n = s[1];
    let trunk = Trunk::fetch(c, &mut from_store(params))?;
    let positions = Tensor::from_f32(
        x.gpu(),
        &[n, 2],
        &cache.positions[2 * start..2 * (start + n)],
    )?;
    // One table of RoPE angles for these positions serves every layer's q and k.
    let rope = RopeTable::new(&positions, 1, c.head_dim())?;
    let h = trunk_blocks(&Eager, c, &trunk, x, &rope, Some(cache))?;
    Eager.rms_norm(&h, &trunk.norm, EPS)
}
