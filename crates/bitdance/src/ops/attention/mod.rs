//! Attention: flash-style forward and backward over [B, H, T, D] heads with full, causal and
//! block-causal masks and a preallocated KV cache (the head layout permutations are in
//! `layout`).

pub(crate) mod check;
mod layout;
mod patch;
pub(crate) mod reference;
mod tape;

pub use layout::*;
pub use patch::patch_attention;

use super::{check_f32, shape_err};
use crate::gpu::Kernel;
use crate::{DType, Error, Result, Tensor};

shader! {
    /// `shaders/attention.wgsl`.
    ATTENTION = "attention", ["attention"], Params,
        crate::gpu::Variants::Listed(ATTENTION_VARIANTS), false;
}
shader! {
    /// `shaders/attention.wgsl` followed by `shaders/attention_sg.wgsl` (subgroup forms of the
    /// attention kernels for CPU adapters).
    ATTENTION_SG = "attention_sg", ["attention", "attention_sg"], Params,
        crate::gpu::Variants::Listed(ATTENTION_SG_VARIANTS), true;
}
shader! {
    /// `shaders/layout.wgsl`: the head layouts of q, k, v and the KV cache.
    LAYOUT = "layout", ["layout"], layout::Params,
        crate::gpu::Variants::Listed(crate::ops::VEC_VARIANTS), false;
}

/// The shaders of this family, for validation.
#[cfg(test)]
pub(crate) const SHADERS: &[&crate::gpu::Shader] = &[
    &ATTENTION,
    &ATTENTION_SG,
    &LAYOUT,
    &patch::PATCH_ATTENTION_SHADER,
];

/// Rows (queries or keys) per workgroup, `WG` in attention.wgsl. On CPU adapters lanes past the
/// rows a tile needs still run (masked), so small tiles waste least (causal tails, decode with a
/// few queries); GPUs want whole warps.
pub(crate) const WG_CPU: u32 = 8;
/// Rows per workgroup on GPUs.
pub(crate) const WG_GPU: u32 = 64;

/// Largest head dim: D4 = D / 4 runs 1..=32.
/// Largest head dimension the attention kernels take.
pub const MAX_HEAD_DIM: usize = 128;

uniform! {
    /// The uniform of `attention.wgsl` (and its subgroup forms).
    struct Params {
        /// Batch * heads, query rows per head, key / value rows per head (the KV cache's
        /// capacity), keys in use (rows 0..kv_len).
        bh: u32, tq: u32, tk_cap: u32, kv_len: u32,
        /// Absolute position of query row 0.
        q_offset: u32,
        /// 0 full, 1 causal, 2 block-causal; block-causal: the first group's position and the
        /// group size (> 0).
        mask_kind: u32, bstart: u32, block: u32,
        /// Softmax scale applied to q.k.
        scale: f32,
    }
}

kernels! { ATTENTION_KERNELS = ATTENTION, Params;
    FWD = "attn_fwd", [rw, rw, r, r, r];
    DQ = "attn_dq", [rw, rw, r, r, r, r, r, r];
    DKV = "attn_dkv", [rw, rw, r, r, r, r, r, r];
}

/// The subgroup form of an attention kernel (`attention_sg.wgsl`).
const fn subgroup_form(kernel: Kernel, entry: &'static str) -> Kernel {
    Kernel {
        shader: &ATTENTION_SG,
        entry,
        bindings: kernel.bindings,
        uniform: kernel.uniform,
    }
}
const FWD_SG: Kernel = subgroup_form(FWD, "attn_fwd_sg");
const DQ_SG: Kernel = subgroup_form(DQ, "attn_dq_sg");
const DKV_SG: Kernel = subgroup_form(DKV, "attn_dkv_sg");
/// The subgroup forms, for the binding contract test.
#[cfg(test)]
pub(crate) const ATTENTION_SG_KERNELS: &[Kernel] = &[FWD_SG, DQ_SG, DKV_SG];

/// The kernels (forward, dq, dkv) for `wg` rows per workgroup on `gpu`: the subgroup forms
/// when a workgroup of `WG_CPU` rows fits in one subgroup.
fn kernels_for(gpu: &crate::Gpu, wg: u32) -> [&'static Kernel; 3] {
    if wg == WG_CPU && gpu.has_subgroups(WG_CPU) {
        [&FWD_SG, &DQ_SG, &DKV_SG]
    } else {
        [&FWD, &DQ, &DKV]
    }
}

macro_rules! variants {
    ($($n:literal)*) => { &[$(&[("D4", $n), ("WG", WG_CPU)], &[("D4", $n), ("WG", WG_GPU)]),*] };
}

/// Define sets of `shaders/attention.wgsl` the runtime uses (validated by naga): D4 = D / 4
/// (head dims 4..=128) and WG = rows per workgroup.
pub const ATTENTION_VARIANTS: &[&[(&str, u32)]] = variants!(
    1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32
);

macro_rules! cpu_variants {
    ($($n:literal)*) => { &[$(&[("D4", $n), ("WG", WG_CPU)]),*] };
}

/// Define sets of the subgroup build (`attention.wgsl` + `attention_sg.wgsl`): CPU rows only.
pub const ATTENTION_SG_VARIANTS: &[&[(&str, u32)]] = cpu_variants!(
    1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32
);

/// Which keys each query sees; query row i sits at absolute position `q_offset + i`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttentionMask {
    /// Every key.
    Full,
    /// Keys at positions up to the query's own.
    Causal,
    /// Causal, except that each group of `block` positions from `start` on sees its whole group
    /// (BitDance next-patch diffusion: start = cls_token_num - 1 = 63, block = parallel_num).
    BlockCausal {
        /// Position of the first group.
        start: usize,
        /// Group size (> 0).
        block: usize,
    },
}

impl AttentionMask {
    /// Whether the query at absolute position `qp` sees the key at position `j`.
    pub fn visible(self, qp: usize, j: usize) -> bool {
        match self {
            Self::Full => true,
            Self::Causal => j <= qp,
            Self::BlockCausal { start, block } => {
                j <= qp
                    || (qp >= start && j >= start && (j - start) / block == (qp - start) / block)
            }
        }
    }

    /// Uniform words: kind, group start, group size.
    fn words(self) -> [u32; 3] {
        match self {
            Self::Full => [0, 0, 1],
            Self::Causal => [1, 0, 1],
            Self::BlockCausal { start, block } => [2, start as u32, block as u32],
        }
    }
}

/// Which keys the queries of one attention call see, and how their logits are scaled.
#[derive(Clone, Copy, Debug)]
pub struct AttentionSpan {
    /// Keys in use: rows 0..kv_len of k and v (their capacity may be larger: a KV cache).
    pub kv_len: usize,
    /// Absolute position of query row 0 (decode: `kv_len - Tq`).
    pub q_offset: usize,
    /// Which keys each query position may see.
    pub mask: AttentionMask,
    /// Softmax scale applied to q·k.
    pub scale: f32,
    /// Rows per workgroup; `None` is the adapter's default (the checks pin each size).
    workgroup: Option<u32>,
}

impl AttentionSpan {
    /// Keys 0..kv_len, query row 0 at position `q_offset`.
    pub fn new(kv_len: usize, q_offset: usize, mask: AttentionMask, scale: f32) -> Self {
        Self {
            kv_len,
            q_offset,
            mask,
            scale,
            workgroup: None,
        }
    }

    /// Every one of the `tk` keys, the `tq` queries being the last positions (no cache).
    pub fn all_keys(tk: usize, tq: usize, mask: AttentionMask, scale: f32) -> Self {
        Self::new(tk, tk.saturating_sub(tq), mask, scale)
    }

    /// The same span run with `wg` rows per workgroup (`WG_CPU` or `WG_GPU`).
    pub(crate) fn with_workgroup(self, wg: u32) -> Self {
        Self {
            workgroup: Some(wg),
            ..self
        }
    }

    fn workgroup_on(&self, gpu: &crate::Gpu) -> u32 {
        self.workgroup
            .unwrap_or(if gpu.is_cpu() { WG_CPU } else { WG_GPU })
    }
}

/// Sizes of one attention call, read from q [B, H, Tq, D] and k [B, H, Tk_cap, D].
#[derive(Clone, Copy, Debug)]
struct Dims {
    bh: usize,
    tq: usize,
    tk_cap: usize,
    d: usize,
}

fn check_attention(
    op: &'static str,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    kv_len: usize,
    mask: AttentionMask,
) -> Result<Dims> {
    check_f32(op, &[("q", q), ("k", k), ("v", v)])?;
    let (qs, ks) = (q.shape(), k.shape());
    if qs.len() != 4 || ks.len() != 4 || k.shape() != v.shape() {
        return Err(shape_err(
            op,
            format!(
                "expected q [B, H, Tq, D] and k, v [B, H, Tk, D]; got q {qs:?}, k {ks:?}, v {:?}",
                v.shape()
            ),
        ));
    }
    if qs[0] != ks[0] || qs[1] != ks[1] || qs[3] != ks[3] {
        return Err(shape_err(
            op,
            format!("q {qs:?} and k {ks:?} differ in B, H or D"),
        ));
    }
    let d = qs[3];
    if d == 0 || d % 4 != 0 || d > MAX_HEAD_DIM {
        return Err(shape_err(
            op,
            format!("head dim {d} must be a multiple of 4 in 4..={MAX_HEAD_DIM}"),
        ));
    }
    if qs[0] * qs[1] == 0 || qs[2] == 0 {
        return Err(shape_err(op, format!("empty q {qs:?}")));
    }
    if kv_len == 0 || kv_len > ks[2] {
        return Err(shape_err(
            op,
            format!("kv_len {kv_len} must be in 1..={} (k {ks:?})", ks[2]),
        ));
    }
    if let AttentionMask::BlockCausal { block: 0, .. } = mask {
        return Err(Error::Invalid(format!(
            "{op}: block-causal mask with block size 0"
        )));
    }
    Ok(Dims {
        bh: qs[0] * qs[1],
        tq: qs[2],
        tk_cap: ks[2],
        d,
    })
}

fn params(dims: Dims, span: &AttentionSpan) -> Params {
    let [mask_kind, bstart, block] = span.mask.words();
    Params {
        bh: dims.bh as u32,
        tq: dims.tq as u32,
        tk_cap: dims.tk_cap as u32,
        kv_len: span.kv_len as u32,
        q_offset: span.q_offset as u32,
        mask_kind,
        bstart,
        block,
        scale: span.scale,
    }
}

/// Workgroups of `wg` rows each over `rows` rows of every one of the `bh` heads.
fn groups(bh: usize, rows: usize, wg: u32) -> u32 {
    (bh * rows.div_ceil(wg as usize)) as u32
}

/// Scaled masked softmax attention over keys 0..kv_len of a (possibly larger, KV-cache) k, v.
/// q [B, H, Tq, D], k, v [B, H, Tk_cap, D] (D a multiple of 4, at most 128); query row i sits at
/// position `span.q_offset + i`. Returns (out [B, H, Tq, D], lse [B, H, Tq]), lse being the
/// log-sum-exp of the scaled masked logits (for the backward).
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    span: AttentionSpan,
) -> Result<(Tensor, Tensor)> {
    let dims = check_attention("attention", q, k, v, span.kv_len, span.mask)?;
    let gpu = q.gpu();
    let wg = span.workgroup_on(gpu);
    let out = Tensor::empty(gpu, q.shape(), DType::F32)?;
    let lse = Tensor::empty(gpu, &q.shape()[..3], DType::F32)?;
    let p = params(dims, &span);
    let [fwd, _, _] = kernels_for(gpu, wg);
    let defines = [("D4", (dims.d / 4) as u32), ("WG", wg)];
    let tensors = [&out, &lse, q, k, v];
    gpu.dispatch_groups(fwd, &defines, &tensors, &p, groups(dims.bh, dims.tq, wg))?;
    Ok((out, lse))
}

/// Gradients (dq, dk, dv) of `attention` given its inputs, its outputs (out, lse), dout
/// [B, H, Tq, D] and its span; dk, dv have k's shape, zero in rows at or past kv_len.
/// Deterministic (no atomics): one kernel per query for dq (also computing rowsum(dout * out)),
/// one per key for dk and dv.
pub fn attention_backward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    out: &Tensor,
    lse: &Tensor,
    dout: &Tensor,
    span: AttentionSpan,
) -> Result<(Tensor, Tensor, Tensor)> {
    let op = "attention_backward";
    let dims = check_attention(op, q, k, v, span.kv_len, span.mask)?;
    check_f32(op, &[("out", out), ("lse", lse), ("dout", dout)])?;
    if out.shape() != q.shape() || dout.shape() != q.shape() || lse.shape() != &q.shape()[..3] {
        return Err(shape_err(
            op,
            format!(
                "q {:?} needs out and dout of its shape and lse [B, H, Tq]; got out {:?}, \
                 dout {:?}, lse {:?}",
                q.shape(),
                out.shape(),
                dout.shape(),
                lse.shape()
            ),
        ));
    }
    let gpu = q.gpu();
    let wg = span.workgroup_on(gpu);
    let defines = [("D4", (dims.d / 4) as u32), ("WG", wg)];
    let p = params(dims, &span);
    let dq = Tensor::empty(gpu, q.shape(), DType::F32)?;
    let dvec = Tensor::empty(gpu, lse.shape(), DType::F32)?;
    let [_, dq_kernel, dkv_kernel] = kernels_for(gpu, wg);
    let tensors = [&dq, &dvec, q, k, v, dout, lse, out];
    let grid = groups(dims.bh, dims.tq, wg);
    gpu.dispatch_groups(dq_kernel, &defines, &tensors, &p, grid)?;
    let dk = Tensor::empty(gpu, k.shape(), DType::F32)?;
    let dv = Tensor::empty(gpu, k.shape(), DType::F32)?;
    let tensors = [&dk, &dv, q, k, v, dout, lse, &dvec];
    let grid = groups(dims.bh, dims.tk_cap, wg);
    gpu.dispatch_groups(dkv_kernel, &defines, &tensors, &p, grid)?;
    Ok((dq, dk, dv))
}

/// Every kernel this family declares, for the binding contract test.
#[cfg(test)]
pub(crate) const KERNELS: &[&[crate::gpu::Kernel]] = &[
    layout::LAYOUT_KERNELS,
    patch::PATCH_ATTENTION_KERNELS,
    ATTENTION_KERNELS,
    ATTENTION_SG_KERNELS,
];
