// Column and row sums, and the row statistics of AdaptiveGroupNorm (mean and unbiased
// standard deviation) with their gradient. Appended to norm_common.wgsl.

@group(0) @binding(1) var<storage, read_write> sums: array<f32>;       // col_sum, row_sum
@group(0) @binding(1) var<storage, read_write> mean_out: array<f32>;   // row_stats
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;         // row_stats_backward
@group(0) @binding(2) var<storage, read> columns_in: array<f32>;       // col_sum
@group(0) @binding(2) var<storage, read> rows_in: array<V>;            // row_sum
@group(0) @binding(2) var<storage, read_write> std_out: array<f32>;    // row_stats
@group(0) @binding(2) var<storage, read> saved_x: array<f32>;          // row_stats_backward
@group(0) @binding(3) var<storage, read> x: array<f32>;                // row_stats
@group(0) @binding(3) var<storage, read> saved_mean: array<f32>;       // row_stats_backward
@group(0) @binding(4) var<storage, read> saved_std: array<f32>;        // row_stats_backward
@group(0) @binding(5) var<storage, read> dmean: array<f32>;            // row_stats_backward
@group(0) @binding(6) var<storage, read> dstd: array<f32>;             // row_stats_backward

// sums[j] = sum over `total` rows of columns_in[r, j]; params.rows = d threads.
@compute @workgroup_size(256)
fn col_sum(at: Item) {
    let j = linear_id(at);
    if j >= params.rows { return; }
    var s = 0.0;
    for (var r = 0u; r < params.total; r++) { s += columns_in[r * params.d + j]; }
    sums[j] = s;
}

// sums[row] = the sum of row `row` of rows_in [rows, d] (params.d elements of V).
@compute @workgroup_size(ROW_WG)
fn row_sum(at: RowPlace, @builtin(local_invocation_index) lid: u32) {
    let row = row_id(at);
    if row >= params.rows { return; }
    var s = V(0.0);
    for (var j = lid; j < params.d; j += ROW_WG) { s += rows_in[row * params.d + j]; }
    let total = sum_a(lid, hsum(s));
    if lid == 0u { sums[row] = total; }
}

// Row statistics of x [rows, d]: mean_out = mean [rows], std_out = sqrt(unbiased var + eps)
// [rows] (torch `var` default, divisor d - 1; d = 1 divides by 1).
@compute @workgroup_size(ROW_WG)
fn row_stats(at: RowPlace, @builtin(local_invocation_index) lid: u32) {
    let row = row_id(at);
    if row >= params.rows { return; }
    let d = params.d;
    let base = row * d;
    var s = 0.0;
    for (var j = lid; j < d; j += ROW_WG) { s += x[base + j]; }
    let mean = sum_a(lid, s) / f32(d);
    var ss = 0.0;
    for (var j = lid; j < d; j += ROW_WG) { let v = x[base + j] - mean; ss += v * v; }
    let var_u = sum_b(lid, ss) / f32(max(d, 2u) - 1u);
    if lid == 0u { mean_out[row] = mean; std_out[row] = sqrt(var_u + params.eps); }
}

// dx = dmean / d + dstd * (x - mean) / ((d - 1) * std).
// dx, saved_x [rows, d]; saved_mean, saved_std, dmean, dstd [rows].
@compute @workgroup_size(256)
fn row_stats_backward(at: Item) {
    let id = linear_id(at);
    if id >= params.rows * params.d { return; }
    let row = id / params.d;
    let dv = f32(max(params.d, 2u) - 1u);
    dx[id] = dmean[row] / f32(params.d) + dstd[row] * (saved_x[id] - saved_mean[row]) / (dv * saved_std[row]);
}
