// Scaled dot-product attention, one invocation per query (forward, dq) or per key (dk, dv),
// with an online softmax: barrier-free, any sequence length. q [B, H, Tq, D];
// k, v [B, H, Tcap, D] of which keys 0..kv_len are used (a KV cache may be larger).
// Masks: 0 full, 1 causal (key j visible to query i when j <= q_offset + i), 2 block-causal
// (causal, plus full visibility inside each group of `block` positions from `start`).
// Define DMAX: the private-array size, >= D.

struct Params {
    bh: u32,        // B * H
    tq: u32,
    tcap: u32,
    d: u32,
    kv_len: u32,
    q_offset: u32,
    mode: u32,
    start: u32,
    block: u32,
    scale: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> out2: array<f32>;
@group(0) @binding(3) var<storage, read> q: array<f32>;
@group(0) @binding(4) var<storage, read> k: array<f32>;
@group(0) @binding(5) var<storage, read> v: array<f32>;
@group(0) @binding(6) var<storage, read> o: array<f32>;
@group(0) @binding(7) var<storage, read> dout: array<f32>;
@group(0) @binding(8) var<storage, read> stats: array<f32>;   // [lse | Dvec], each B*H*Tq

fn visible(qp: u32, j: u32) -> bool {
    if j >= params.kv_len { return false; }
    if params.mode == 0u { return true; }
    if j <= qp { return true; }
    if params.mode == 2u && qp >= params.start && j >= params.start {
        return (j - params.start) / params.block == (qp - params.start) / params.block;
    }
    return false;
}

// One past the last key query position qp may see.
fn key_end(qp: u32) -> u32 {
    if params.mode == 0u { return params.kv_len; }
    var end = qp + 1u;
    if params.mode == 2u && qp >= params.start {
        end = max(end, params.start + ((qp - params.start) / params.block + 1u) * params.block);
    }
    return min(end, params.kv_len);
}

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

// out = softmax(scale q kᵀ + mask) v; out2 = lse.   bindings: out, out2, q, k, v
@compute @workgroup_size(64)
fn attention(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    if t >= params.bh * params.tq { return; }
    let bh = t / params.tq;
    let i = t % params.tq;
    let qp = params.q_offset + i;
    let d = params.d;
    var qv: array<f32, DMAX>;
    var acc: array<f32, DMAX>;
    for (var c = 0u; c < d; c++) {
        qv[c] = q[t * d + c] * params.scale;
        acc[c] = 0.0;
    }
    var m = -3.0e38;
    var l = 0.0;
    let kbase = bh * params.tcap;
    let end = key_end(qp);
    for (var j = 0u; j < end; j++) {
        if !visible(qp, j) { continue; }
        var s = 0.0;
        for (var c = 0u; c < d; c++) { s += qv[c] * k[(kbase + j) * d + c]; }
        let m_new = max(m, s);
        let correction = exp(m - m_new);
        let p = exp(s - m_new);
        l = l * correction + p;
        for (var c = 0u; c < d; c++) { acc[c] = acc[c] * correction + p * v[(kbase + j) * d + c]; }
        m = m_new;
    }
    let inv = select(0.0, 1.0 / l, l > 0.0);
    for (var c = 0u; c < d; c++) { out[t * d + c] = acc[c] * inv; }
    out2[t] = m + log(l);
}

// Dvec = rowsum(dout * o) per query.   bindings: out, o, dout
@compute @workgroup_size(64)
fn attention_dvec(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    if t >= params.bh * params.tq { return; }
    var s = 0.0;
    for (var c = 0u; c < params.d; c++) { s += dout[t * params.d + c] * o[t * params.d + c]; }
    out[t] = s;
}

// dq_i = scale * sum_j p_ij (dout_i . v_j - D_i) k_j.   bindings: out, q, k, v, dout, stats
@compute @workgroup_size(64)
fn attention_dq(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    if t >= params.bh * params.tq { return; }
    let bh = t / params.tq;
    let i = t % params.tq;
    let qp = params.q_offset + i;
    let d = params.d;
    let n = params.bh * params.tq;
    let lse = stats[t];
    let dvec = stats[n + t];
    var acc: array<f32, DMAX>;
    for (var c = 0u; c < d; c++) { acc[c] = 0.0; }
    let kbase = bh * params.tcap;
    let end = key_end(qp);
    for (var j = 0u; j < end; j++) {
        if !visible(qp, j) { continue; }
        var s = 0.0;
        var dp = 0.0;
        for (var c = 0u; c < d; c++) {
            s += q[t * d + c] * k[(kbase + j) * d + c];
            dp += dout[t * d + c] * v[(kbase + j) * d + c];
        }
        let p = exp(s * params.scale - lse);
        let ds = p * (dp - dvec);
        for (var c = 0u; c < d; c++) { acc[c] += ds * k[(kbase + j) * d + c]; }
    }
    for (var c = 0u; c < d; c++) { out[t * d + c] = acc[c] * params.scale; }
}

// Per key j: dv_j = sum_i p_ij dout_i, dk_j = scale * sum_i p_ij (dout_i . v_j - D_i) q_i;
// keys at or beyond kv_len get zeros.   bindings: out (dk), out2 (dv), q, k, v, dout, stats
@compute @workgroup_size(64)
fn attention_dkv(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    if t >= params.bh * params.tcap { return; }
    let bh = t / params.tcap;
    let j = t % params.tcap;
    let d = params.d;
    let n = params.bh * params.tq;
    var dk: array<f32, DMAX>;
    var dv: array<f32, DMAX>;
    for (var c = 0u; c < d; c++) { dk[c] = 0.0; dv[c] = 0.0; }
    if j < params.kv_len {
        for (var i = 0u; i < params.tq; i++) {
            let qp = params.q_offset + i;
            if !visible(qp, j) { continue; }
            let qi = bh * params.tq + i;
            var s = 0.0;
            var dp = 0.0;
            for (var c = 0u; c < d; c++) {
                s += q[qi * d + c] * k[t * d + c];
                dp += dout[qi * d + c] * v[t * d + c];
            }
            let p = exp(s * params.scale - stats[qi]);
            let ds = p * (dp - stats[n + qi]);
            for (var c = 0u; c < d; c++) {
                dv[c] += p * dout[qi * d + c];
                dk[c] += ds * q[qi * d + c];
            }
        }
    }
    for (var c = 0u; c < d; c++) {
        out[t * d + c] = dk[c] * params.scale;
        out2[t * d + c] = dv[c];
    }
}

// Head layout: x [B, T, n_chunks * H * D] chunk `start` -> out [B, H, T, D] (split), or the
// reverse into `out` (merge). Here tq = T, tcap = n_chunks, kv_len = H, q_offset = chunk.
@compute @workgroup_size(64)
fn split_heads(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_id(gid, nwg);
    let h_count = params.kv_len;
    let total = params.bh / h_count * h_count * params.tq * params.d;
    if e >= total { return; }
    let c = e % params.d;
    let tt = (e / params.d) % params.tq;
    let h = (e / (params.d * params.tq)) % h_count;
    let b = e / (params.d * params.tq * h_count);
    let width = params.tcap * h_count * params.d;
    out[e] = q[(b * params.tq + tt) * width + (params.q_offset * h_count + h) * params.d + c];
}

@compute @workgroup_size(64)
fn merge_heads(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_id(gid, nwg);
    let h_count = params.kv_len;
    let total = params.bh / h_count * h_count * params.tq * params.d;
    if e >= total { return; }
    let c = e % params.d;
    let tt = (e / params.d) % params.tq;
    let h = (e / (params.d * params.tq)) % h_count;
    let b = e / (params.d * params.tq * h_count);
    let width = params.tcap * h_count * params.d;
    out[(b * params.tq + tt) * width + (params.q_offset * h_count + h) * params.d + c] = q[e];
}
