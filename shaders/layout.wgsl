// Head layout permutations around attention: q/k/v split and merge, head swaps and KV-cache
// writes, one invocation per output element. VEC (1 or 4) is the element width: V is f32 or
// vec4<f32>, used when D is a multiple of 4 (lp.c and lp.n then count vec4s).
// Linear id = gid.x + gid.y * nwg.x * 256.

// struct Params: generated from the Rust `uniform!` in crates/bitdance/src/ops/attention/layout.rs
// (its fields are documented there) and prepended to this source.

@group(0) @binding(0) var<uniform> lp: Params;
// split_qkv: q, k, v, qkv; merge_qkv: dqkv, dq, dk, dv; swap12 and cache_write: out, in.
@group(0) @binding(1) var<storage, read_write> dst: array<V>;
@group(0) @binding(2) var<storage, read_write> dst_k: array<V>;
@group(0) @binding(3) var<storage, read_write> dst_v: array<V>;
@group(0) @binding(4) var<storage, read> src_qkv: array<V>;
@group(0) @binding(2) var<storage, read> src: array<V>;
@group(0) @binding(3) var<storage, read> src_k: array<V>;
@group(0) @binding(4) var<storage, read> src_v: array<V>;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

// Element e of a row-major [rest, b, a, c] array as (c index, a index, b index, rest index),
// with one integer division per level (llvmpipe divides lane by lane; remainders by subtraction).
fn unravel_cab(e: u32) -> vec4<u32> {
    let e1 = e / lp.c;
    let e2 = e1 / lp.a;
    let r = e2 / lp.b;
    return vec4<u32>(e - e1 * lp.c, e1 - e2 * lp.a, e2 - r * lp.b, r);
}

// qkv [B, T, 3, H, D] -> q, k, v [B, H, T, D]; a = T, b = H, c = D. Index in qkv of q's
// element e (k's and v's are H * D and 2 H * D further).
fn split_qkv_source(e: u32) -> u32 {
    let i = unravel_cab(e);
    let hd = lp.b * lp.c;
    return (i.w * lp.a + i.y) * 3u * hd + i.z * lp.c + i.x;
}

@compute @workgroup_size(256)
fn split_qkv(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_id(gid, nwg);
    if e >= lp.n {
        return;
    }
    let s = split_qkv_source(e);
    let hd = lp.b * lp.c;
    dst[e] = src_qkv[s];
    dst_k[e] = src_qkv[s + hd];
    dst_v[e] = src_qkv[s + 2u * hd];
}

// dq, dk, dv [B, H, T, D] -> dqkv [B, T, 3, H, D]; a = T, b = H, c = D: split_qkv backwards,
// one invocation per element of dq (lp.n = B * H * T * D) writing its three places.
@compute @workgroup_size(256)
fn merge_qkv(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_id(gid, nwg);
    if e >= lp.n {
        return;
    }
    let s = split_qkv_source(e);
    let hd = lp.b * lp.c;
    dst[s] = src[e];
    dst[s + hd] = src_k[e];
    dst[s + 2u * hd] = src_v[e];
}

// in [B, N1, N2, D] -> out [B, N2, N1, D]; a = N1, b = N2, c = D.
@compute @workgroup_size(256)
fn swap12(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_id(gid, nwg);
    if e >= lp.n {
        return;
    }
    let i = unravel_cab(e);
    dst[e] = src[((i.w * lp.a + i.y) * lp.b + i.z) * lp.c + i.x];
}

// cache [BH, Tcap, D] rows at..at+Tn <- new [BH, Tn, D]; a = Tn, b = Tcap, c = D, d = at.
@compute @workgroup_size(256)
fn cache_write(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_id(gid, nwg);
    if e >= lp.n {
        return;
    }
    let e1 = e / lp.c;
    let bh = e1 / lp.a;
    dst[(bh * lp.b + lp.d + e1 - bh * lp.a) * lp.c + e - e1 * lp.c] = src[e];
}
