//! Conformance of attention (all masks, decode against a cache), its backward and head layouts.

use super::{Checker, TOL, TOL_GRAD, TOL_LONG};
use crate::ops::{self, AttentionMask};
use crate::reference::{attention_ref, finite_difference_vjp as fd, split_heads_ref};
use crate::{Result, Tensor};

pub(super) async fn run(c: &mut Checker) {
    if let Err(e) = all(c).await {
        c.fail("attention", "setup".into(), e);
    }
}

#[allow(clippy::too_many_arguments)]
async fn forward_case(
    c: &mut Checker,
    name: &str,
    b: usize,
    h: usize,
    tq: usize,
    tcap: usize,
    d: usize,
    kv_len: usize,
    mask: AttentionMask,
) -> Result<()> {
    let (q, qv) = c.randn(&[b, h, tq, d])?;
    let (k, kv) = c.randn(&[b, h, tcap, d])?; // rows beyond kv_len are random garbage to ignore
    let (v, vv) = c.randn(&[b, h, tcap, d])?;
    let scale = 1.0 / (d as f32).sqrt();
    let q_offset = kv_len - tq.min(kv_len);
    let r = attention_ref(
        &qv,
        &kv,
        &vv,
        (b * h, tq, tcap, d),
        kv_len,
        q_offset,
        mask,
        scale as f64,
    );
    let out = ops::attention(&q, &k, &v, kv_len, q_offset, mask, scale).map(|o| o.0);
    c.compare(
        name,
        format!("B{b} H{h} Tq{tq} kv{kv_len}/{tcap} D{d}"),
        out,
        &r,
        TOL_LONG,
    )
    .await;
    Ok(())
}

async fn all(c: &mut Checker) -> Result<()> {
    forward_case(
        c,
        "attention causal",
        2,
        3,
        37,
        37,
        24,
        37,
        AttentionMask::Causal,
    )
    .await?;
    forward_case(
        c,
        "attention causal",
        1,
        2,
        37,
        37,
        64,
        37,
        AttentionMask::Causal,
    )
    .await?;
    forward_case(
        c,
        "attention full",
        2,
        3,
        37,
        37,
        24,
        37,
        AttentionMask::Full,
    )
    .await?;
    forward_case(
        c,
        "attention block-causal",
        1,
        3,
        23,
        23,
        24,
        23,
        AttentionMask::BlockCausal { start: 5, block: 4 },
    )
    .await?;
    forward_case(
        c,
        "attention decode",
        2,
        3,
        1,
        32,
        24,
        19,
        AttentionMask::Causal,
    )
    .await?;
    forward_case(
        c,
        "attention decode block-causal",
        2,
        3,
        4,
        32,
        64,
        19,
        AttentionMask::BlockCausal { start: 3, block: 4 },
    )
    .await?;
    forward_case(
        c,
        "attention full Tq != Tk",
        1,
        2,
        5,
        29,
        24,
        29,
        AttentionMask::Full,
    )
    .await?;

    // Backward for every mask, against finite differences of the reference.
    for mask in [
        AttentionMask::Causal,
        AttentionMask::Full,
        AttentionMask::BlockCausal { start: 2, block: 3 },
    ] {
        let (b, h, t, d) = (1, 2, 7, 8);
        let g = (b * h, t, t, d);
        let (q, qv) = c.randn(&[b, h, t, d])?;
        let (k, kv) = c.randn(&[b, h, t, d])?;
        let (v, vv) = c.randn(&[b, h, t, d])?;
        let (dout, dov) = c.randn(&[b, h, t, d])?;
        let scale = 0.35;
        let (out, lse) = ops::attention(&q, &k, &v, t, 0, mask, scale)?;
        let s = format!("{mask:?} B{b} H{h} T{t} D{d}");
        match ops::attention_backward(&q, &k, &v, &out, &lse, &dout, t, 0, mask, scale) {
            Ok((dq, dk, dv)) => {
                let f = |q: &[f64], k: &[f64], v: &[f64]| {
                    attention_ref(q, k, v, g, t, 0, mask, scale as f64)
                };
                c.compare(
                    "attention backward dq",
                    s.clone(),
                    Ok(dq),
                    &fd(|x| f(x, &kv, &vv), &qv, &dov),
                    TOL_GRAD,
                )
                .await;
                c.compare(
                    "attention backward dk",
                    s.clone(),
                    Ok(dk),
                    &fd(|x| f(&qv, x, &vv), &kv, &dov),
                    TOL_GRAD,
                )
                .await;
                c.compare(
                    "attention backward dv",
                    s.clone(),
                    Ok(dv),
                    &fd(|x| f(&qv, &kv, x), &vv, &dov),
                    TOL_GRAD,
                )
                .await;
            }
            Err(e) => c.fail("attention backward", s, e),
        }
    }

    // Head layouts: split / merge are inverse permutations; qkv chunks are head-major.
    let (b, t, h, d) = (2, 5, 3, 4);
    let (x, xv) = c.randn(&[b, t, h * d])?;
    let split = ops::split_heads(&x, h)?;
    c.compare(
        "split_heads",
        format!("[{b},{t},{h}x{d}]"),
        Ok(split.clone()),
        &split_heads_ref(&xv, (b, t, h, d)),
        TOL,
    )
    .await;
    c.compare(
        "merge_heads",
        format!("[{b},{h},{t},{d}]"),
        ops::merge_heads(&split),
        &xv,
        TOL,
    )
    .await;
    let (qkv, qkvv) = c.randn(&[b, t, 3 * h * d])?;
    let (q, k, v) = ops::split_qkv(&qkv, h)?;
    let chunk = |i: usize| -> Vec<f64> {
        let rows: Vec<f64> = qkvv
            .chunks(3 * h * d)
            .flat_map(|r| r[i * h * d..(i + 1) * h * d].to_vec())
            .collect();
        split_heads_ref(&rows, (b, t, h, d))
    };
    c.compare(
        "split_qkv k chunk",
        format!("[{b},{t},3x{h}x{d}]"),
        Ok(k.clone()),
        &chunk(1),
        TOL,
    )
    .await;
    c.compare(
        "merge_qkv_grad",
        format!("[{b},{t},3x{h}x{d}]"),
        ops::merge_qkv_grad(&q, &k, &v),
        &qkvv,
        TOL,
    )
    .await;
    // KV cache append in place.
    let cache = Tensor::zeros(&c.gpu, &[b, h, 9, d])?;
    ops::write_slice(&cache, &split, 2, 4)?;
    let mut r = vec![0.0; b * h * 9 * d];
    let sv = split_heads_ref(&xv, (b, t, h, d));
    for z in 0..b * h {
        for i in 0..t {
            for cc in 0..d {
                r[(z * 9 + 4 + i) * d + cc] = sv[(z * t + i) * d + cc];
            }
        }
    }
    c.compare(
        "kv cache write",
        format!("[{b},{h},{t},{d}] at 4 of 9"),
        Ok(cache),
        &r,
        TOL,
    )
    .await;
    Ok(())
}
