// RMSNorm over rows of V elements: forward, input gradient and the partial sums of the weight
// gradient. Appended to norm_common.wgsl. rms_param_grad is an element kernel over scalars: it
// is only dispatched at VEC = 1 (where V is f32), and leaves binding 3 (saved_w) unused so that
// the saved values keep the backward's binding numbers.

@group(0) @binding(1) var<storage, read_write> y: array<V>;            // rms_norm
@group(0) @binding(1) var<storage, read_write> dx: array<V>;           // rms_norm_backward
@group(0) @binding(1) var<storage, read_write> dw_partial: array<f32>; // rms_param_grad
@group(0) @binding(2) var<storage, read_write> rstd_out: array<f32>;   // rms_norm
@group(0) @binding(2) var<storage, read> saved_x: array<V>;            // rms_norm_backward, rms_param_grad
@group(0) @binding(3) var<storage, read> x: array<V>;                  // rms_norm
@group(0) @binding(3) var<storage, read> saved_w: array<V>;            // rms_norm_backward
@group(0) @binding(4) var<storage, read> w: array<V>;                  // rms_norm
@group(0) @binding(4) var<storage, read> saved_rstd: array<f32>;       // rms_norm_backward, rms_param_grad
@group(0) @binding(5) var<storage, read> dy: array<V>;                 // rms_norm_backward, rms_param_grad

// y = x * rstd * w: x, y [rows, d], w [d]; rstd_out [rows].
@compute @workgroup_size(ROW_WG)
fn rms_norm(at: RowPlace, @builtin(local_invocation_index) lid: u32) {
    let row = row_id(at);
    if row >= params.rows { return; }
    let n = params.d;
    let base = row * n;
    var ss = 0.0;
    for (var j = lid; j < n; j += ROW_WG) { let v = x[base + j]; ss += hsum(v * v); }
    let r = inverseSqrt(sum_a(lid, ss) / f32(n * VEC) + params.eps);
    for (var j = lid; j < n; j += ROW_WG) { y[base + j] = x[base + j] * r * w[j]; }
    if lid == 0u { rstd_out[row] = r; }
}

// dx = r * (g - xhat * mean(g * xhat)), g = dy * w, xhat = x * r.
// Inputs: saved_x [rows, d], saved_w [d], saved_rstd [rows], dy [rows, d].
@compute @workgroup_size(ROW_WG)
fn rms_norm_backward(at: RowPlace, @builtin(local_invocation_index) lid: u32) {
    let row = row_id(at);
    if row >= params.rows { return; }
    let base = row * params.d;
    let r = saved_rstd[row];
    var s = 0.0;
    for (var j = lid; j < params.d; j += ROW_WG) { s += hsum(dy[base + j] * saved_w[j] * saved_x[base + j]) * r; }
    let c = sum_a(lid, s) / f32(params.d * VEC);
    for (var j = lid; j < params.d; j += ROW_WG) {
        let xhat = saved_x[base + j] * r;
        dx[base + j] = r * (dy[base + j] * saved_w[j] - xhat * c);
    }
}

// Partial column sums over chunks of `aux` rows: dw_partial[chunk, j] = sum dy * x * rstd.
// params.rows = chunks * d threads, params.total = rows.
@compute @workgroup_size(256)
fn rms_param_grad(at: Item) {
    let id = linear_id(at);
    if id >= params.rows { return; }
    let cc = chunk_column(id);
    var s = 0.0;
    for (var r = cc.first; r < cc.end; r++) {
        let ix = r * params.d + cc.j;
        s += hsum(dy[ix] * saved_x[ix]) * saved_rstd[r];
    }
    dw_partial[id] = s;
}
