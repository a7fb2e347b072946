// GroupNorm and its affine maps, for the binary autoencoder: the fused forward of
// nn.GroupNorm, AdaptiveGroupNorm (GroupNorm without affine, then a scale and shift per
// (batch, channel)), and the per-row affine map y = x * scale[row % period] + shift[row %
// period] with its backward (the tape's GroupNorm is a LayerNorm over each (batch, group) run
// followed by this map, period C; AdaptiveGroupNorm's is period B * C).
//
// Bindings are named for what they hold; names that share a binding number belong to
// different entry points. GroupNorm kernels run one workgroup of GN_WG threads per (batch,
// group): id = wid.x + wid.y * nwg.x. Element kernels run 256 threads per workgroup:
// id = gid.x + gid.y * nwg.x * 256.

// struct Params: generated from the Rust `uniform!` in crates/bitdance/src/ops/group_norm/mod.rs
// (its fields are documented there) and prepended to this source.

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;           // forward kernels
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;          // row_affine_backward
@group(0) @binding(2) var<storage, read> x: array<f32>;                 // forward kernels
@group(0) @binding(2) var<storage, read_write> ds_rows: array<f32>;     // row_affine_backward
@group(0) @binding(3) var<storage, read> scale: array<f32>;             // forward: [c], [n, c] or [period]
@group(0) @binding(3) var<storage, read_write> dt_rows: array<f32>;     // row_affine_backward
@group(0) @binding(4) var<storage, read> shift: array<f32>;             // forward: as scale
@group(0) @binding(4) var<storage, read> saved_x: array<f32>;           // row_affine_backward
@group(0) @binding(5) var<storage, read> dy: array<f32>;                // row_affine_backward
@group(0) @binding(6) var<storage, read> saved_scale: array<f32>;       // row_affine_backward

var<workgroup> red: array<f32, GN_WG>;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

// Workgroup sum: one barrier, then every thread adds the partials in the same order. A second
// barrier guards `red` before it is reused.
fn wg_sum(lid: u32, v: f32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    var s = 0.0;
    for (var i = 0u; i < GN_WG; i++) { s += red[i]; }
    workgroupBarrier();
    return s;
}

// One (batch, group) run of GroupNorm: cpg * hw contiguous values from `base`, the first
// channel of its group, and their mean and 1 / sqrt(var + eps).
struct GroupRun {
    base: u32,
    len: u32,
    c0: u32,
    mean: f32,
    rstd: f32,
}

// The run of workgroup `row` = b * groups + g (every thread of the workgroup calls it).
fn group_run(row: u32, lid: u32) -> GroupRun {
    let cpg = params.c / params.groups;
    let len = cpg * params.hw;
    let base = row * len;
    var s = 0.0;
    for (var i = lid; i < len; i += GN_WG) { s += x[base + i]; }
    let mean = wg_sum(lid, s) / f32(len);
    var v = 0.0;
    for (var i = lid; i < len; i += GN_WG) {
        let d = x[base + i] - mean;
        v += d * d;
    }
    let rstd = inverseSqrt(wg_sum(lid, v) / f32(len) + params.eps);
    return GroupRun(base, len, (row % params.groups) * cpg, mean, rstd);
}

// y, x [n, c, h, w]; scale (the weight) and shift (the bias) [c].
@compute @workgroup_size(GN_WG)
fn group_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * nwg.x;
    if row >= params.n * params.groups { return; }
    let g = group_run(row, lid);
    for (var i = lid; i < g.len; i += GN_WG) {
        let c = g.c0 + i / params.hw;
        let v = (x[g.base + i] - g.mean) * g.rstd * scale[c] + shift[c];
        y[g.base + i] = select(v, v / (1.0 + exp(-v)), params.silu == 1u);
    }
}

// y, x [n, c, h, w]; scale and shift [n, c].
@compute @workgroup_size(GN_WG)
fn adaptive_group_norm(@builtin(workgroup_id) wid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * nwg.x;
    if row >= params.n * params.groups { return; }
    let g = group_run(row, lid);
    let first = (row / params.groups) * params.c + g.c0;
    for (var i = lid; i < g.len; i += GN_WG) {
        let c = first + i / params.hw;
        y[g.base + i] = (x[g.base + i] - g.mean) * g.rstd * scale[c] + shift[c];
    }
}

// y, x [rows, len]: y = x * scale[k] + shift[k], k = row % period.
@compute @workgroup_size(256)
fn row_affine(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if id >= params.rows * params.len { return; }
    let k = (id / params.len) % params.period;
    y[id] = x[id] * scale[k] + shift[k];
}

// Backward of row_affine, one thread per row: dx = dy * s[row % period], ds_rows [rows] =
// sum(dy * x), dt_rows [rows] = sum(dy) (per row: the caller sums rows sharing an entry).
// saved_x, dy [rows, len]; saved_scale [period].
@compute @workgroup_size(256)
fn row_affine_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = linear_id(gid, nwg);
    if row >= params.rows { return; }
    let len = params.len;
    let s = saved_scale[row % params.period];
    var ds = 0.0;
    var dt = 0.0;
    for (var k = 0u; k < len; k++) {
        let at = row * len + k;
        let g = dy[at];
        ds += g * saved_x[at];
        dt += g;
        dx[at] = g * s;
    }
    ds_rows[row] = ds;
    dt_rows[row] = dt;
}
