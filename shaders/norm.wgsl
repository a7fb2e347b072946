// Row-wise normalisations (RMSNorm, LayerNorm) with their parameter gradients, row and column
// sums, row softmax, and the row statistics of AdaptiveGroupNorm.
//
// Binding convention: outputs first (o1, o2, o3: read_write), then inputs (iN: read). Variables
// that share a binding number are never used by the same entry point.
// Row kernels run one workgroup of ROW_WG threads per row: row = wid.x + wid.y * nwg.x.
// ROW_WG is a define (8 on CPU adapters, where fewer invocations per barrier win; 64 on GPUs).
// The row reductions sum_a, sum_b, sum_ab and max_a come from a second file appended to this
// one: norm_reduce.wgsl (workgroup memory and a barrier) or norm_reduce_sg.wgsl (subgroup
// operations, for CPU adapters whose subgroups hold a whole ROW_WG row).
// Element kernels run 256 threads per workgroup: id = gid.x + gid.y * nwg.x * 256.
// VEC (1 or 4) is the element width of the row kernels: V is f32 or vec4<f32>
// (vec4s when the row length is a multiple of 4: a quarter of the loads), and params.d
// and the element counts in params.rows count V elements.

struct Params {
    rows: u32,   // rows (row kernels), elements or (group, column) pairs (element kernels)
    d: u32,      // row length / channels C, in V elements
    eps: f32,
    aux: u32,    // rows per chunk (param grads)
    total: u32,  // rows of the input of the param-grad and column-sum kernels
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> o1: array<f32>;
@group(0) @binding(2) var<storage, read_write> o2: array<f32>;
@group(0) @binding(3) var<storage, read_write> o3: array<f32>;
@group(0) @binding(2) var<storage, read> i2: array<f32>;
@group(0) @binding(3) var<storage, read> i3: array<f32>;
@group(0) @binding(4) var<storage, read> i4: array<f32>;
@group(0) @binding(5) var<storage, read> i5: array<f32>;
@group(0) @binding(6) var<storage, read> i6: array<f32>;
// The same bindings as V elements, for rows and [G, T, C] tensors (per-row statistics stay f32).
@group(0) @binding(1) var<storage, read_write> o1v: array<V>;
@group(0) @binding(2) var<storage, read_write> o2v: array<V>;
@group(0) @binding(3) var<storage, read_write> o3v: array<V>;
@group(0) @binding(2) var<storage, read> i2v: array<V>;
@group(0) @binding(3) var<storage, read> i3v: array<V>;
@group(0) @binding(4) var<storage, read> i4v: array<V>;
@group(0) @binding(5) var<storage, read> i5v: array<V>;
@group(0) @binding(6) var<storage, read> i6v: array<V>;

fn row_id(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

// The row kernels walk a row as params.d elements of V (the row has params.d * VEC floats),
// each lane striding by ROW_WG.

// o1 = y [rows, d], o2 = rstd [rows]; i3 = x, i4 = w [d]
@compute @workgroup_size(ROW_WG)
fn rms_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let row = row_id(wid, nwg);
    if row >= params.rows { return; }
    let n = params.d;
    let base = row * n;
    var ss = 0.0;
    for (var j = lid; j < n; j += ROW_WG) { let v = i3v[base + j]; ss += hsum(v * v); }
    let r = inverseSqrt(sum_a(lid, ss) / f32(n * VEC) + params.eps);
    for (var j = lid; j < n; j += ROW_WG) { o1v[base + j] = i3v[base + j] * r * i4v[j]; }
    if lid == 0u { o2[row] = r; }
}

// o1 = y, o2 = mean [rows], o3 = rstd [rows]; i4 = x, i5 = w [d], i6 = b [d]
@compute @workgroup_size(ROW_WG)
fn layer_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let row = row_id(wid, nwg);
    if row >= params.rows { return; }
    let n = params.d;
    let base = row * n;
    var s = V(0.0);
    for (var j = lid; j < n; j += ROW_WG) { s += i4v[base + j]; }
    let mean = sum_a(lid, hsum(s)) / f32(n * VEC);
    var ss = 0.0;
    for (var j = lid; j < n; j += ROW_WG) { let v = i4v[base + j] - mean; ss += hsum(v * v); }
    let r = inverseSqrt(sum_b(lid, ss) / f32(n * VEC) + params.eps);
    for (var j = lid; j < n; j += ROW_WG) {
        o1v[base + j] = (i4v[base + j] - mean) * r * i5v[j] + i6v[j];
    }
    if lid == 0u { o2[row] = mean; o3[row] = r; }
}

// dx = r * (g - xhat * mean(g * xhat)), g = dy * w, xhat = x * r.
// o1 = dx; i2 = x, i3 = w, i4 = rstd, i5 = dy
@compute @workgroup_size(ROW_WG)
fn rms_norm_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let row = row_id(wid, nwg);
    if row >= params.rows { return; }
    let n = params.d;
    let base = row * n;
    let r = i4[row];
    var s = 0.0;
    for (var j = lid; j < n; j += ROW_WG) { s += hsum(i5v[base + j] * i3v[j] * i2v[base + j]) * r; }
    let c = sum_a(lid, s) / f32(n * VEC);
    for (var j = lid; j < n; j += ROW_WG) {
        let xhat = i2v[base + j] * r;
        o1v[base + j] = r * (i5v[base + j] * i3v[j] - xhat * c);
    }
}

// dx = r * (g - mean(g) - xhat * mean(g * xhat)), g = dy * w, xhat = (x - mean) * r.
// o1 = dx; i2 = x, i3 = w, i4 = mean, i5 = rstd, i6 = dy
@compute @workgroup_size(ROW_WG)
fn layer_norm_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let row = row_id(wid, nwg);
    if row >= params.rows { return; }
    let n = params.d;
    let base = row * n;
    let mu = i4[row];
    let r = i5[row];
    var sg = V(0.0);
    var sgx = 0.0;
    for (var j = lid; j < n; j += ROW_WG) {
        let g = i6v[base + j] * i3v[j];
        sg += g;
        sgx += hsum(g * (i2v[base + j] - mu)) * r;
    }
    let m = sum_ab(lid, hsum(sg), sgx) / f32(n * VEC);
    for (var j = lid; j < n; j += ROW_WG) {
        let xhat = (i2v[base + j] - mu) * r;
        o1v[base + j] = r * (i6v[base + j] * i3v[j] - m.x - xhat * m.y);
    }
}

// Partial column sums over chunks of `aux` rows: o1[chunk, j] = sum dy * x * rstd.
// params.rows = chunks * d threads, params.total = rows. i2 = x, i3 = rstd, i4 = dy
@compute @workgroup_size(256)
fn rms_param_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if id >= params.rows { return; }
    let d = params.d;
    let chunk = id / d;
    let j = id % d;
    let end = min(params.total, (chunk + 1u) * params.aux);
    var s = 0.0;
    for (var r = chunk * params.aux; r < end; r++) { s += i4[r * d + j] * i2[r * d + j] * i3[r]; }
    o1[id] = s;
}

// Partial column sums: o1[chunk, j] = sum dy * xhat (dweight), o2[chunk, j] = sum dy (dbias).
// i3 = x, i4 = mean, i5 = rstd, i6 = dy
@compute @workgroup_size(256)
fn ln_param_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if id >= params.rows { return; }
    let d = params.d;
    let chunk = id / d;
    let j = id % d;
    let end = min(params.total, (chunk + 1u) * params.aux);
    var sw = 0.0;
    var sb = 0.0;
    for (var r = chunk * params.aux; r < end; r++) {
        let g = i6[r * d + j];
        sw += g * (i3[r * d + j] - i4[r]) * i5[r];
        sb += g;
    }
    o1[id] = sw;
    o2[id] = sb;
}

// o1[j] = sum over `total` rows of i2[r, j]; params.rows = d threads.
@compute @workgroup_size(256)
fn col_sum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = linear_id(gid, nwg);
    if j >= params.rows { return; }
    var s = 0.0;
    for (var r = 0u; r < params.total; r++) { s += i2[r * params.d + j]; }
    o1[j] = s;
}

// o1[row] = the sum of row `row` of i2 [rows, d] (params.d elements of V).
@compute @workgroup_size(ROW_WG)
fn row_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let row = row_id(wid, nwg);
    if row >= params.rows { return; }
    let n = params.d;
    let base = row * n;
    var s = V(0.0);
    for (var j = lid; j < n; j += ROW_WG) { s += i2v[base + j]; }
    let total = sum_a(lid, hsum(s));
    if lid == 0u { o1[row] = total; }
}

// o1 = softmax(i2) over each row.
@compute @workgroup_size(ROW_WG)
fn softmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let row = row_id(wid, nwg);
    if row >= params.rows { return; }
    let d = params.d;
    let base = row * d;
    var m = -3.0e38;
    for (var j = lid; j < d; j += ROW_WG) { m = max(m, i2[base + j]); }
    let mx = max_a(lid, m);
    var s = 0.0;
    for (var j = lid; j < d; j += ROW_WG) { s += exp(i2[base + j] - mx); }
    let inv = 1.0 / sum_b(lid, s);
    for (var j = lid; j < d; j += ROW_WG) { o1[base + j] = exp(i2[base + j] - mx) * inv; }
}

// o1 = dx = y * (dy - sum(y * dy)); i2 = y, i3 = dy
@compute @workgroup_size(ROW_WG)
fn softmax_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let row = row_id(wid, nwg);
    if row >= params.rows { return; }
    let d = params.d;
    let base = row * d;
    var s = 0.0;
    for (var j = lid; j < d; j += ROW_WG) { s += i2[base + j] * i3[base + j]; }
    let dot = sum_a(lid, s);
    for (var j = lid; j < d; j += ROW_WG) { o1[base + j] = i2[base + j] * (i3[base + j] - dot); }
}

// Row statistics for AdaptiveGroupNorm: o1 = mean [rows], o2 = sqrt(unbiased var + eps) [rows]
// (torch `var` default, divisor d - 1; d = 1 divides by 1). i3 = x [rows, d]
@compute @workgroup_size(ROW_WG)
fn row_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let row = row_id(wid, nwg);
    if row >= params.rows { return; }
    let d = params.d;
    let base = row * d;
    var s = 0.0;
    for (var j = lid; j < d; j += ROW_WG) { s += i3[base + j]; }
    let mean = sum_a(lid, s) / f32(d);
    var ss = 0.0;
    for (var j = lid; j < d; j += ROW_WG) { let v = i3[base + j] - mean; ss += v * v; }
    let var_u = sum_b(lid, ss) / f32(max(d, 2u) - 1u);
    if lid == 0u { o1[row] = mean; o2[row] = sqrt(var_u + params.eps); }
}

// dx = dmean / d + dstd * (x - mean) / ((d - 1) * std).
// o1 = dx [rows, d]; i2 = x, i3 = mean, i4 = std, i5 = dmean, i6 = dstd (all [rows] but x)
@compute @workgroup_size(256)
fn row_stats_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if id >= params.rows * params.d { return; }
    let d = params.d;
    let row = id / d;
    let dv = f32(max(d, 2u) - 1u);
    o1[id] = i5[row] / f32(d) + i6[row] * (i2[id] - i3[row]) / (dv * i4[row]);
}
