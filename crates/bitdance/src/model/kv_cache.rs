//! Incremental decoding of the AR transformer with a KV cache: each AR step feeds only the new
//! positions (class + query tokens first, then one sampled patch) and attends to the cache.

use super::{sequence_mask, sequence_positions, ModelConfig, ParamStore};
use crate::ops::{self, RopeTable};
use crate::{DType, Error, Result, Tensor};

const EPS: f32 = 1e-6;

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
}

fn linear(params: &ParamStore, x: &Tensor, name: &str) -> Result<Tensor> {
    ops::matmul(
        x,
        params.get(&format!("{name}.weight"))?,
        params.get(&format!("{name}.bias")).ok(),
        false,
        true,
    )
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
    let query = params.get("query_token")?;
    let queries: Vec<&Tensor> = vec![query; b];
    let queries = ops::concat(&queries, 0)?;
    ops::concat(&[&rows, &queries], 1)
}

/// Table rows of `classes` [B, width] from a table held whole or in row chunks (the B-size
/// table is 197 MB): each chunk gathers the rows it holds, zeros elsewhere, and the parts add.
fn class_rows(chunks: &[&Tensor], classes: &[u32]) -> Result<Tensor> {
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
pub fn embed_tokens(params: &ParamStore, tokens: &Tensor) -> Result<Tensor> {
    let h = linear(params, tokens, "proj_in.w1")?;
    let h = ops::swiglu(&h)?;
    linear(params, &h, "proj_in.w2")
}

/// Runs `x` [B, n, dim] (the next n input positions) through the transformer against the cache,
/// appends their keys and values, and returns `norm` of the hidden states [B, n, dim].
pub fn transformer_step(
    c: &ModelConfig,
    params: &ParamStore,
    cache: &mut KvCache,
    x: &Tensor,
) -> Result<Tensor> {
    let s = x.shape().to_vec();
    let (b, n, d) = (s[0], s[1], c.dim);
    let start = cache.len;
    if s.len() != 3 || s[2] != d || start + n > c.sequence_len() {
        return Err(Error::Shape {
            op: "transformer_step",
            detail: format!(
                "input {s:?} at position {start} does not fit a sequence of {} x {d}",
                c.sequence_len()
            ),
        });
    }
    let gpu = x.gpu();
    let positions = Tensor::from_f32(gpu, &[n, 2], &cache.positions[2 * start..2 * (start + n)])?;
    let (heads, head_dim) = (c.n_head, c.head_dim());
    // One table of RoPE angles for these positions serves every layer's q and k.
    let rope = RopeTable::new(&positions, 1, head_dim)?;
    let mask = sequence_mask(c);
    let (mut x, _) = ops::rms_norm(x, Some(params.get("emb_norm.weight")?), EPS)?;
    for i in 0..c.n_layer {
        let l = format!("layers.{i}");
        let (h, _) = ops::rms_norm(
            &x,
            Some(params.get(&format!("{l}.attention_norm.weight"))?),
            EPS,
        )?;
        let qkv = ops::matmul(
            &h,
            params.get(&format!("{l}.attention.wqkv.weight"))?,
            None,
            false,
            true,
        )?;
        let (q, k, v) = ops::split_qkv(&qkv, heads)?;
        // As in training: the heads of q, k [B, H, n, D] rotate as B·H sequences of one head.
        let rotated = |x: &Tensor| -> Result<Tensor> {
            rope.apply(&x.reshape(&[b * heads, n, 1, head_dim])?)?
                .reshape(&[b, heads, n, head_dim])
        };
        let (q, k) = (rotated(&q)?, rotated(&k)?);
        ops::kv_cache_write(&cache.keys[i], &k, start)?;
        ops::kv_cache_write(&cache.values[i], &v, start)?;
        let (o, _) = ops::attention(
            &q,
            &cache.keys[i],
            &cache.values[i],
            start + n,
            start,
            mask,
            1.0 / (head_dim as f32).sqrt(),
        )?;
        let o = ops::matmul(
            &ops::merge_heads(&o)?,
            params.get(&format!("{l}.attention.wo.weight"))?,
            None,
            false,
            true,
        )?;
        x = ops::add(&x, &o)?;
        let (h, _) = ops::rms_norm(&x, Some(params.get(&format!("{l}.ffn_norm.weight"))?), EPS)?;
        let h = ops::matmul(
            &h,
            params.get(&format!("{l}.feed_forward.w1.weight"))?,
            None,
            false,
            true,
        )?;
        let h = ops::matmul(
            &ops::swiglu(&h)?,
            params.get(&format!("{l}.feed_forward.w2.weight"))?,
            None,
            false,
            true,
        )?;
        x = ops::add(&x, &h)?;
    }
    cache.len += n;
    Ok(ops::rms_norm(&x, Some(params.get("norm.weight")?), EPS)?.0)
}
