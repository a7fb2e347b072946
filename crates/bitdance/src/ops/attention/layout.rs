//! Head layout permutations around attention: the fused qkv split into [B, H, T, D] heads and
//! its backward, head swaps ([B, T, H*D] <-> [B, H, T, D]) and KV-cache writes.

use super::LAYOUT;
use crate::gpu::{Kernel, VEC};
use crate::ops::{check_f32, shape_err};
use crate::{DType, Error, Result, Tensor};

uniform! {
    /// The uniform of `layout.wgsl`: n elements written, then four sizes whose
    /// meaning each entry point gives (the third, c, is the innermost dim D).
    struct Params {
        n: u32, a: u32, b: u32, c: u32, d: u32,
    }
}

kernels! { LAYOUT_KERNELS = LAYOUT, Params;
    SPLIT_QKV = "split_qkv", [rw, rw, rw, r];
    MERGE_QKV = "merge_qkv", [rw, r, r, r];
    SWAP12 = "swap12", [rw, r];
    CACHE_WRITE = "cache_write", [rw, r];
}

/// A layout kernel over n elements whose innermost dim is words[2] = D: moved as vec4s when D
/// is a multiple of 4 (n and D then counted in vec4s), else element by element.
fn launch_layout(
    kernel: &Kernel,
    tensors: &[&Tensor],
    n: usize,
    mut words: [u32; 4],
) -> Result<()> {
    let width = if words[2].is_multiple_of(4) { 4 } else { 1 };
    words[2] /= width;
    let n = n / width as usize;
    let gpu = tensors[0].gpu();
    let [a, b, c, d] = words;
    let p = Params {
        n: n as u32,
        a,
        b,
        c,
        d,
    };
    gpu.dispatch_items(kernel, &[(VEC, width)], tensors, &p, n)
}

fn dims4(op: &'static str, x: &Tensor, what: &str) -> Result<[usize; 4]> {
    x.expect_dtype(op, "input", DType::F32)?;
    match x.shape() {
        &[a, b, c, d] => Ok([a, b, c, d]),
        s => Err(shape_err(op, format!("expected {what}, got {s:?}"))),
    }
}

/// Splits a fused wqkv output qkv [B, T, 3*H*D] (q | k | v chunks, each [H, D] head-major)
/// into q, k, v, each [B, H, T, D].
pub fn split_qkv(qkv: &Tensor, heads: usize) -> Result<(Tensor, Tensor, Tensor)> {
    let op = "split_qkv";
    qkv.expect_dtype(op, "qkv", DType::F32)?;
    let (b, t, w) = match qkv.shape() {
        &[b, t, w] => (b, t, w),
        s => {
            return Err(shape_err(
                op,
                format!("expected qkv [B, T, 3*H*D], got {s:?}"),
            ))
        }
    };
    if heads == 0 || w == 0 || w % (3 * heads) != 0 {
        return Err(shape_err(
            op,
            format!("last dim of {:?} is not 3 * {heads} heads * D", qkv.shape()),
        ));
    }
    let d = w / (3 * heads);
    let shape = [b, heads, t, d];
    let gpu = qkv.gpu();
    let q = Tensor::empty(gpu, &shape, DType::F32)?;
    let k = Tensor::empty(gpu, &shape, DType::F32)?;
    let v = Tensor::empty(gpu, &shape, DType::F32)?;
    launch_layout(
        &SPLIT_QKV,
        &[&q, &k, &v, qkv],
        b * heads * t * d,
        [t as u32, heads as u32, d as u32, 0],
    )?;
    Ok((q, k, v))
}

/// Backward of `split_qkv`: dq, dk, dv [B, H, T, D] -> dqkv [B, T, 3*H*D].
pub fn merge_qkv_grad(dq: &Tensor, dk: &Tensor, dv: &Tensor) -> Result<Tensor> {
    let op = "merge_qkv_grad";
    let [b, h, t, d] = dims4(op, dq, "dq [B, H, T, D]")?;
    check_f32(op, &[("dk", dk), ("dv", dv)])?;
    if dk.shape() != dq.shape() || dv.shape() != dq.shape() {
        return Err(shape_err(
            op,
            format!(
                "dq {:?}, dk {:?}, dv {:?} differ",
                dq.shape(),
                dk.shape(),
                dv.shape()
            ),
        ));
    }
    let out = Tensor::empty(dq.gpu(), &[b, t, 3 * h * d], DType::F32)?;
    launch_layout(
        &MERGE_QKV,
        &[&out, dq, dk, dv],
        dq.numel(),
        [t as u32, h as u32, d as u32, 0],
    )?;
    Ok(out)
}

/// [B, N1, N2, D] -> [B, N2, N1, D].
fn swap12(x: &Tensor, [b, n1, n2, d]: [usize; 4], out_shape: &[usize]) -> Result<Tensor> {
    let out = Tensor::empty(x.gpu(), out_shape, DType::F32)?;
    launch_layout(
        &SWAP12,
        &[&out, x],
        b * n1 * n2 * d,
        [n1 as u32, n2 as u32, d as u32, 0],
    )?;
    Ok(out)
}

/// Heads back into features: x [B, H, T, D] -> [B, T, H*D] (backward of `split_heads`).
pub fn merge_heads(x: &Tensor) -> Result<Tensor> {
    let [b, h, t, d] = dims4("merge_heads", x, "x [B, H, T, D]")?;
    swap12(x, [b, h, t, d], &[b, t, h * d])
}

/// Features into heads: x [B, T, H*D] -> [B, H, T, D] (backward of `merge_heads`).
pub fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let op = "split_heads";
    x.expect_dtype(op, "x", DType::F32)?;
    let (b, t, w) = match x.shape() {
        &[b, t, w] => (b, t, w),
        s => return Err(shape_err(op, format!("expected x [B, T, H*D], got {s:?}"))),
    };
    if heads == 0 || w == 0 || w % heads != 0 {
        return Err(shape_err(
            op,
            format!("last dim of {:?} is not {heads} heads * D", x.shape()),
        ));
    }
    let d = w / heads;
    swap12(x, [b, t, heads, d], &[b, heads, t, d])
}

/// Writes new [B, H, Tn, D] into rows at..at+Tn of cache [B, H, Tcap, D], in place.
pub fn kv_cache_write(cache: &Tensor, new: &Tensor, at: usize) -> Result<()> {
    let op = "kv_cache_write";
    let [b, h, cap, d] = dims4(op, cache, "cache [B, H, Tcap, D]")?;
    let [nb, nh, tn, nd] = dims4(op, new, "new [B, H, Tn, D]")?;
    if (nb, nh, nd) != (b, h, d) || at + tn > cap {
        return Err(shape_err(
            op,
            format!(
                "cannot write new {:?} at row {at} of cache {:?}",
                new.shape(),
                cache.shape()
            ),
        ));
    }
    if cache.same_storage(new) {
        return Err(Error::Invalid(format!("{op}: cache and new share storage")));
    }
    launch_layout(
        &CACHE_WRITE,
        &[cache, new],
        new.numel(),
        [tn as u32, cap as u32, d as u32, at as u32],
    )
}
