// Data movement and reductions: row gathers (embedding), their deterministic scatter-add,
// strided block copies (slice / concat / in-place writes), column sums and two-stage sums.

struct Params {
    p0: u32,
    p1: u32,
    p2: u32,
    p3: u32,
    p4: u32,
    p5: u32,
    p6: u32,
    f0: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> idx: array<u32>;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

// out[i, d] = x[idx[i], d]; p0 = rows out, p1 = D, p2 = V. Indices >= V give zeros.
@compute @workgroup_size(256)
fn gather_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    if t >= params.p0 * params.p1 { return; }
    let i = t / params.p1;
    let d = t % params.p1;
    let row = idx[i];
    if row < params.p2 {
        out[t] = x[row * params.p1 + d];
    } else {
        out[t] = 0.0;
    }
}

// out[idx[i], d] += x[i, d] in index order, one invocation per column d (deterministic);
// out must be zeroed first. p0 = rows of x, p1 = D, p2 = V.
@compute @workgroup_size(256)
fn scatter_add_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let d = linear_id(gid, nwg);
    if d >= params.p1 { return; }
    for (var i = 0u; i < params.p0; i++) {
        let row = idx[i];
        if row < params.p2 {
            out[row * params.p1 + d] += x[i * params.p1 + d];
        }
    }
}

// Block copy over [outer, len, inner] views: out[o, dst_start + j, i] = x[o, src_start + j, i].
// p0 = outer, p1 = len, p2 = inner, p3 = src_dim, p4 = src_start, p5 = dst_dim, p6 = dst_start.
@compute @workgroup_size(256)
fn copy_block(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    if t >= params.p0 * params.p1 * params.p2 { return; }
    let i = t % params.p2;
    let j = (t / params.p2) % params.p1;
    let o = t / (params.p2 * params.p1);
    out[(o * params.p5 + params.p6 + j) * params.p2 + i] = x[(o * params.p3 + params.p4 + j) * params.p2 + i];
}

// out[c] = sum_r x[r, c], rows in order; p0 = rows, p1 = columns.
@compute @workgroup_size(256)
fn sum_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = linear_id(gid, nwg);
    if c >= params.p1 { return; }
    var s = 0.0;
    for (var r = 0u; r < params.p0; r++) {
        s += x[r * params.p1 + c];
    }
    out[c] = s;
}

const CHUNK: u32 = 4096u;
var<workgroup> partial: array<f32, 256>;

// Stage 1: out[p1 + g] = sum over chunk g of x (squared when p2 == 1); p0 = n.
@compute @workgroup_size(256)
fn sum_partials(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = wid.x + wid.y * nwg.x;
    let start = g * CHUNK;
    var s = 0.0;
    for (var j = lid.x; j < CHUNK; j += 256u) {
        let k = start + j;
        if k < params.p0 {
            let v = x[k];
            s += select(v, v * v, params.p2 == 1u);
        }
    }
    partial[lid.x] = s;
    workgroupBarrier();
    for (var w = 128u; w > 0u; w >>= 1u) {
        if lid.x < w {
            partial[lid.x] += partial[lid.x + w];
        }
        workgroupBarrier();
    }
    if lid.x == 0u {
        out[params.p1 + g] = partial[0];
    }
}

// Stage 2 (one workgroup): out[0] = f0 * sum of x[0..p0] (the partials).
@compute @workgroup_size(256)
fn sum_final(@builtin(local_invocation_id) lid: vec3<u32>) {
    var s = 0.0;
    for (var j = lid.x; j < params.p0; j += 256u) {
        s += x[j];
    }
    partial[lid.x] = s;
    workgroupBarrier();
    for (var w = 128u; w > 0u; w >>= 1u) {
        if lid.x < w {
            partial[lid.x] += partial[lid.x + w];
        }
        workgroupBarrier();
    }
    if lid.x == 0u {
        out[0] = params.f0 * partial[0];
    }
}
