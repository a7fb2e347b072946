// Element-wise kernels over flat f32 arrays. Linear id = gid.x + gid.y * nwg.x * 256.
// VEC (1 or 4) is the element width: V is f32 or vec4<f32>, and n and m count V elements
// (vec4s when sizes and half widths are multiples of 4: llvmpipe gathers each storage load lane
// by lane, and a vec4 costs about what a scalar does).

// struct Params: generated from the Rust `uniform!` in crates/bitdance/src/ops/elementwise/mod.rs
// (its fields are documented there) and prepended to this source.

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<V>;
@group(0) @binding(2) var<storage, read> a: array<V>;
@group(0) @binding(3) var<storage, read> b: array<V>;
// fill writes bit patterns (f32 or u32 tensors) without passing them through float registers.
@group(0) @binding(1) var<storage, read_write> out_bits: array<VU>;
// scale_by_scalar's factor.
@group(0) @binding(3) var<storage, read> factor: array<f32>;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

fn sigmoid(x: V) -> V {
    return 1.0 / (1.0 + exp(-x));
}

@compute @workgroup_size(256)
fn fill(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i < params.n { out_bits[i] = VU(params.bits); }
}

// out = alpha * a + beta * b
@compute @workgroup_size(256)
fn axpby(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i < params.n { out[i] = params.alpha * a[i] + params.beta * b[i]; }
}

// out = alpha * out + beta * a   (in place: accumulation, EMA)
@compute @workgroup_size(256)
fn axpby_inplace(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i < params.n { out[i] = params.alpha * out[i] + params.beta * a[i]; }
}

// out = a * b
@compute @workgroup_size(256)
fn mul(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i < params.n { out[i] = a[i] * b[i]; }
}

// out = alpha * a
@compute @workgroup_size(256)
fn scale(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i < params.n { out[i] = params.alpha * a[i]; }
}

// out[i] = a[i] + b[i % m]   (row bias broadcast)
@compute @workgroup_size(256)
fn add_bcast(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i < params.n { out[i] = a[i] + b[i % params.m]; }
}

@compute @workgroup_size(256)
fn silu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i < params.n { let x = a[i]; out[i] = x * sigmoid(x); }
}

// out = dy * silu'(x); a = x, b = dy
@compute @workgroup_size(256)
fn silu_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i < params.n {
        let x = a[i];
        let s = sigmoid(x);
        out[i] = b[i] * s * (1.0 + x * (1.0 - s));
    }
}

// Element i of a [rows, m] tensor as the index of its gate partner in [rows, 2m] (row * 2m + col);
// the other partner is m further.
fn gate_index(i: u32) -> u32 {
    return i + (i / params.m) * params.m;
}

// a: [rows, 2m] -> out: [rows, m] = silu(a[:, :m]) * a[:, m:]
@compute @workgroup_size(256)
fn swiglu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i < params.n {
        let at = gate_index(i);
        let h1 = a[at];
        out[i] = h1 * sigmoid(h1) * a[at + params.m];
    }
}

// a = x [rows, 2m], b = dy [rows, m] -> out = dx [rows, 2m]; n counts dy elements: each
// invocation writes both halves' gradients of one (row, j), sharing the loads and the sigmoid.
@compute @workgroup_size(256)
fn swiglu_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i < params.n {
        let at = gate_index(i);
        let h1 = a[at];
        let h2 = a[at + params.m];
        let dy = b[i];
        let s = sigmoid(h1);
        out[at] = dy * h2 * s * (1.0 + h1 * (1.0 - s));
        out[at + params.m] = dy * h1 * s;
    }
}

// out = alpha * factor[0] * a   (scaling by a GPU-resident scalar, e.g. an upstream loss gradient)
@compute @workgroup_size(256)
fn scale_by_scalar(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i < params.n { out[i] = params.alpha * factor[0] * a[i]; }
}
