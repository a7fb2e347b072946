// Row reductions of the row kernels (appended after norm_common.wgsl and a kernel file) through
// workgroup memory: one barrier, then every thread adds the partials in the same order
// (deterministic, identical in all threads).

var<workgroup> red_a: array<f32, ROW_WG>;
var<workgroup> red_b: array<f32, ROW_WG>;

// Sum through red_a. Use red_a (and red_b) at most once per entry point.
fn sum_a(lid: u32, v: f32) -> f32 {
    red_a[lid] = v;
    workgroupBarrier();
    var s = 0.0;
    for (var i = 0u; i < ROW_WG; i++) { s += red_a[i]; }
    return s;
}

fn sum_b(lid: u32, v: f32) -> f32 {
    red_b[lid] = v;
    workgroupBarrier();
    var s = 0.0;
    for (var i = 0u; i < ROW_WG; i++) { s += red_b[i]; }
    return s;
}

// Two sums with one barrier (red_a and red_b).
fn sum_ab(lid: u32, u: f32, v: f32) -> vec2<f32> {
    red_a[lid] = u;
    red_b[lid] = v;
    workgroupBarrier();
    var s = vec2<f32>(0.0);
    for (var i = 0u; i < ROW_WG; i++) { s += vec2<f32>(red_a[i], red_b[i]); }
    return s;
}

fn max_a(lid: u32, v: f32) -> f32 {
    red_a[lid] = v;
    workgroupBarrier();
    var m = red_a[0];
    for (var i = 1u; i < ROW_WG; i++) { m = max(m, red_a[i]); }
    return m;
}

