// Row-wise normalisations (RMSNorm, LayerNorm) with their parameter gradients, row and column
// sums, row softmax, and the row statistics of AdaptiveGroupNorm.
//
// Binding convention: outputs first (read_write), then inputs (read).
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
    rows: u32,   // rows (row kernels) or threads (element kernels)
    d: u32,      // row length, in V elements
    eps: f32,
    aux: u32,    // rows per chunk (param grads)
    total: u32,  // rows of the input of the param-grad and column-sum kernels
}

@group(0) @binding(0) var<uniform> params: Params;
// Every binding is named for what it holds; names that share a binding number belong to
// different entry points (listed beside each). The backward kernels read the forward's saved
// values (saved_*) and the output gradient (d*). Rows are V elements, per-row values f32.
// binding 1: the output
@group(0) @binding(1) var<storage, read_write> y: array<V>;              // rms_norm, layer_norm
@group(0) @binding(1) var<storage, read_write> dx: array<V>;             // *_norm_backward
@group(0) @binding(1) var<storage, read_write> dw_partial: array<f32>;   // *_param_grad
@group(0) @binding(1) var<storage, read_write> sums: array<f32>;         // col_sum, row_sum
@group(0) @binding(1) var<storage, read_write> probs: array<f32>;        // softmax
@group(0) @binding(1) var<storage, read_write> dlogits: array<f32>;      // softmax_backward
@group(0) @binding(1) var<storage, read_write> mean_out1: array<f32>;    // row_stats
@group(0) @binding(1) var<storage, read_write> dx_s: array<f32>;         // row_stats_backward
// binding 2
@group(0) @binding(2) var<storage, read_write> rstd_out: array<f32>;     // rms_norm
@group(0) @binding(2) var<storage, read_write> mean_out: array<f32>;     // layer_norm
@group(0) @binding(2) var<storage, read_write> db_partial: array<f32>;   // ln_param_grad
@group(0) @binding(2) var<storage, read_write> std_out: array<f32>;      // row_stats
@group(0) @binding(2) var<storage, read> saved_x: array<V>;              // *_norm_backward
@group(0) @binding(2) var<storage, read> saved_xs: array<f32>;           // rms_param_grad, row_stats_backward
@group(0) @binding(2) var<storage, read> rows_in: array<f32>;            // col_sum
@group(0) @binding(2) var<storage, read> rows_inv: array<V>;             // row_sum
@group(0) @binding(2) var<storage, read> logits: array<f32>;             // softmax
@group(0) @binding(2) var<storage, read> saved_probs: array<f32>;        // softmax_backward
// binding 3
@group(0) @binding(3) var<storage, read_write> rstd_out3: array<f32>;    // layer_norm
@group(0) @binding(3) var<storage, read> x: array<V>;                    // rms_norm
@group(0) @binding(3) var<storage, read> saved_w: array<V>;              // *_norm_backward
@group(0) @binding(3) var<storage, read> saved_rstd3: array<f32>;        // rms_param_grad
@group(0) @binding(3) var<storage, read> saved_xs3: array<f32>;          // ln_param_grad
@group(0) @binding(3) var<storage, read> dprobs: array<f32>;             // softmax_backward
@group(0) @binding(3) var<storage, read> rows3: array<f32>;              // row_stats
@group(0) @binding(3) var<storage, read> saved_mean3: array<f32>;        // row_stats_backward
// binding 4
@group(0) @binding(4) var<storage, read> w: array<V>;                    // rms_norm
@group(0) @binding(4) var<storage, read> x_ln: array<V>;                 // layer_norm
@group(0) @binding(4) var<storage, read> saved_rstd: array<f32>;         // rms_norm_backward
@group(0) @binding(4) var<storage, read> saved_mean: array<f32>;         // layer_norm_backward, ln_param_grad
@group(0) @binding(4) var<storage, read> dy_s: array<f32>;               // rms_param_grad
@group(0) @binding(4) var<storage, read> saved_std: array<f32>;          // row_stats_backward
// binding 5
@group(0) @binding(5) var<storage, read> w_ln: array<V>;                 // layer_norm
@group(0) @binding(5) var<storage, read> dy_rms: array<V>;               // rms_norm_backward
@group(0) @binding(5) var<storage, read> saved_rstd5: array<f32>;        // layer_norm_backward, ln_param_grad
@group(0) @binding(5) var<storage, read> dmean: array<f32>;              // row_stats_backward
// binding 6
@group(0) @binding(6) var<storage, read> b_ln: array<V>;                 // layer_norm
@group(0) @binding(6) var<storage, read> dy: array<V>;                   // layer_norm_backward
@group(0) @binding(6) var<storage, read> dys: array<f32>;                // ln_param_grad
@group(0) @binding(6) var<storage, read> dstd: array<f32>;               // row_stats_backward

fn row_id(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

// The row kernels walk a row as params.d elements of V (the row has params.d * VEC floats),
// each lane striding by ROW_WG.

// y = x * rstd * w: x, y [rows, d], w [d]; rstd_out [rows].
@compute @workgroup_size(ROW_WG)
fn rms_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let row = row_id(wid, nwg);
    if row >= params.rows { return; }
    let n = params.d;
    let base = row * n;
    var ss = 0.0;
    for (var j = lid; j < n; j += ROW_WG) { let v = x[base + j]; ss += hsum(v * v); }
    let r = inverseSqrt(sum_a(lid, ss) / f32(n * VEC) + params.eps);
    for (var j = lid; j < n; j += ROW_WG) { y[base + j] = x[base + j] * r * w[j]; }
    if lid == 0u { rstd_out[row] = r; }
}

// y = (x - mean) * rstd * w + b: x_ln, y [rows, d], w_ln, b_ln [d]; mean_out, rstd_out3 [rows].
@compute @workgroup_size(ROW_WG)
fn layer_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let row = row_id(wid, nwg);
    if row >= params.rows { return; }
    let n = params.d;
    let base = row * n;
    var s = V(0.0);
    for (var j = lid; j < n; j += ROW_WG) { s += x_ln[base + j]; }
    let mean = sum_a(lid, hsum(s)) / f32(n * VEC);
    var ss = 0.0;
    for (var j = lid; j < n; j += ROW_WG) { let v = x_ln[base + j] - mean; ss += hsum(v * v); }
    let r = inverseSqrt(sum_b(lid, ss) / f32(n * VEC) + params.eps);
    for (var j = lid; j < n; j += ROW_WG) {
        y[base + j] = (x_ln[base + j] - mean) * r * w_ln[j] + b_ln[j];
    }
    if lid == 0u { mean_out[row] = mean; rstd_out3[row] = r; }
}

// dx = r * (g - xhat * mean(g * xhat)), g = dy * w, xhat = x * r.
// Inputs: saved_x [rows, d], saved_w [d], saved_rstd [rows], dy_rms [rows, d].
@compute @workgroup_size(ROW_WG)
fn rms_norm_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let row = row_id(wid, nwg);
    if row >= params.rows { return; }
    let n = params.d;
    let base = row * n;
    let r = saved_rstd[row];
    var s = 0.0;
    for (var j = lid; j < n; j += ROW_WG) { s += hsum(dy_rms[base + j] * saved_w[j] * saved_x[base + j]) * r; }
    let c = sum_a(lid, s) / f32(n * VEC);
    for (var j = lid; j < n; j += ROW_WG) {
        let xhat = saved_x[base + j] * r;
        dx[base + j] = r * (dy_rms[base + j] * saved_w[j] - xhat * c);
    }
}

// dx = r * (g - mean(g) - xhat * mean(g * xhat)), g = dy * w, xhat = (x - mean) * r.
// Inputs: saved_x [rows, d], saved_w [d], saved_mean and saved_rstd5 [rows], dy [rows, d].
@compute @workgroup_size(ROW_WG)
fn layer_norm_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let row = row_id(wid, nwg);
    if row >= params.rows { return; }
    let n = params.d;
    let base = row * n;
    let mu = saved_mean[row];
    let r = saved_rstd5[row];
    var sg = V(0.0);
    var sgx = 0.0;
    for (var j = lid; j < n; j += ROW_WG) {
        let g = dy[base + j] * saved_w[j];
        sg += g;
        sgx += hsum(g * (saved_x[base + j] - mu)) * r;
    }
    let m = sum_ab(lid, hsum(sg), sgx) / f32(n * VEC);
    for (var j = lid; j < n; j += ROW_WG) {
        let xhat = (saved_x[base + j] - mu) * r;
        dx[base + j] = r * (dy[base + j] * saved_w[j] - m.x - xhat * m.y);
    }
}

// Partial column sums over chunks of `aux` rows: dw_partial[chunk, j] = sum dy * x * rstd.
// params.rows = chunks * d threads, params.total = rows. Inputs: saved_xs, saved_rstd3, dy_s.
@compute @workgroup_size(256)
fn rms_param_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if id >= params.rows { return; }
    let d = params.d;
    let chunk = id / d;
    let j = id % d;
    let end = min(params.total, (chunk + 1u) * params.aux);
    var s = 0.0;
    for (var r = chunk * params.aux; r < end; r++) { s += dy_s[r * d + j] * saved_xs[r * d + j] * saved_rstd3[r]; }
    dw_partial[id] = s;
}

// Partial column sums: dw_partial[chunk, j] = sum dy * xhat, db_partial[chunk, j] = sum dy.
// Inputs: saved_xs3 [rows, d], saved_mean and saved_rstd5 [rows], dys [rows, d].
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
        let g = dys[r * d + j];
        sw += g * (saved_xs3[r * d + j] - saved_mean[r]) * saved_rstd5[r];
        sb += g;
    }
    dw_partial[id] = sw;
    db_partial[id] = sb;
}

// sums[j] = sum over `total` rows of rows_in[r, j]; params.rows = d threads.
@compute @workgroup_size(256)
fn col_sum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = linear_id(gid, nwg);
    if j >= params.rows { return; }
    var s = 0.0;
    for (var r = 0u; r < params.total; r++) { s += rows_in[r * params.d + j]; }
    sums[j] = s;
}

// sums[row] = the sum of row `row` of rows_inv [rows, d] (params.d elements of V).
@compute @workgroup_size(ROW_WG)
fn row_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let row = row_id(wid, nwg);
    if row >= params.rows { return; }
    let n = params.d;
    let base = row * n;
    var s = V(0.0);
    for (var j = lid; j < n; j += ROW_WG) { s += rows_inv[base + j]; }
    let total = sum_a(lid, hsum(s));
    if lid == 0u { sums[row] = total; }
}

// probs = softmax(logits) over each row.
@compute @workgroup_size(ROW_WG)
fn softmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let row = row_id(wid, nwg);
    if row >= params.rows { return; }
    let d = params.d;
    let base = row * d;
    var m = -3.0e38;
    for (var j = lid; j < d; j += ROW_WG) { m = max(m, logits[base + j]); }
    let mx = max_a(lid, m);
    var s = 0.0;
    for (var j = lid; j < d; j += ROW_WG) { s += exp(logits[base + j] - mx); }
    let inv = 1.0 / sum_b(lid, s);
    for (var j = lid; j < d; j += ROW_WG) { probs[base + j] = exp(logits[base + j] - mx) * inv; }
}

// dlogits = y * (dy - sum(y * dy)) with y = saved_probs and dy = dprobs.
@compute @workgroup_size(ROW_WG)
fn softmax_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let row = row_id(wid, nwg);
    if row >= params.rows { return; }
    let d = params.d;
    let base = row * d;
    var s = 0.0;
    for (var j = lid; j < d; j += ROW_WG) { s += saved_probs[base + j] * dprobs[base + j]; }
    let dot = sum_a(lid, s);
    for (var j = lid; j < d; j += ROW_WG) { dlogits[base + j] = saved_probs[base + j] * (dprobs[base + j] - dot); }
}

// Row statistics for AdaptiveGroupNorm of rows3 [rows, d]: mean_out1 = mean [rows], std_out =
// sqrt(unbiased var + eps) [rows] (torch `var` default, divisor d - 1; d = 1 divides by 1).
@compute @workgroup_size(ROW_WG)
fn row_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let row = row_id(wid, nwg);
    if row >= params.rows { return; }
    let d = params.d;
    let base = row * d;
    var s = 0.0;
    for (var j = lid; j < d; j += ROW_WG) { s += rows3[base + j]; }
    let mean = sum_a(lid, s) / f32(d);
    var ss = 0.0;
    for (var j = lid; j < d; j += ROW_WG) { let v = rows3[base + j] - mean; ss += v * v; }
    let var_u = sum_b(lid, ss) / f32(max(d, 2u) - 1u);
    if lid == 0u { mean_out1[row] = mean; std_out[row] = sqrt(var_u + params.eps); }
}

// dx = dmean / d + dstd * (x - mean) / ((d - 1) * std).
// dx_s, saved_xs [rows, d]; saved_mean3, saved_std, dmean, dstd [rows].
@compute @workgroup_size(256)
fn row_stats_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if id >= params.rows * params.d { return; }
    let d = params.d;
    let row = id / d;
    let dv = f32(max(d, 2u) - 1u);
    dx_s[id] = dmean[row] / f32(d) + dstd[row] * (saved_xs[id] - saved_mean3[row]) / (dv * saved_std[row]);
}
