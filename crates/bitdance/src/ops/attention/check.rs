//! Conformance of the attention kernels: forward (out and lse) for every mask, odd sizes and
//! KV-cache decode with garbage rows past kv_len; every gradient against finite differences;
//! the head layout helpers and their backwards.

use crate::conformance::{Checker, TOL, TOL_GRAD, TOL_LONG};
use crate::ops::{self, AttentionMask, AttentionSpan};
use crate::reference::{self as cpu, finite_difference_vjp, AttentionDims};
use crate::Result;

const FULL: AttentionMask = AttentionMask::Full;
const CAUSAL: AttentionMask = AttentionMask::Causal;

const fn block(start: usize, block: usize) -> AttentionMask {
    AttentionMask::BlockCausal { start, block }
}

/// Square self-attention dims (q_offset 0, no spare cache rows).
fn square(b: usize, h: usize, t: usize, d: usize) -> AttentionDims {
    cache(b, h, t, t, t, d)
}

/// Tq queries at the last positions of kv_len keys, in a cache of `cap` rows.
fn cache(b: usize, h: usize, tq: usize, kv_len: usize, cap: usize, d: usize) -> AttentionDims {
    AttentionDims {
        b,
        h,
        tq,
        tk_cap: cap,
        d,
        kv_len,
        q_offset: kv_len - tq,
    }
}

fn describe(n: &AttentionDims, mask: AttentionMask) -> String {
    let m = match mask {
        AttentionMask::Full => "full".to_string(),
        AttentionMask::Causal => "causal".to_string(),
        AttentionMask::BlockCausal { start, block } => format!("block {start}/{block}"),
    };
    format!(
        "{}x{}x{}x{} kv {}/{} @{} {m}",
        n.b, n.h, n.tq, n.d, n.kv_len, n.tk_cap, n.q_offset
    )
}

/// The row label, naming the workgroup size when forced.
/// The span of a checked call, at the workgroup size `wg` when one is pinned.
fn span(n: AttentionDims, mask: AttentionMask, scale: f32, wg: Option<u32>) -> AttentionSpan {
    let span = AttentionSpan::new(n.kv_len, n.q_offset, mask, scale);
    wg.map_or(span, |wg| span.with_workgroup(wg))
}

fn label(s: String, wg: Option<u32>) -> String {
    match wg {
        Some(wg) => format!("{s} wg{wg}"),
        None => s,
    }
}

pub(crate) async fn run(c: &mut Checker) {
    c.skip_subgroup_form("attn_fwd_sg, attn_dq_sg, attn_dkv_sg");
    let forward = [
        (square(2, 3, 37, 24), FULL, None),
        (square(2, 3, 37, 64), FULL, None),
        (square(2, 3, 37, 24), CAUSAL, None),
        (square(2, 3, 37, 64), CAUSAL, Some(1.0)),
        (square(2, 3, 23, 24), block(5, 4), None),
        (square(2, 3, 23, 64), block(5, 4), None),
        (square(2, 3, 37, 24), block(3, 5), None),
        (cache(2, 3, 1, 19, 32, 64), CAUSAL, None),
        (cache(2, 3, 4, 19, 32, 64), CAUSAL, None),
        (cache(2, 3, 4, 17, 32, 24), block(5, 4), None),
        (cache(2, 3, 1, 19, 32, 24), FULL, None),
        (
            AttentionDims {
                q_offset: 0,
                ..cache(2, 3, 13, 29, 29, 24)
            },
            FULL,
            None,
        ),
    ];
    for (dims, mask, scale) in forward {
        if let Err(e) = check_forward(c, dims, mask, scale, None).await {
            c.fail("attention", describe(&dims, mask), e);
        }
    }
    let backward = [
        (square(1, 2, 7, 8), FULL),
        (square(1, 2, 7, 8), CAUSAL),
        (square(1, 2, 7, 8), block(2, 3)),
        (square(1, 1, 37, 4), block(5, 4)),
        (cache(1, 2, 3, 9, 12, 8), CAUSAL),
        (
            AttentionDims {
                q_offset: 0,
                ..cache(1, 2, 5, 9, 9, 8)
            },
            FULL,
        ),
    ];
    for (dims, mask) in backward {
        if let Err(e) = check_backward(c, dims, mask, None).await {
            c.fail("attention backward", describe(&dims, mask), e);
        }
    }
    // Both workgroup sizes, whichever the adapter picks by default.
    for wg in [ops::attention::WG_CPU, ops::attention::WG_GPU] {
        let forward = [
            (square(1, 2, 71, 16), CAUSAL),
            (square(1, 2, 71, 16), block(5, 4)),
            (cache(1, 2, 4, 19, 32, 16), CAUSAL),
        ];
        for (dims, mask) in forward {
            if let Err(e) = check_forward(c, dims, mask, None, Some(wg)).await {
                c.fail("attention", describe(&dims, mask), e);
            }
        }
        let dims = square(1, 1, 37, 4);
        if let Err(e) = check_backward(c, dims, block(5, 4), Some(wg)).await {
            c.fail("attention backward", describe(&dims, block(5, 4)), e);
        }
    }
    // (patches, tokens, heads, D): one token, the 4x and 16x heads' patches, odd counts.
    for case in [[3, 4, 3, 8], [2, 16, 2, 12], [5, 1, 2, 4], [3, 5, 3, 64]] {
        if let Err(e) = check_patch_attention(c, case).await {
            c.fail("patch_attention", format!("{case:?}"), e);
        }
    }
    // D = 5 moves single elements, D = 8 vec4s.
    for d in [5, 8] {
        if let Err(e) = check_layouts(c, 2, 7, 3, d).await {
            c.fail("attention layouts", format!("2x7x3x{d}"), e);
        }
    }
}

async fn check_forward(
    c: &mut Checker,
    n: AttentionDims,
    mask: AttentionMask,
    scale: Option<f32>,
    wg: Option<u32>,
) -> Result<()> {
    let scale = scale.unwrap_or(1.0 / (n.d as f32).sqrt());
    let s = label(describe(&n, mask), wg);
    let (q, qv) = c.randn(&[n.b, n.h, n.tq, n.d])?;
    let (k, kv) = c.randn(&[n.b, n.h, n.tk_cap, n.d])?;
    let (v, vv) = c.randn(&[n.b, n.h, n.tk_cap, n.d])?;
    let (ro, rl) = cpu::attention(&qv, &kv, &vv, n, mask, scale as f64);
    let (o, l) = ops::attention(&q, &k, &v, span(n, mask, scale, wg))?;
    c.compare("attention", s.clone(), Ok(o), &ro, TOL_LONG)
        .await;
    c.compare("attention lse", s, Ok(l), &rl, TOL_LONG).await;
    Ok(())
}

async fn check_backward(
    c: &mut Checker,
    n: AttentionDims,
    mask: AttentionMask,
    wg: Option<u32>,
) -> Result<()> {
    let scale = 1.0 / (n.d as f32).sqrt();
    let sc = scale as f64;
    let s = label(describe(&n, mask), wg);
    let (q, qv) = c.randn(&[n.b, n.h, n.tq, n.d])?;
    let (k, kv) = c.randn(&[n.b, n.h, n.tk_cap, n.d])?;
    let (v, vv) = c.randn(&[n.b, n.h, n.tk_cap, n.d])?;
    let (dout, dov) = c.randn(&[n.b, n.h, n.tq, n.d])?;
    let span = span(n, mask, scale, wg);
    let (o, l) = ops::attention(&q, &k, &v, span)?;
    let (dq, dk, dv) = ops::attention_backward(&q, &k, &v, &o, &l, &dout, span)?;
    let fq = finite_difference_vjp(|x| cpu::attention(x, &kv, &vv, n, mask, sc).0, &qv, &dov);
    let fk = finite_difference_vjp(|x| cpu::attention(&qv, x, &vv, n, mask, sc).0, &kv, &dov);
    let fv = finite_difference_vjp(|x| cpu::attention(&qv, &kv, x, n, mask, sc).0, &vv, &dov);
    c.compare("attention backward dq", s.clone(), Ok(dq), &fq, TOL_GRAD)
        .await;
    c.compare("attention backward dk", s.clone(), Ok(dk), &fk, TOL_GRAD)
        .await;
    c.compare("attention backward dv", s, Ok(dv), &fv, TOL_GRAD)
        .await;
    Ok(())
}

/// patch_attention against split_qkv, full attention within each patch and merge_heads.
async fn check_patch_attention(c: &mut Checker, [b, t, h, d]: [usize; 4]) -> Result<()> {
    let s = format!("{b} patches x {t} tokens, {h} heads x {d}");
    let (qkv, qkvv) = c.randn(&[b * t, 3 * h * d])?;
    let parts = cpu::split_qkv(&qkvv, b, t, h, d);
    let chunk = b * h * t * d;
    let dims = AttentionDims {
        b,
        h,
        tq: t,
        tk_cap: t,
        d,
        kv_len: t,
        q_offset: 0,
    };
    let scale = 1.0 / (d as f64).sqrt();
    let (q, k, v) = (
        &parts[..chunk],
        &parts[chunk..2 * chunk],
        &parts[2 * chunk..],
    );
    let (o, _) = cpu::attention(q, k, v, dims, FULL, scale);
    let r = cpu::merge_heads(&o, b, h, t, d);
    let y = ops::patch_attention(&qkv, t, h, scale as f32);
    c.compare("patch_attention", s, y, &r, TOL).await;
    Ok(())
}

async fn check_layouts(c: &mut Checker, b: usize, t: usize, h: usize, d: usize) -> Result<()> {
    let s = format!("{b}x{t}x(3*{h}*{d})");
    let (qkv, qkvv) = c.randn(&[b, t, 3 * h * d])?;
    let r = cpu::split_qkv(&qkvv, b, t, h, d);
    let chunk = b * h * t * d;
    let (q, k, v) = ops::split_qkv(&qkv, h)?;
    c.compare("split_qkv q", s.clone(), Ok(q), &r[..chunk], TOL)
        .await;
    c.compare("split_qkv k", s.clone(), Ok(k), &r[chunk..2 * chunk], TOL)
        .await;
    c.compare("split_qkv v", s.clone(), Ok(v), &r[2 * chunk..], TOL)
        .await;

    let (dq, dqv) = c.randn(&[b, h, t, d])?;
    let (dk, dkv) = c.randn(&[b, h, t, d])?;
    let (dv, dvv) = c.randn(&[b, h, t, d])?;
    let cot: Vec<f64> = [dqv, dkv, dvv].concat();
    let fd = finite_difference_vjp(|x| cpu::split_qkv(x, b, t, h, d), &qkvv, &cot);
    c.compare(
        "merge_qkv_grad",
        s,
        ops::merge_qkv_grad(&dq, &dk, &dv),
        &fd,
        TOL_GRAD,
    )
    .await;

    let s = format!("{b}x{h}x{t}x{d}");
    let (x, xv) = c.randn(&[b, h, t, d])?;
    let (y, yv) = c.randn(&[b, t, h * d])?;
    c.compare(
        "merge_heads",
        s.clone(),
        ops::merge_heads(&x),
        &cpu::merge_heads(&xv, b, h, t, d),
        TOL,
    )
    .await;
    c.compare(
        "split_heads",
        s.clone(),
        ops::split_heads(&y, h),
        &cpu::split_heads(&yv, b, t, h, d),
        TOL,
    )
    .await;
    let fd = finite_difference_vjp(|z| cpu::merge_heads(z, b, h, t, d), &xv, &yv);
    c.compare(
        "merge_heads backward",
        s.clone(),
        ops::split_heads(&y, h),
        &fd,
        TOL_GRAD,
    )
    .await;
    let fd = finite_difference_vjp(|z| cpu::split_heads(z, b, t, h, d), &yv, &xv);
    c.compare(
        "split_heads backward",
        s,
        ops::merge_heads(&x),
        &fd,
        TOL_GRAD,
    )
    .await;

    let (cap, tn, at) = (11, 4, 5);
    let s = format!("{b}x{h}x{tn}x{d} at {at} of {cap}");
    let (cache, mut want) = c.randn(&[b, h, cap, d])?;
    let (new, newv) = c.randn(&[b, h, tn, d])?;
    for bh in 0..b * h {
        let dst = (bh * cap + at) * d;
        want[dst..dst + tn * d].copy_from_slice(&newv[bh * tn * d..(bh + 1) * tn * d]);
    }
    let out = ops::kv_cache_write(&cache, &new, at).map(|_| cache);
    c.compare("kv_cache_write", s, out, &want, TOL).await;
    Ok(())
}
