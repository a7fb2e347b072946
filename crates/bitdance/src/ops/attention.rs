//! Attention: one kernel family for full, causal and block-causal masks and for decoding
//! new queries against a KV cache; its backward; and the head layout permutations.

use crate::gpu::{Access, Kernel};
use crate::shaders::ATTENTION;
use crate::{DType, Error, Result, Tensor};

/// Define sets of `shaders/attention.wgsl` the runtime uses (validated by naga).
pub const ATTENTION_VARIANTS: &[&[(&str, u32)]] =
    &[&[("DMAX", 32)], &[("DMAX", 64)], &[("DMAX", 128)]];

/// Largest head dimension the kernels take.
pub const MAX_HEAD_DIM: usize = 128;

const RW: Access = Access::ReadWrite;
const R: Access = Access::Read;
const S: Access = Access::Skip;
const FORWARD: Kernel = Kernel {
    shader: &ATTENTION,
    entry: "attention",
    bindings: &[RW, RW, R, R, R],
};
const DVEC: Kernel = Kernel {
    shader: &ATTENTION,
    entry: "attention_dvec",
    bindings: &[RW, S, S, S, S, R, R],
};
const DQ: Kernel = Kernel {
    shader: &ATTENTION,
    entry: "attention_dq",
    bindings: &[RW, S, R, R, R, S, R, R],
};
const DKV: Kernel = Kernel {
    shader: &ATTENTION,
    entry: "attention_dkv",
    bindings: &[RW, RW, R, R, R, S, R, R],
};
const SPLIT: Kernel = Kernel {
    shader: &ATTENTION,
    entry: "split_heads",
    bindings: &[RW, S, R],
};
const MERGE: Kernel = Kernel {
    shader: &ATTENTION,
    entry: "merge_heads",
    bindings: &[RW, S, R],
};

/// Which keys each query sees. Query row i sits at absolute position `q_offset + i`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttentionMask {
    /// Every key (the bidirectional transformer head).
    Full,
    /// Keys at or before the query's position.
    Causal,
    /// Causal, plus full visibility inside each group of `block` positions from `start`
    /// (next-patch BitDance: start 63, block = tokens per step).
    BlockCausal {
        /// First position of the first group.
        start: usize,
        /// Group size.
        block: usize,
    },
}

impl AttentionMask {
    fn words(&self) -> [u32; 3] {
        match *self {
            AttentionMask::Full => [0, 0, 1],
            AttentionMask::Causal => [1, 0, 1],
            AttentionMask::BlockCausal { start, block } => [2, start as u32, block.max(1) as u32],
        }
    }

    /// Whether the query at absolute position `qp` sees key `j` (the host-side rule).
    pub fn visible(&self, qp: usize, j: usize) -> bool {
        match *self {
            AttentionMask::Full => true,
            AttentionMask::Causal => j <= qp,
            AttentionMask::BlockCausal { start, block } => {
                j <= qp
                    || (qp >= start && j >= start && (j - start) / block == (qp - start) / block)
            }
        }
    }
}

/// Geometry of one call, checked.
struct Geometry {
    bh: usize,
    tq: usize,
    tcap: usize,
    d: usize,
}

fn geometry(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    kv_len: usize,
    op: &'static str,
) -> Result<Geometry> {
    let (sq, sk) = (q.shape(), k.shape());
    let bad = |detail: String| Error::Shape { op, detail };
    if sq.len() != 4 || sk.len() != 4 {
        return Err(bad(format!("q {sq:?} and k {sk:?} must be [B, H, T, D]")));
    }
    if sq[0] != sk[0] || sq[1] != sk[1] || sq[3] != sk[3] || v.shape() != sk {
        return Err(bad(format!(
            "q {sq:?}, k {sk:?}, v {:?} disagree on B, H or D",
            v.shape()
        )));
    }
    if kv_len > sk[2] || kv_len == 0 {
        return Err(bad(format!(
            "kv_len {kv_len} must be in 1..={} (the cache length)",
            sk[2]
        )));
    }
    if sq[3] > MAX_HEAD_DIM || sq[3] == 0 {
        return Err(Error::Limit {
            what: format!("{op}: head dimension"),
            requested: sq[3] as u64,
            limit_name: "MAX_HEAD_DIM",
            limit: MAX_HEAD_DIM as u64,
        });
    }
    Ok(Geometry {
        bh: sq[0] * sq[1],
        tq: sq[2],
        tcap: sk[2],
        d: sq[3],
    })
}

fn dmax(d: usize) -> [(&'static str, u32); 1] {
    [(
        "DMAX",
        if d <= 32 {
            32
        } else if d <= 64 {
            64
        } else {
            128
        },
    )]
}

fn params(
    g: &Geometry,
    kv_len: usize,
    q_offset: usize,
    mask: AttentionMask,
    scale: f32,
) -> [u32; 10] {
    let [mode, start, block] = mask.words();
    [
        g.bh as u32,
        g.tq as u32,
        g.tcap as u32,
        g.d as u32,
        kv_len as u32,
        q_offset as u32,
        mode,
        start,
        block,
        scale.to_bits(),
    ]
}

fn launch(
    kernel: &Kernel,
    g: &Geometry,
    tensors: &[&Tensor],
    p: &[u32; 10],
    threads: usize,
) -> Result<()> {
    let gpu = tensors[0].gpu();
    let grid = gpu.grid(kernel.entry, (threads as u32).div_ceil(64))?;
    gpu.dispatch(kernel, &dmax(g.d), tensors, p, grid)
}

/// softmax(scale · q kᵀ + mask) v over keys 0..kv_len: q [B, H, Tq, D], k and v [B, H, Tcap, D]
/// (Tcap >= kv_len: a KV cache). Query row i has absolute position `q_offset + i`.
/// Returns (out [B, H, Tq, D], lse [B, H, Tq]: the log-sum-exp, kept for the backward).
#[allow(clippy::too_many_arguments)]
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    kv_len: usize,
    q_offset: usize,
    mask: AttentionMask,
    scale: f32,
) -> Result<(Tensor, Tensor)> {
    let g = geometry(q, k, v, kv_len, "attention")?;
    let out = Tensor::empty(q.gpu(), q.shape(), DType::F32)?;
    let lse = Tensor::empty(q.gpu(), &q.shape()[..3], DType::F32)?;
    let p = params(&g, kv_len, q_offset, mask, scale);
    launch(&FORWARD, &g, &[&out, &lse, q, k, v], &p, g.bh * g.tq)?;
    Ok((out, lse))
}

/// Backward of `attention`: (dq, dk, dv), dk and dv [B, H, Tcap, D] with zeros beyond kv_len.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    out: &Tensor,
    lse: &Tensor,
    dout: &Tensor,
    kv_len: usize,
    q_offset: usize,
    mask: AttentionMask,
    scale: f32,
) -> Result<(Tensor, Tensor, Tensor)> {
    let g = geometry(q, k, v, kv_len, "attention_backward")?;
    super::same_shape("attention_backward", out, dout)?;
    super::same_shape("attention_backward", q, out)?;
    let p = params(&g, kv_len, q_offset, mask, scale);
    let n = g.bh * g.tq;
    let dvec = Tensor::empty(q.gpu(), &[n], DType::F32)?;
    launch(&DVEC, &g, &[&dvec, out, dout], &p, n)?;
    let stats = super::concat(&[&lse.reshape(&[n])?, &dvec], 0)?;
    let dq = Tensor::empty(q.gpu(), q.shape(), DType::F32)?;
    launch(&DQ, &g, &[&dq, q, k, v, dout, &stats], &p, n)?;
    let dk = Tensor::empty(q.gpu(), k.shape(), DType::F32)?;
    let dv = Tensor::empty(q.gpu(), k.shape(), DType::F32)?;
    launch(
        &DKV,
        &g,
        &[&dk, &dv, q, k, v, dout, &stats],
        &p,
        g.bh * g.tcap,
    )?;
    Ok((dq, dk, dv))
}

fn layout_params(
    b: usize,
    t: usize,
    heads: usize,
    d: usize,
    chunks: usize,
    chunk: usize,
) -> [u32; 10] {
    [
        (b * heads) as u32,
        t as u32,
        chunks as u32,
        d as u32,
        heads as u32,
        chunk as u32,
        0,
        0,
        0,
        0,
    ]
}

fn chunk_geometry(
    x: &Tensor,
    chunks: usize,
    heads: usize,
    op: &'static str,
) -> Result<(usize, usize, usize)> {
    let s = x.shape();
    if s.len() != 3 || heads == 0 || !s[2].is_multiple_of(chunks * heads) {
        return Err(Error::Shape {
            op,
            detail: format!("x {s:?} must be [B, T, {chunks} * {heads} heads * D]"),
        });
    }
    Ok((s[0], s[1], s[2] / (chunks * heads)))
}

fn split_chunk(x: &Tensor, chunks: usize, chunk: usize, heads: usize) -> Result<Tensor> {
    let (b, t, d) = chunk_geometry(x, chunks, heads, "split_heads")?;
    let out = Tensor::empty(x.gpu(), &[b, heads, t, d], DType::F32)?;
    let grid = x
        .gpu()
        .grid("split_heads", (out.numel() as u32).div_ceil(64))?;
    x.gpu().dispatch(
        &SPLIT,
        &dmax(1),
        &[&out, x],
        &layout_params(b, t, heads, d, chunks, chunk),
        grid,
    )?;
    Ok(out)
}

fn merge_chunk(dst: &Tensor, x: &Tensor, chunks: usize, chunk: usize) -> Result<()> {
    let s = x.shape();
    let (b, heads, t, d) = (s[0], s[1], s[2], s[3]);
    let grid = x
        .gpu()
        .grid("merge_heads", (x.numel() as u32).div_ceil(64))?;
    x.gpu().dispatch(
        &MERGE,
        &dmax(1),
        &[dst, x],
        &layout_params(b, t, heads, d, chunks, chunk),
        grid,
    )
}

/// The q|k|v chunks of a fused projection [B, T, 3·H·D] as three [B, H, T, D] tensors.
pub fn split_qkv(qkv: &Tensor, heads: usize) -> Result<(Tensor, Tensor, Tensor)> {
    Ok((
        split_chunk(qkv, 3, 0, heads)?,
        split_chunk(qkv, 3, 1, heads)?,
        split_chunk(qkv, 3, 2, heads)?,
    ))
}

/// Backward of `split_qkv`: dq, dk, dv [B, H, T, D] -> dqkv [B, T, 3·H·D].
pub fn merge_qkv_grad(dq: &Tensor, dk: &Tensor, dv: &Tensor) -> Result<Tensor> {
    let s = dq.shape();
    if s.len() != 4 || dk.shape() != s || dv.shape() != s {
        return Err(Error::Shape {
            op: "merge_qkv_grad",
            detail: format!(
                "dq {s:?}, dk {:?}, dv {:?} must be equal [B, H, T, D]",
                dk.shape(),
                dv.shape()
            ),
        });
    }
    let out = Tensor::empty(dq.gpu(), &[s[0], s[2], 3 * s[1] * s[3]], DType::F32)?;
    for (i, x) in [dq, dk, dv].into_iter().enumerate() {
        merge_chunk(&out, x, 3, i)?;
    }
    Ok(out)
}

/// [B, T, H·D] -> [B, H, T, D].
pub fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    split_chunk(x, 1, 0, heads)
}

/// [B, H, T, D] -> [B, T, H·D] (the inverse of `split_heads`).
pub fn merge_heads(x: &Tensor) -> Result<Tensor> {
    let s = x.shape();
    if s.len() != 4 {
        return Err(Error::Shape {
            op: "merge_heads",
            detail: format!("x {s:?} must be [B, H, T, D]"),
        });
    }
    let out = Tensor::empty(x.gpu(), &[s[0], s[2], s[1] * s[3]], DType::F32)?;
    merge_chunk(&out, x, 1, 0)?;
    Ok(out)
}

/// GFLOP/s of the attention forward (4·B·H·Tq·Tk·D flops counted) after a warm-up.
#[cfg(not(target_arch = "wasm32"))]
#[allow(clippy::too_many_arguments)]
pub fn bench_attention(
    gpu: &crate::Gpu,
    b: usize,
    h: usize,
    tq: usize,
    tk: usize,
    d: usize,
    mask: AttentionMask,
    iters: usize,
) -> Result<f64> {
    let mut rng = crate::rng::Rng::new(3);
    let q = Tensor::from_f32(gpu, &[b, h, tq, d], &rng.normal_vec(b * h * tq * d))?;
    let k = Tensor::from_f32(gpu, &[b, h, tk, d], &rng.normal_vec(b * h * tk * d))?;
    let v = Tensor::from_f32(gpu, &[b, h, tk, d], &rng.normal_vec(b * h * tk * d))?;
    let scale = 1.0 / (d as f32).sqrt();
    drop(attention(&q, &k, &v, tk, tk - tq, mask, scale)?);
    gpu.synchronize()?;
    let mut best = f64::INFINITY;
    for _ in 0..iters.max(1) {
        let start = std::time::Instant::now();
        drop(attention(&q, &k, &v, tk, tk - tq, mask, scale)?);
        gpu.synchronize()?;
        best = best.min(start.elapsed().as_secs_f64());
    }
    Ok(4.0 * (b * h * tq * tk * d) as f64 / best / 1e9)
}
