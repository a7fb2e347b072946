// LayerNorm over rows of V elements: forward, input gradient and the partial sums of the weight
// and bias gradients. Appended to norm_common.wgsl. ln_param_grad is an element kernel over
// scalars: it is only dispatched at VEC = 1 (where V is f32); it leaves binding 3 (saved_w)
// unused and writes db_partial at binding 7, so that the saved values keep the backward's
// binding numbers.

@group(0) @binding(1) var<storage, read_write> y: array<V>;            // layer_norm, layer_norm_modulated
@group(0) @binding(1) var<storage, read_write> dx: array<V>;           // layer_norm_backward
@group(0) @binding(1) var<storage, read_write> dw_partial: array<f32>; // ln_param_grad
@group(0) @binding(2) var<storage, read_write> mean_out: array<f32>;   // layer_norm
@group(0) @binding(2) var<storage, read> saved_x: array<V>;            // layer_norm_backward, ln_param_grad
@group(0) @binding(3) var<storage, read_write> rstd_out: array<f32>;   // layer_norm
@group(0) @binding(3) var<storage, read> saved_w: array<V>;            // layer_norm_backward
@group(0) @binding(4) var<storage, read> x: array<V>;                  // layer_norm, layer_norm_modulated
@group(0) @binding(4) var<storage, read> saved_mean: array<f32>;       // layer_norm_backward, ln_param_grad
@group(0) @binding(5) var<storage, read> w: array<V>;                  // layer_norm, layer_norm_modulated
@group(0) @binding(5) var<storage, read> saved_rstd: array<f32>;       // layer_norm_backward, ln_param_grad
@group(0) @binding(6) var<storage, read> b: array<V>;                  // layer_norm, layer_norm_modulated
@group(0) @binding(6) var<storage, read> dy: array<V>;                 // layer_norm_backward, ln_param_grad
@group(0) @binding(7) var<storage, read_write> db_partial: array<f32>; // ln_param_grad
@group(0) @binding(8) var<storage, read> shift: array<V>;              // layer_norm_modulated
@group(0) @binding(9) var<storage, read> scale: array<V>;              // layer_norm_modulated
@group(0) @binding(2) var<storage, read_write> residual_out: array<V>;  // residual_layer_norm_modulated
@group(0) @binding(10) var<storage, read> gate: array<V>;              // residual_layer_norm_modulated
@group(0) @binding(11) var<storage, read> sublayer: array<V>;          // residual_layer_norm_modulated

// (mean, 1 / sqrt(biased variance + eps)) of the row of x starting at `base` (params.d
// elements of V), through both row sums; every lane of the row calls it (it holds barriers).
fn mean_rstd(base: u32, lid: u32) -> vec2<f32> {
    let n = params.d;
    var s = V(0.0);
    for (var j = lid; j < n; j += ROW_WG) { s += x[base + j]; }
    let mean = sum_a(lid, hsum(s)) / f32(n * VEC);
    var ss = 0.0;
    for (var j = lid; j < n; j += ROW_WG) { let v = x[base + j] - mean; ss += hsum(v * v); }
    return vec2<f32>(mean, inverseSqrt(sum_b(lid, ss) / f32(n * VEC) + params.eps));
}

// y = (x - mean) * rstd * w + b: x, y [rows, d], w, b [d]; mean_out, rstd_out [rows].
@compute @workgroup_size(ROW_WG)
fn layer_norm(at: RowPlace, @builtin(local_invocation_index) lid: u32) {
    let row = row_id(at);
    if row >= params.rows { return; }
    let base = row * params.d;
    let stats = mean_rstd(base, lid);
    let mean = stats.x;
    let r = stats.y;
    for (var j = lid; j < params.d; j += ROW_WG) { y[base + j] = (x[base + j] - mean) * r * w[j] + b[j]; }
    if lid == 0u { mean_out[row] = mean; rstd_out[row] = r; }
}

// adaLN before a sub-layer, inference only: y = LN(x) * (1 + scale[g]) + shift[g], g = row /
// params.aux (the rows of x sharing a modulation row); LN's w and b apply when params.affine
// is 1 (else they are bound to any buffer and not read). shift, scale [rows / aux, d].
@compute @workgroup_size(ROW_WG)
fn layer_norm_modulated(at: RowPlace, @builtin(local_invocation_index) lid: u32) {
    let row = row_id(at);
    if row >= params.rows { return; }
    let base = row * params.d;
    let m = (row / params.aux) * params.d;
    let stats = mean_rstd(base, lid);
    for (var j = lid; j < params.d; j += ROW_WG) {
        y[base + j] = modulated((x[base + j] - stats.x) * stats.y, j, m);
    }
}

// Element j of a normalized row after adaLN: the LayerNorm's affine when params.affine is 1,
// then (1 + scale) and shift of the modulation row starting at m.
fn modulated(normalized: V, j: u32, m: u32) -> V {
    var h = normalized;
    if params.affine == 1u { h = h * w[j] + b[j]; }
    return h * (V(1.0) + scale[m + j]) + shift[m + j];
}

// A gated residual, then adaLN before the next sub-layer, inference only, in one pass:
// residual_out = x + gate[g] * sublayer, y = layer_norm_modulated(residual_out); g = row /
// params.aux, gate [rows / aux, d] like shift and scale.
@compute @workgroup_size(ROW_WG)
fn residual_layer_norm_modulated(at: RowPlace, @builtin(local_invocation_index) lid: u32) {
    let row = row_id(at);
    if row >= params.rows { return; }
    let base = row * params.d;
    let m = (row / params.aux) * params.d;
    let n = params.d;
    // The later passes read back the sum this invocation wrote (the same elements j).
    var s = V(0.0);
    for (var j = lid; j < n; j += ROW_WG) {
        let v = x[base + j] + gate[m + j] * sublayer[base + j];
        residual_out[base + j] = v;
        s += v;
    }
    let mean = sum_a(lid, hsum(s)) / f32(n * VEC);
    var ss = 0.0;
    for (var j = lid; j < n; j += ROW_WG) { let v = residual_out[base + j] - mean; ss += hsum(v * v); }
    let r = inverseSqrt(sum_b(lid, ss) / f32(n * VEC) + params.eps);
    for (var j = lid; j < n; j += ROW_WG) {
        y[base + j] = modulated((residual_out[base + j] - mean) * r, j, m);
    }
}

// dx = r * (g - mean(g) - xhat * mean(g * xhat)), g = dy * w, xhat = (x - mean) * r.
// Inputs: saved_x [rows, d], saved_w [d], saved_mean and saved_rstd [rows], dy [rows, d].
@compute @workgroup_size(ROW_WG)
fn layer_norm_backward(at: RowPlace, @builtin(local_invocation_index) lid: u32) {
    let row = row_id(at);
    if row >= params.rows { return; }
    let base = row * params.d;
    let mu = saved_mean[row];
    let r = saved_rstd[row];
    var sg = V(0.0);
    var sgx = 0.0;
    for (var j = lid; j < params.d; j += ROW_WG) {
        let g = dy[base + j] * saved_w[j];
        sg += g;
        sgx += hsum(g * (saved_x[base + j] - mu)) * r;
    }
    let m = sum_ab(lid, hsum(sg), sgx) / f32(params.d * VEC);
    for (var j = lid; j < params.d; j += ROW_WG) {
        let xhat = (saved_x[base + j] - mu) * r;
        dx[base + j] = r * (dy[base + j] * saved_w[j] - m.x - xhat * m.y);
    }
}

// Partial column sums over chunks of `aux` rows: dw_partial[chunk, j] = sum dy * xhat,
// db_partial[chunk, j] = sum dy. params.rows = chunks * d threads, params.total = rows.
@compute @workgroup_size(256)
fn ln_param_grad(at: Item) {
    let id = linear_id(at);
    if id >= params.rows { return; }
    let cc = chunk_column(id);
    var sw = 0.0;
    var sb = 0.0;
    for (var r = cc.first; r < cc.end; r++) {
        let ix = r * params.d + cc.j;
        let g = dy[ix];
        sw += hsum(g * (saved_x[ix] - saved_mean[r])) * saved_rstd[r];
        sb += hsum(g);
    }
    dw_partial[id] = sw;
    db_partial[id] = sb;
}
