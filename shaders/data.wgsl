// Data kernels: strided region copies (slice, concat, write_slice, slice backward), row gathers
// (embedding, permutations) with their deterministic scatter-add backward, and column sums.
// Every array is u32 so copies are bit-exact for f32 and u32 tensors alike (moving u32 values
// through f32 registers could flush the denormal patterns); arithmetic kernels bitcast.
// Linear id = gid.x + gid.y * nwg.x * 256, as in elementwise.wgsl.
// VEC (1 or 4) is the element width of copy_region and reduce_cols: VU is u32 or vec4<u32>
// (vec4s for runs, offsets and column counts that are multiples of 4); the other kernels move
// single words.

// struct Params: generated from the Rust `uniform!` in crates/bitdance/src/ops/data/mod.rs
// (its fields are documented there) and prepended to this source.

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@group(0) @binding(2) var<storage, read> src: array<u32>;
@group(0) @binding(3) var<storage, read> idx: array<u32>;
// The same arrays as VU elements (the sizes and offsets of those kernels then count them).
@group(0) @binding(1) var<storage, read_write> dstv: array<VU>;
@group(0) @binding(2) var<storage, read> srcv: array<VU>;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

// src viewed [outer, p3], dst viewed [outer, p5] (VU elements):
// dst[o, p6 + m] = src[o, p4 + m] for m < p2. n = outer * p2. Only the region is written (dst
// may be updated in place). Returns (dst index, src index) of work item i.
fn region_index(i: u32) -> vec2<u32> {
    // A remainder by subtraction: llvmpipe has no vector integer division (each `/` or `%` is
    // a per-lane loop).
    let o = i / params.p2;
    let m = i - o * params.p2;
    return vec2<u32>(o * params.p5 + params.p6 + m, o * params.p3 + params.p4 + m);
}

@compute @workgroup_size(256)
fn copy_region(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= params.n { return; }
    let ix = region_index(i);
    dstv[ix.x] = srcv[ix.y];
}

// Writes all of dst viewed [outer, p5, p1]: src (viewed [outer, p2, p1]) at axis offset p6,
// zero elsewhere. n = outer * p5 * p1.
@compute @workgroup_size(256)
fn pad_region(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= params.n { return; }
    let inner = params.p1;
    let len = params.p2;
    let start = params.p6;
    let t = i / inner;
    let k = i - t * inner;
    let o = t / params.p5;
    let m = t - o * params.p5;
    var v = 0u;
    if m >= start && m < start + len {
        v = src[(o * len + m - start) * inner + k];
    }
    dst[i] = v;
}

// dst[r, k] = src[idx[r] - p3, k] for rows of width p1 taken from a source of p2 rows (rows
// p3..p3 + p2 of a larger table); an index outside yields a zero row (the launcher cannot see
// indices; below p3 the u32 difference wraps to a large value). n = rows * p1.
@compute @workgroup_size(256)
fn gather_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= params.n { return; }
    let width = params.p1;
    let row = idx[i / width] - params.p3;
    var v = 0u;
    if row < params.p2 {
        v = src[row * width + i % width];
    }
    dst[i] = v;
}

// dst [p2, p1] (f32) = scatter-add of src = dy [p3, p1] (f32) into rows idx[r] - p5. Thread
// (b, c) owns column c of the rows v with v % p4 == b and adds dy rows in the order
// r = 0, 1, ...: no atomics, deterministic. Indices outside p5..p5 + p2 are skipped. n = p4 * p1.
@compute @workgroup_size(256)
fn embedding_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= params.n { return; }
    let width = params.p1;
    let vocab = params.p2;
    let blocks = params.p4;
    let c = i % width;
    let b = i / width;
    for (var v = b; v < vocab; v += blocks) {
        dst[v * width + c] = 0u;
    }
    for (var r = 0u; r < params.p3; r++) {
        let v = idx[r] - params.p5;
        if v < vocab && v % blocks == b {
            let o = v * width + c;
            dst[o] = bitcast<u32>(bitcast<f32>(dst[o]) + bitcast<f32>(src[r * width + c]));
        }
    }
}

// Partial column sums: src viewed [p2, p1] (f32, p1 counting VU elements), p3 parts;
// dst[p4 + q * p1 + c] = scale * sum over rows r = q, q + p3, q + 2 p3, ... of f(src[r, c]),
// f(v) = v * v when p5 == 1 else v. Consecutive threads read consecutive elements.
// n = p3 * p1.
@compute @workgroup_size(256)
fn reduce_cols(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= params.n { return; }
    let cols = params.p1;
    let first = i / cols;
    let c = i - first * cols;
    let square = params.p5 == 1u;
    var acc = V(0.0);
    for (var r = first; r < params.p2; r += params.p3) {
        let v = bitcast<V>(srcv[r * cols + c]);
        acc += select(v, v * v, square);
    }
    dstv[params.p4 + i] = bitcast<VU>(params.scale * acc);
}
