// adaLN modulation and gated residuals of the diffusion head: x [G, T, C] with per-group [G, C]
// vectors broadcast over the T tokens of group g, forward and backward.
//
// Bindings are named for what they hold; names that share a binding number belong to different
// entry points. The backward kernels read the forward's saved inputs (saved_*) and dy.
// Threads: 256 per workgroup, id = gid.x + gid.y * nwg.x * 256.
// VEC (1 or 4) is the element width: V is f32 or vec4<f32> (vec4s when C is a multiple of 4),
// and params.n and params.c count V elements.

// struct Params: generated from the Rust `uniform!` in crates/bitdance/src/ops/modulate/mod.rs
// (its fields are documented there) and prepended to this source.

@group(0) @binding(0) var<uniform> params: Params;
// Forward: y = f(x, per-group operands).
@group(0) @binding(1) var<storage, read_write> y: array<V>;
@group(0) @binding(2) var<storage, read> x: array<V>;
@group(0) @binding(3) var<storage, read> shift: array<V>;
@group(0) @binding(4) var<storage, read> scale: array<V>;
@group(0) @binding(3) var<storage, read> gate: array<V>;
@group(0) @binding(4) var<storage, read> h: array<V>;
// Backward: the gradients first, then the saved inputs and dy.
@group(0) @binding(1) var<storage, read_write> dx: array<V>;
@group(0) @binding(2) var<storage, read_write> dshift: array<V>;
@group(0) @binding(3) var<storage, read_write> dscale: array<V>;
@group(0) @binding(2) var<storage, read_write> dgate: array<V>;
@group(0) @binding(3) var<storage, read_write> dh: array<V>;
@group(0) @binding(4) var<storage, read> saved_x: array<V>;
@group(0) @binding(5) var<storage, read> saved_scale: array<V>;
@group(0) @binding(4) var<storage, read> saved_gate: array<V>;
@group(0) @binding(5) var<storage, read> saved_h: array<V>;
@group(0) @binding(6) var<storage, read> dy: array<V>;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

// Index in [G, C] of element i of [G, T, C].
fn group_index(i: u32) -> u32 {
    let c = params.c;
    let gt = i / c;
    return gt / params.tokens * c + (i - gt * c);
}

// First element in [G, T, C] of the (g, c) pair gc of [G, C] (token k is k * C further).
fn group_first(gc: u32) -> u32 {
    let c = params.c;
    let g = gc / c;
    return g * params.tokens * c + (gc - g * c);
}

// y = x * (1 + scale) + shift.
@compute @workgroup_size(256)
fn modulate(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= params.n { return; }
    let gc = group_index(i);
    y[i] = x[i] * (1.0 + scale[gc]) + shift[gc];
}

// One thread per (g, c), looping over the T tokens (deterministic sums).
@compute @workgroup_size(256)
fn modulate_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let gc = linear_id(gid, nwg);
    if gc >= params.n { return; }
    let first = group_first(gc);
    let a = 1.0 + saved_scale[gc];
    var ds = V(0.0);
    var dsc = V(0.0);
    for (var k = 0u; k < params.tokens; k++) {
        let i = first + k * params.c;
        let g = dy[i];
        dx[i] = g * a;
        ds += g;
        dsc += g * saved_x[i];
    }
    dshift[gc] = ds;
    dscale[gc] = dsc;
}

// y = x + gate * h.
@compute @workgroup_size(256)
fn gated_residual(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= params.n { return; }
    y[i] = x[i] + gate[group_index(i)] * h[i];
}

// One thread per (g, c): dx = dy, dgate = sum over tokens of dy * h, dh = dy * gate.
@compute @workgroup_size(256)
fn gated_residual_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let gc = linear_id(gid, nwg);
    if gc >= params.n { return; }
    let first = group_first(gc);
    let g_gate = saved_gate[gc];
    var dg = V(0.0);
    for (var k = 0u; k < params.tokens; k++) {
        let i = first + k * params.c;
        let g = dy[i];
        dx[i] = g;
        dh[i] = g * g_gate;
        dg += g * saved_h[i];
    }
    dgate[gc] = dg;
}
