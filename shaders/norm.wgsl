// Row-wise normalisation (RMSNorm, LayerNorm), softmax, adaLN modulation and gated residuals.
// Row kernels use one invocation per row: barrier-free, which CPU drivers favour.

struct Params {
    rows: u32,   // rows (norm, softmax) or elements (broadcast kernels) or G*C (group_dot)
    d: u32,      // row width / channels C
    t: u32,      // tokens per group (broadcast kernels)
    flag: u32,   // 1: weight present (norms) / second operand used (group_dot) / has mean
    eps: f32,    // epsilon (norms) or beta (bcast_mul)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> out2: array<f32>;
@group(0) @binding(3) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read> w: array<f32>;
@group(0) @binding(5) var<storage, read> v: array<f32>;
@group(0) @binding(6) var<storage, read> u: array<f32>;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

fn weight(c: u32) -> f32 {
    if params.flag == 1u { return w[c]; }
    return 1.0;
}

// out = x * rstd * w; out2[row] = rstd.   bindings: out, out2, x, w
@compute @workgroup_size(64)
fn rms_norm(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = linear_id(gid, nwg);
    if row >= params.rows { return; }
    let base = row * params.d;
    var ss = 0.0;
    for (var c = 0u; c < params.d; c++) { let e = x[base + c]; ss += e * e; }
    let r = inverseSqrt(ss / f32(params.d) + params.eps);
    for (var c = 0u; c < params.d; c++) { out[base + c] = x[base + c] * r * weight(c); }
    out2[row] = r;
}

// dx = r*(w*dy) - r^3/D * x * sum(w*dy*x).   bindings: out (dx), out2 (unused), x, w, v = rstd, u = dy
@compute @workgroup_size(64)
fn rms_norm_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = linear_id(gid, nwg);
    if row >= params.rows { return; }
    let base = row * params.d;
    let r = v[row];
    var dot = 0.0;
    for (var c = 0u; c < params.d; c++) { dot += weight(c) * u[base + c] * x[base + c]; }
    let k = r * r * r * dot / f32(params.d);
    for (var c = 0u; c < params.d; c++) {
        out[base + c] = r * weight(c) * u[base + c] - k * x[base + c];
    }
}

// y = (x - mean) * rstd * w + b; out2 = [mean | rstd] (2 * rows).   bindings: out, out2, x, w, v = bias
@compute @workgroup_size(64)
fn layer_norm(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = linear_id(gid, nwg);
    if row >= params.rows { return; }
    let base = row * params.d;
    var s = 0.0;
    for (var c = 0u; c < params.d; c++) { s += x[base + c]; }
    let mean = s / f32(params.d);
    var ss = 0.0;
    for (var c = 0u; c < params.d; c++) { let e = x[base + c] - mean; ss += e * e; }
    let r = inverseSqrt(ss / f32(params.d) + params.eps);
    for (var c = 0u; c < params.d; c++) {
        var y = (x[base + c] - mean) * r;
        if params.flag == 1u { y = y * w[c] + v[c]; }
        out[base + c] = y;
    }
    out2[row] = mean;
    out2[params.rows + row] = r;
}

// dx = r * (g - mean(g) - xhat * mean(g * xhat)), g = w * dy.   bindings: out, out2 (unused), x, w, v = [mean|rstd], u = dy
@compute @workgroup_size(64)
fn layer_norm_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = linear_id(gid, nwg);
    if row >= params.rows { return; }
    let base = row * params.d;
    let mean = v[row];
    let r = v[params.rows + row];
    var sg = 0.0;
    var sgx = 0.0;
    for (var c = 0u; c < params.d; c++) {
        let g = weight(c) * u[base + c];
        sg += g;
        sgx += g * (x[base + c] - mean) * r;
    }
    let mg = sg / f32(params.d);
    let mgx = sgx / f32(params.d);
    for (var c = 0u; c < params.d; c++) {
        let xhat = (x[base + c] - mean) * r;
        out[base + c] = r * (weight(c) * u[base + c] - mg - xhat * mgx);
    }
}

// Norm weight gradient: out[c] = sum_r dy[r,c] * (x[r,c] - mean[r]) * rstd[r]
// (mean = 0 unless flag == 1). bindings: out, out2 (unused), x, w = dy, v = [mean|rstd] or rstd
@compute @workgroup_size(64)
fn norm_weight_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = linear_id(gid, nwg);
    if c >= params.d { return; }
    var s = 0.0;
    for (var r = 0u; r < params.rows; r++) {
        var mean = 0.0;
        var rstd = v[r];
        if params.flag == 1u {
            mean = v[r];
            rstd = v[params.rows + r];
        }
        s += w[r * params.d + c] * (x[r * params.d + c] - mean) * rstd;
    }
    out[c] = s;
}

// Row softmax.   bindings: out, x
@compute @workgroup_size(64)
fn softmax(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = linear_id(gid, nwg);
    if row >= params.rows { return; }
    let base = row * params.d;
    var m = x[base];
    for (var c = 1u; c < params.d; c++) { m = max(m, x[base + c]); }
    var s = 0.0;
    for (var c = 0u; c < params.d; c++) { s += exp(x[base + c] - m); }
    let inv = 1.0 / s;
    for (var c = 0u; c < params.d; c++) { out[base + c] = exp(x[base + c] - m) * inv; }
}

// dx = y * (dy - sum(y * dy)).   bindings: out, x = y, w = dy
@compute @workgroup_size(64)
fn softmax_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = linear_id(gid, nwg);
    if row >= params.rows { return; }
    let base = row * params.d;
    var dot = 0.0;
    for (var c = 0u; c < params.d; c++) { dot += x[base + c] * w[base + c]; }
    for (var c = 0u; c < params.d; c++) { out[base + c] = x[base + c] * (w[base + c] - dot); }
}

// Group index of element i of a [G, T, C] tensor, and its channel.
fn group_channel(i: u32) -> u32 {
    return (i / (params.t * params.d)) * params.d + i % params.d;
}

// out = x * (1 + scale[g]) + shift[g].   bindings: out, x, w = shift, v = scale; rows = G*T*C
@compute @workgroup_size(64)
fn modulate(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= params.rows { return; }
    let gc = group_channel(i);
    out[i] = x[i] * (1.0 + v[gc]) + w[gc];
}

// out = x + gate[g] * h.   bindings: out, x, w = gate, v = h
@compute @workgroup_size(64)
fn gated_residual(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= params.rows { return; }
    out[i] = x[i] + w[group_channel(i)] * v[i];
}

// out = x * (eps + s[g]) (eps used as beta).   bindings: out, x, w = s
@compute @workgroup_size(64)
fn bcast_mul(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= params.rows { return; }
    out[i] = x[i] * (params.eps + w[group_channel(i)]);
}

// out[g, c] = sum_t x[g,t,c] * (w[g,t,c] if flag == 1 else 1); rows = G*C.   bindings: out, x, w
@compute @workgroup_size(64)
fn group_dot(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let gc = linear_id(gid, nwg);
    if gc >= params.rows { return; }
    let g = gc / params.d;
    let c = gc % params.d;
    var s = 0.0;
    for (var t = 0u; t < params.t; t++) {
        let i = (g * params.t + t) * params.d + c;
        if params.flag == 1u { s += x[i] * w[i]; } else { s += x[i]; }
    }
    out[gc] = s;
}
