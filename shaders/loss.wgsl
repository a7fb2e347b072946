// Loss kernels: MSE and L1 partial sums and gradients. The output binding is u32 (f32 results
// stored as their bits) so one declaration also serves the u32 code indices of lfq.wgsl, which
// is appended to this file for the quantizer's kernels.
// Linear id = gid.x + gid.y * nwg.x * 256, as in elementwise.wgsl.

// struct Params: generated from the Rust `uniform!` in crates/bitdance/src/ops/loss/mod.rs
// (its fields are documented there) and prepended to this source.

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> y: array<f32>;
@group(0) @binding(4) var<storage, read> g: array<f32>;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

fn put(i: u32, v: f32) {
    out[i] = bitcast<u32>(v);
}

// Partial sums of (x - y)^2 over the p1 elements: out[q] = sum over i = q, q + p2, ... ;
// n = p2 parts (reduced further by data.wgsl's reduce_cols).
@compute @workgroup_size(256)
fn mse_partial(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let q = linear_id(gid, nwg);
    if q >= params.n { return; }
    var acc = 0.0;
    for (var i = q; i < params.p1; i += params.p2) {
        let d = x[i] - y[i];
        acc += d * d;
    }
    put(q, acc);
}

// Partial sums of |x - y|, laid out as mse_partial.
@compute @workgroup_size(256)
fn l1_partial(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let q = linear_id(gid, nwg);
    if q >= params.n { return; }
    var acc = 0.0;
    for (var i = q; i < params.p1; i += params.p2) { acc += abs(x[i] - y[i]); }
    put(q, acc);
}

// out = a * sign(x - y) * g[0]  (a = ±1 / numel; the subgradient at x = y is 0). n elements.
@compute @workgroup_size(256)
fn l1_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i < params.n { put(i, params.a * sign(x[i] - y[i]) * g[0]); }
}

// out = a * (x - y) * g[0]  (a = ±2 / numel; g = upstream scalar gradient). n elements.
@compute @workgroup_size(256)
fn mse_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i < params.n { put(i, params.a * (x[i] - y[i]) * g[0]); }
}
