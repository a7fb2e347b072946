// Batched matmul C[b] = op(A[b]) @ op(B[b]) (+ bias), barrier-free register blocking.
// Defines: TM x TN outputs per invocation, WGX x WGY invocations per workgroup,
// TRANS_A / TRANS_B (0 or 1). Each invocation owns rows row0..row0+TM (shared by the
// invocations of a row of the workgroup, so A loads are uniform across SIMD lanes on CPU
// drivers) and columns col0 + j*WGX (adjacent invocations read adjacent B elements).

struct Params {
    m: u32,
    n: u32,
    k: u32,
    stride_a: u32,   // elements between batches of A (0: shared)
    stride_b: u32,   // elements between batches of B (0: shared)
    stride_c: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

var<private> acc: array<f32, TM * TN>;
var<private> rows: array<u32, TM>;
var<private> cols: array<u32, TN>;

fn load_a(base: u32, row: u32, kk: u32) -> f32 {
    if TRANS_A == 1u {
        return a[base + kk * params.m + row];
    }
    return a[base + row * params.k + kk];
}

fn load_b(base: u32, kk: u32, col: u32) -> f32 {
    if TRANS_B == 1u {
        return b[base + col * params.k + kk];
    }
    return b[base + kk * params.n + col];
}

// Accumulates this invocation's TM x TN block into `acc`; returns (row0, col0).
fn compute(wid: vec3<u32>, lid: vec3<u32>) -> vec2<u32> {
    let row0 = (wid.y * WGY + lid.y) * TM;
    let col0 = wid.x * WGX * TN + lid.x;
    let base_a = wid.z * params.stride_a;
    let base_b = wid.z * params.stride_b;
    // Out-of-range rows/columns read a valid clamped element; their results are not stored.
    for (var i = 0u; i < TM; i++) {
        rows[i] = min(row0 + i, params.m - 1u);
    }
    for (var j = 0u; j < TN; j++) {
        cols[j] = min(col0 + j * WGX, params.n - 1u);
    }
    for (var t = 0u; t < TM * TN; t++) {
        acc[t] = 0.0;
    }
    var av: array<f32, TM>;
    for (var kk = 0u; kk < params.k; kk++) {
        for (var i = 0u; i < TM; i++) {
            av[i] = load_a(base_a, rows[i], kk);
        }
        for (var j = 0u; j < TN; j++) {
            let bv = load_b(base_b, kk, cols[j]);
            for (var i = 0u; i < TM; i++) {
                acc[i * TN + j] = fma(av[i], bv, acc[i * TN + j]);
            }
        }
    }
    return vec2<u32>(row0, col0);
}

@compute @workgroup_size(WGX, WGY, 1)
fn matmul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let origin = compute(wid, lid);
    let base_c = wid.z * params.stride_c;
    for (var i = 0u; i < TM; i++) {
        let r = origin.x + i;
        for (var j = 0u; j < TN; j++) {
            let c = origin.y + j * WGX;
            if r < params.m && c < params.n {
                out[base_c + r * params.n + c] = acc[i * TN + j];
            }
        }
    }
}

@compute @workgroup_size(WGX, WGY, 1)
fn matmul_bias(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let origin = compute(wid, lid);
    let base_c = wid.z * params.stride_c;
    for (var i = 0u; i < TM; i++) {
        let r = origin.x + i;
        for (var j = 0u; j < TN; j++) {
            let c = origin.y + j * WGX;
            if r < params.m && c < params.n {
                out[base_c + r * params.n + c] = acc[i * TN + j] + bias[c];
            }
        }
    }
}
