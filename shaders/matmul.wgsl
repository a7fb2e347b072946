// Matrix multiply: out[b, r, s] = sum_k X[b, r, k] * Y[b, k, s] (+ bias), written at
// out[b * o_batch + r * o_rs + s * o_ss]. The launcher maps A, B and their transposes onto X
// and Y through strides (and may swap them: then r runs over N and s over M). Defines (all
// present in every variant, unused ones neutral):
//   WG, T, RP   mm_rb: invocations per workgroup, columns per workgroup, rows per invocation
//   TS, BK      mm_tiled: TS x TS invocations, 4 x 4 outputs each, BK-deep K tiles
//
// mm_rb (CPU adapters): barrier-free register blocking. llvmpipe runs 8 invocations as the
// lanes of one SIMD vector, and (Mesa 22) executes every storage-buffer load as a loop over
// the lanes, one scalar per component: a vec4 load costs about as much as a scalar one, and
// that loop, not the arithmetic, bounds the speed. So every load is a vec4 along K (or along
// the rows or columns when those are contiguous) and each invocation keeps a large block of
// accumulators: per K step it loads RP + T vec4s and does 4 * RP * T multiply-adds. The
// T columns are shared by the workgroup and read at workgroup-uniform addresses (newer Mesa
// turns those into one scalar load and a broadcast). Indices are clamped, not branched on.
//
// mm_tiled (real GPUs): classic shared-memory tiles of (4*TS)^2 outputs per workgroup.
//
// pack: copies a strided X into [b, r, 4 * ceil(K / 4)], zero-padding K, for mm_rb operands
// whose K and rows are not contiguous in multiples of 4.

struct Params {
    rows: u32,         // R: output rows (pack: rows of X)
    cols: u32,         // S: output columns (pack: padded row length)
    k: u32,            // K: reduction length (mm_rb: vec4 steps, ceil(K / 4))
    s_blocks: u32,     // workgroups along S (pack: total elements written)
    x_batch: u32,      // X strides (mm_rb: in vec4s, as P): batch,
    x_rs: u32,         //   rows,
    x_ks: u32,         //   K
    y_batch: u32,      // Y strides (mm_rb: in vec4s, as Q): batch,
    y_ks: u32,         //   K,
    y_ss: u32,         //   columns
    o_batch: u32,
    o_rs: u32,
    o_ss: u32,
    bias_on_rows: u32, // 1: bias indexed by the row, 0: by the column
    p_rc: u32,         // mm_rb: P is read along its rows (1) or along K (0)
    q_sc: u32,         // mm_rb: Q is read along its columns (1) or along K (0)
    has_bias: u32,     // 1: add bias (else the bias binding is a dummy)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
// mm_rb reads X and Y as vec4 along K (p, q); mm_tiled and pack read scalars (x, y).
@group(0) @binding(2) var<storage, read> p: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> y: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

fn bias_at(r: u32, s: u32) -> f32 {
    return bias[select(s, r, params.bias_on_rows == 1u)];
}

// ---------------------------------------------------------------- mm_rb (CPU adapters)

const TQ: u32 = T / 4u;

// Writes v to row r, columns s..s+3, skipping what lies outside the output.
fn put4(ob: u32, r: u32, s: u32, v: vec4<f32>) {
    if r >= params.rows {
        return;
    }
    let i = ob + r * params.o_rs + s * params.o_ss;
    let n = params.cols - min(s, params.cols);
    if n > 0u { out[i] = v.x; }
    if n > 1u { out[i + params.o_ss] = v.y; }
    if n > 2u { out[i + 2u * params.o_ss] = v.z; }
    if n > 3u { out[i + 3u * params.o_ss] = v.w; }
}

// One invocation computes RP rows x T columns. Written out for RP in {4, 8, 12} and
// TQ = T / 4 <= 6 groups of 4 columns: constant `if`s fold away, so the block stays in
// registers and no array is indexed at run time (llvmpipe compiles that slowly). Row slot i
// is row r0 + (i / 4) * 4 * WG + i % 4; a{i}_{g} holds slot i, columns s0 + 4g .. s0 + 4g + 3.
//
// P is read as vec4s along K (p_rc = 0: element (r, k) at vec4 r * x_rs + k / 4) or along the
// rows (p_rc = 1: vec4 k * x_ks + r / 4); likewise Q along K (q_sc = 0, vec4 s * y_ss + k / 4)
// or along the columns (q_sc = 1, vec4 k * y_ks + s / 4). A 4x4 block loaded either way is
// the same matrix or its transpose, and a transpose is free in llvmpipe's SoA registers.
@compute @workgroup_size(WG)
fn mm_rb(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let lin = wid.x + wid.y * nwg.x;
    let s0 = (lin % params.s_blocks) * T;
    let r0 = (lin / params.s_blocks) * (WG * RP) + 4u * lid;
    let b = wid.z;
    let p_rc = params.p_rc == 1u;
    let q_sc = params.q_sc == 1u;
    let pb = b * params.x_batch;
    let qb = b * params.y_batch;
    let pstep = select(1u, 4u * params.x_ks, p_rc);
    let qstep = select(1u, 4u * params.y_ks, q_sc);
    let rl = params.rows - 1u;
    let cl = params.cols - 1u;
    // Last 4-aligned start (only used when the contiguous dim is a multiple of 4).
    let r4 = max(params.rows, 4u) - 4u;
    let c4 = max(params.cols, 4u) - 4u;
    // The bias seeds the accumulators (the dummy bias bound without one is never used).
    let hb = params.has_bias == 1u;
    let bor = params.bias_on_rows == 1u;
    let pi00 = select(pb + min(r0 + 0u * WG + 0u, rl) * params.x_rs, pb + min(r0 + 0u * WG, r4) / 4u + 0u * params.x_ks, p_rc);
    let pi01 = select(pb + min(r0 + 0u * WG + 1u, rl) * params.x_rs, pb + min(r0 + 0u * WG, r4) / 4u + 1u * params.x_ks, p_rc);
    let pi02 = select(pb + min(r0 + 0u * WG + 2u, rl) * params.x_rs, pb + min(r0 + 0u * WG, r4) / 4u + 2u * params.x_ks, p_rc);
    let pi03 = select(pb + min(r0 + 0u * WG + 3u, rl) * params.x_rs, pb + min(r0 + 0u * WG, r4) / 4u + 3u * params.x_ks, p_rc);
    let pi10 = select(pb + min(r0 + 4u * WG + 0u, rl) * params.x_rs, pb + min(r0 + 4u * WG, r4) / 4u + 0u * params.x_ks, p_rc);
    let pi11 = select(pb + min(r0 + 4u * WG + 1u, rl) * params.x_rs, pb + min(r0 + 4u * WG, r4) / 4u + 1u * params.x_ks, p_rc);
    let pi12 = select(pb + min(r0 + 4u * WG + 2u, rl) * params.x_rs, pb + min(r0 + 4u * WG, r4) / 4u + 2u * params.x_ks, p_rc);
    let pi13 = select(pb + min(r0 + 4u * WG + 3u, rl) * params.x_rs, pb + min(r0 + 4u * WG, r4) / 4u + 3u * params.x_ks, p_rc);
    let pi20 = select(pb + min(r0 + 8u * WG + 0u, rl) * params.x_rs, pb + min(r0 + 8u * WG, r4) / 4u + 0u * params.x_ks, p_rc);
    let pi21 = select(pb + min(r0 + 8u * WG + 1u, rl) * params.x_rs, pb + min(r0 + 8u * WG, r4) / 4u + 1u * params.x_ks, p_rc);
    let pi22 = select(pb + min(r0 + 8u * WG + 2u, rl) * params.x_rs, pb + min(r0 + 8u * WG, r4) / 4u + 2u * params.x_ks, p_rc);
    let pi23 = select(pb + min(r0 + 8u * WG + 3u, rl) * params.x_rs, pb + min(r0 + 8u * WG, r4) / 4u + 3u * params.x_ks, p_rc);
    let qi00 = select(qb + min(s0 + 0u, cl) * params.y_ss, qb + min(s0 + 0u, c4) / 4u + 0u * params.y_ks, q_sc);
    let qi01 = select(qb + min(s0 + 1u, cl) * params.y_ss, qb + min(s0 + 0u, c4) / 4u + 1u * params.y_ks, q_sc);
    let qi02 = select(qb + min(s0 + 2u, cl) * params.y_ss, qb + min(s0 + 0u, c4) / 4u + 2u * params.y_ks, q_sc);
    let qi03 = select(qb + min(s0 + 3u, cl) * params.y_ss, qb + min(s0 + 0u, c4) / 4u + 3u * params.y_ks, q_sc);
    let qi10 = select(qb + min(s0 + 4u, cl) * params.y_ss, qb + min(s0 + 4u, c4) / 4u + 0u * params.y_ks, q_sc);
    let qi11 = select(qb + min(s0 + 5u, cl) * params.y_ss, qb + min(s0 + 4u, c4) / 4u + 1u * params.y_ks, q_sc);
    let qi12 = select(qb + min(s0 + 6u, cl) * params.y_ss, qb + min(s0 + 4u, c4) / 4u + 2u * params.y_ks, q_sc);
    let qi13 = select(qb + min(s0 + 7u, cl) * params.y_ss, qb + min(s0 + 4u, c4) / 4u + 3u * params.y_ks, q_sc);
    let qi20 = select(qb + min(s0 + 8u, cl) * params.y_ss, qb + min(s0 + 8u, c4) / 4u + 0u * params.y_ks, q_sc);
    let qi21 = select(qb + min(s0 + 9u, cl) * params.y_ss, qb + min(s0 + 8u, c4) / 4u + 1u * params.y_ks, q_sc);
    let qi22 = select(qb + min(s0 + 10u, cl) * params.y_ss, qb + min(s0 + 8u, c4) / 4u + 2u * params.y_ks, q_sc);
    let qi23 = select(qb + min(s0 + 11u, cl) * params.y_ss, qb + min(s0 + 8u, c4) / 4u + 3u * params.y_ks, q_sc);
    let qi30 = select(qb + min(s0 + 12u, cl) * params.y_ss, qb + min(s0 + 12u, c4) / 4u + 0u * params.y_ks, q_sc);
    let qi31 = select(qb + min(s0 + 13u, cl) * params.y_ss, qb + min(s0 + 12u, c4) / 4u + 1u * params.y_ks, q_sc);
    let qi32 = select(qb + min(s0 + 14u, cl) * params.y_ss, qb + min(s0 + 12u, c4) / 4u + 2u * params.y_ks, q_sc);
    let qi33 = select(qb + min(s0 + 15u, cl) * params.y_ss, qb + min(s0 + 12u, c4) / 4u + 3u * params.y_ks, q_sc);
    let qi40 = select(qb + min(s0 + 16u, cl) * params.y_ss, qb + min(s0 + 16u, c4) / 4u + 0u * params.y_ks, q_sc);
    let qi41 = select(qb + min(s0 + 17u, cl) * params.y_ss, qb + min(s0 + 16u, c4) / 4u + 1u * params.y_ks, q_sc);
    let qi42 = select(qb + min(s0 + 18u, cl) * params.y_ss, qb + min(s0 + 16u, c4) / 4u + 2u * params.y_ks, q_sc);
    let qi43 = select(qb + min(s0 + 19u, cl) * params.y_ss, qb + min(s0 + 16u, c4) / 4u + 3u * params.y_ks, q_sc);
    let qi50 = select(qb + min(s0 + 20u, cl) * params.y_ss, qb + min(s0 + 20u, c4) / 4u + 0u * params.y_ks, q_sc);
    let qi51 = select(qb + min(s0 + 21u, cl) * params.y_ss, qb + min(s0 + 20u, c4) / 4u + 1u * params.y_ks, q_sc);
    let qi52 = select(qb + min(s0 + 22u, cl) * params.y_ss, qb + min(s0 + 20u, c4) / 4u + 2u * params.y_ks, q_sc);
    let qi53 = select(qb + min(s0 + 23u, cl) * params.y_ss, qb + min(s0 + 20u, c4) / 4u + 3u * params.y_ks, q_sc);
    let cb0 = vec4<f32>(bias[min(s0 + 0u, cl)], bias[min(s0 + 1u, cl)], bias[min(s0 + 2u, cl)], bias[min(s0 + 3u, cl)]);
    let cb1 = vec4<f32>(bias[min(s0 + 4u, cl)], bias[min(s0 + 5u, cl)], bias[min(s0 + 6u, cl)], bias[min(s0 + 7u, cl)]);
    let cb2 = vec4<f32>(bias[min(s0 + 8u, cl)], bias[min(s0 + 9u, cl)], bias[min(s0 + 10u, cl)], bias[min(s0 + 11u, cl)]);
    let cb3 = vec4<f32>(bias[min(s0 + 12u, cl)], bias[min(s0 + 13u, cl)], bias[min(s0 + 14u, cl)], bias[min(s0 + 15u, cl)]);
    let cb4 = vec4<f32>(bias[min(s0 + 16u, cl)], bias[min(s0 + 17u, cl)], bias[min(s0 + 18u, cl)], bias[min(s0 + 19u, cl)]);
    let cb5 = vec4<f32>(bias[min(s0 + 20u, cl)], bias[min(s0 + 21u, cl)], bias[min(s0 + 22u, cl)], bias[min(s0 + 23u, cl)]);
    let rb0 = vec4<f32>(bias[min(r0 + 0u * WG + 0u, rl)]);
    let rb1 = vec4<f32>(bias[min(r0 + 0u * WG + 1u, rl)]);
    let rb2 = vec4<f32>(bias[min(r0 + 0u * WG + 2u, rl)]);
    let rb3 = vec4<f32>(bias[min(r0 + 0u * WG + 3u, rl)]);
    let rb4 = vec4<f32>(bias[min(r0 + 4u * WG + 0u, rl)]);
    let rb5 = vec4<f32>(bias[min(r0 + 4u * WG + 1u, rl)]);
    let rb6 = vec4<f32>(bias[min(r0 + 4u * WG + 2u, rl)]);
    let rb7 = vec4<f32>(bias[min(r0 + 4u * WG + 3u, rl)]);
    let rb8 = vec4<f32>(bias[min(r0 + 8u * WG + 0u, rl)]);
    let rb9 = vec4<f32>(bias[min(r0 + 8u * WG + 1u, rl)]);
    let rb10 = vec4<f32>(bias[min(r0 + 8u * WG + 2u, rl)]);
    let rb11 = vec4<f32>(bias[min(r0 + 8u * WG + 3u, rl)]);
    var a0_0 = select(vec4<f32>(0.0), select(cb0, rb0, bor), hb); var a0_1 = select(vec4<f32>(0.0), select(cb1, rb0, bor), hb); var a0_2 = select(vec4<f32>(0.0), select(cb2, rb0, bor), hb); var a0_3 = select(vec4<f32>(0.0), select(cb3, rb0, bor), hb); var a0_4 = select(vec4<f32>(0.0), select(cb4, rb0, bor), hb); var a0_5 = select(vec4<f32>(0.0), select(cb5, rb0, bor), hb);
    var a1_0 = select(vec4<f32>(0.0), select(cb0, rb1, bor), hb); var a1_1 = select(vec4<f32>(0.0), select(cb1, rb1, bor), hb); var a1_2 = select(vec4<f32>(0.0), select(cb2, rb1, bor), hb); var a1_3 = select(vec4<f32>(0.0), select(cb3, rb1, bor), hb); var a1_4 = select(vec4<f32>(0.0), select(cb4, rb1, bor), hb); var a1_5 = select(vec4<f32>(0.0), select(cb5, rb1, bor), hb);
    var a2_0 = select(vec4<f32>(0.0), select(cb0, rb2, bor), hb); var a2_1 = select(vec4<f32>(0.0), select(cb1, rb2, bor), hb); var a2_2 = select(vec4<f32>(0.0), select(cb2, rb2, bor), hb); var a2_3 = select(vec4<f32>(0.0), select(cb3, rb2, bor), hb); var a2_4 = select(vec4<f32>(0.0), select(cb4, rb2, bor), hb); var a2_5 = select(vec4<f32>(0.0), select(cb5, rb2, bor), hb);
    var a3_0 = select(vec4<f32>(0.0), select(cb0, rb3, bor), hb); var a3_1 = select(vec4<f32>(0.0), select(cb1, rb3, bor), hb); var a3_2 = select(vec4<f32>(0.0), select(cb2, rb3, bor), hb); var a3_3 = select(vec4<f32>(0.0), select(cb3, rb3, bor), hb); var a3_4 = select(vec4<f32>(0.0), select(cb4, rb3, bor), hb); var a3_5 = select(vec4<f32>(0.0), select(cb5, rb3, bor), hb);
    var a4_0 = select(vec4<f32>(0.0), select(cb0, rb4, bor), hb); var a4_1 = select(vec4<f32>(0.0), select(cb1, rb4, bor), hb); var a4_2 = select(vec4<f32>(0.0), select(cb2, rb4, bor), hb); var a4_3 = select(vec4<f32>(0.0), select(cb3, rb4, bor), hb); var a4_4 = select(vec4<f32>(0.0), select(cb4, rb4, bor), hb); var a4_5 = select(vec4<f32>(0.0), select(cb5, rb4, bor), hb);
    var a5_0 = select(vec4<f32>(0.0), select(cb0, rb5, bor), hb); var a5_1 = select(vec4<f32>(0.0), select(cb1, rb5, bor), hb); var a5_2 = select(vec4<f32>(0.0), select(cb2, rb5, bor), hb); var a5_3 = select(vec4<f32>(0.0), select(cb3, rb5, bor), hb); var a5_4 = select(vec4<f32>(0.0), select(cb4, rb5, bor), hb); var a5_5 = select(vec4<f32>(0.0), select(cb5, rb5, bor), hb);
    var a6_0 = select(vec4<f32>(0.0), select(cb0, rb6, bor), hb); var a6_1 = select(vec4<f32>(0.0), select(cb1, rb6, bor), hb); var a6_2 = select(vec4<f32>(0.0), select(cb2, rb6, bor), hb); var a6_3 = select(vec4<f32>(0.0), select(cb3, rb6, bor), hb); var a6_4 = select(vec4<f32>(0.0), select(cb4, rb6, bor), hb); var a6_5 = select(vec4<f32>(0.0), select(cb5, rb6, bor), hb);
    var a7_0 = select(vec4<f32>(0.0), select(cb0, rb7, bor), hb); var a7_1 = select(vec4<f32>(0.0), select(cb1, rb7, bor), hb); var a7_2 = select(vec4<f32>(0.0), select(cb2, rb7, bor), hb); var a7_3 = select(vec4<f32>(0.0), select(cb3, rb7, bor), hb); var a7_4 = select(vec4<f32>(0.0), select(cb4, rb7, bor), hb); var a7_5 = select(vec4<f32>(0.0), select(cb5, rb7, bor), hb);
    var a8_0 = select(vec4<f32>(0.0), select(cb0, rb8, bor), hb); var a8_1 = select(vec4<f32>(0.0), select(cb1, rb8, bor), hb); var a8_2 = select(vec4<f32>(0.0), select(cb2, rb8, bor), hb); var a8_3 = select(vec4<f32>(0.0), select(cb3, rb8, bor), hb); var a8_4 = select(vec4<f32>(0.0), select(cb4, rb8, bor), hb); var a8_5 = select(vec4<f32>(0.0), select(cb5, rb8, bor), hb);
    var a9_0 = select(vec4<f32>(0.0), select(cb0, rb9, bor), hb); var a9_1 = select(vec4<f32>(0.0), select(cb1, rb9, bor), hb); var a9_2 = select(vec4<f32>(0.0), select(cb2, rb9, bor), hb); var a9_3 = select(vec4<f32>(0.0), select(cb3, rb9, bor), hb); var a9_4 = select(vec4<f32>(0.0), select(cb4, rb9, bor), hb); var a9_5 = select(vec4<f32>(0.0), select(cb5, rb9, bor), hb);
    var a10_0 = select(vec4<f32>(0.0), select(cb0, rb10, bor), hb); var a10_1 = select(vec4<f32>(0.0), select(cb1, rb10, bor), hb); var a10_2 = select(vec4<f32>(0.0), select(cb2, rb10, bor), hb); var a10_3 = select(vec4<f32>(0.0), select(cb3, rb10, bor), hb); var a10_4 = select(vec4<f32>(0.0), select(cb4, rb10, bor), hb); var a10_5 = select(vec4<f32>(0.0), select(cb5, rb10, bor), hb);
    var a11_0 = select(vec4<f32>(0.0), select(cb0, rb11, bor), hb); var a11_1 = select(vec4<f32>(0.0), select(cb1, rb11, bor), hb); var a11_2 = select(vec4<f32>(0.0), select(cb2, rb11, bor), hb); var a11_3 = select(vec4<f32>(0.0), select(cb3, rb11, bor), hb); var a11_4 = select(vec4<f32>(0.0), select(cb4, rb11, bor), hb); var a11_5 = select(vec4<f32>(0.0), select(cb5, rb11, bor), hb);
    for (var kq = 0u; kq < params.k; kq++) {
        let pk = kq * pstep;
        let qk = kq * qstep;
        var p0: vec4<f32>;
        var p1: vec4<f32>;
        var p2: vec4<f32>;
        var p3: vec4<f32>;
        var p4: vec4<f32>;
        var p5: vec4<f32>;
        var p6: vec4<f32>;
        var p7: vec4<f32>;
        var p8: vec4<f32>;
        var p9: vec4<f32>;
        var p10: vec4<f32>;
        var p11: vec4<f32>;
        let l0 = mat4x4<f32>(p[pi00 + pk], p[pi01 + pk], p[pi02 + pk], p[pi03 + pk]);
        let lt0 = transpose(l0);
        p0 = select(l0[0], lt0[0], p_rc);
        p1 = select(l0[1], lt0[1], p_rc);
        p2 = select(l0[2], lt0[2], p_rc);
        p3 = select(l0[3], lt0[3], p_rc);
        if RP > 4u {
            let l1 = mat4x4<f32>(p[pi10 + pk], p[pi11 + pk], p[pi12 + pk], p[pi13 + pk]);
            let lt1 = transpose(l1);
            p4 = select(l1[0], lt1[0], p_rc);
            p5 = select(l1[1], lt1[1], p_rc);
            p6 = select(l1[2], lt1[2], p_rc);
            p7 = select(l1[3], lt1[3], p_rc);
        }
        if RP > 8u {
            let l2 = mat4x4<f32>(p[pi20 + pk], p[pi21 + pk], p[pi22 + pk], p[pi23 + pk]);
            let lt2 = transpose(l2);
            p8 = select(l2[0], lt2[0], p_rc);
            p9 = select(l2[1], lt2[1], p_rc);
            p10 = select(l2[2], lt2[2], p_rc);
            p11 = select(l2[3], lt2[3], p_rc);
        }
        let m0 = mat4x4<f32>(q[qi00 + qk], q[qi01 + qk], q[qi02 + qk], q[qi03 + qk]);
        let mt0 = transpose(m0);
        // Column kk of q0: K index kk of four output columns, so q0 * p = 4 dot products.
        let q0 = mat4x4<f32>(
            select(mt0[0], m0[0], q_sc),
            select(mt0[1], m0[1], q_sc),
            select(mt0[2], m0[2], q_sc),
            select(mt0[3], m0[3], q_sc),
        );
        a0_0 += q0 * p0; a1_0 += q0 * p1; a2_0 += q0 * p2; a3_0 += q0 * p3;
        if RP > 4u { a4_0 += q0 * p4; a5_0 += q0 * p5; a6_0 += q0 * p6; a7_0 += q0 * p7; }
        if RP > 8u { a8_0 += q0 * p8; a9_0 += q0 * p9; a10_0 += q0 * p10; a11_0 += q0 * p11; }
        if TQ > 1u {
            let m1 = mat4x4<f32>(q[qi10 + qk], q[qi11 + qk], q[qi12 + qk], q[qi13 + qk]);
            let mt1 = transpose(m1);
            // Column kk of q1: K index kk of four output columns, so q1 * p = 4 dot products.
            let q1 = mat4x4<f32>(
                select(mt1[0], m1[0], q_sc),
                select(mt1[1], m1[1], q_sc),
                select(mt1[2], m1[2], q_sc),
                select(mt1[3], m1[3], q_sc),
            );
            a0_1 += q1 * p0; a1_1 += q1 * p1; a2_1 += q1 * p2; a3_1 += q1 * p3;
            if RP > 4u { a4_1 += q1 * p4; a5_1 += q1 * p5; a6_1 += q1 * p6; a7_1 += q1 * p7; }
            if RP > 8u { a8_1 += q1 * p8; a9_1 += q1 * p9; a10_1 += q1 * p10; a11_1 += q1 * p11; }
        }
        if TQ > 2u {
            let m2 = mat4x4<f32>(q[qi20 + qk], q[qi21 + qk], q[qi22 + qk], q[qi23 + qk]);
            let mt2 = transpose(m2);
            // Column kk of q2: K index kk of four output columns, so q2 * p = 4 dot products.
            let q2 = mat4x4<f32>(
                select(mt2[0], m2[0], q_sc),
                select(mt2[1], m2[1], q_sc),
                select(mt2[2], m2[2], q_sc),
                select(mt2[3], m2[3], q_sc),
            );
            a0_2 += q2 * p0; a1_2 += q2 * p1; a2_2 += q2 * p2; a3_2 += q2 * p3;
            if RP > 4u { a4_2 += q2 * p4; a5_2 += q2 * p5; a6_2 += q2 * p6; a7_2 += q2 * p7; }
            if RP > 8u { a8_2 += q2 * p8; a9_2 += q2 * p9; a10_2 += q2 * p10; a11_2 += q2 * p11; }
        }
        if TQ > 3u {
            let m3 = mat4x4<f32>(q[qi30 + qk], q[qi31 + qk], q[qi32 + qk], q[qi33 + qk]);
            let mt3 = transpose(m3);
            // Column kk of q3: K index kk of four output columns, so q3 * p = 4 dot products.
            let q3 = mat4x4<f32>(
                select(mt3[0], m3[0], q_sc),
                select(mt3[1], m3[1], q_sc),
                select(mt3[2], m3[2], q_sc),
                select(mt3[3], m3[3], q_sc),
            );
            a0_3 += q3 * p0; a1_3 += q3 * p1; a2_3 += q3 * p2; a3_3 += q3 * p3;
            if RP > 4u { a4_3 += q3 * p4; a5_3 += q3 * p5; a6_3 += q3 * p6; a7_3 += q3 * p7; }
            if RP > 8u { a8_3 += q3 * p8; a9_3 += q3 * p9; a10_3 += q3 * p10; a11_3 += q3 * p11; }
        }
        if TQ > 4u {
            let m4 = mat4x4<f32>(q[qi40 + qk], q[qi41 + qk], q[qi42 + qk], q[qi43 + qk]);
            let mt4 = transpose(m4);
            // Column kk of q4: K index kk of four output columns, so q4 * p = 4 dot products.
            let q4 = mat4x4<f32>(
                select(mt4[0], m4[0], q_sc),
                select(mt4[1], m4[1], q_sc),
                select(mt4[2], m4[2], q_sc),
                select(mt4[3], m4[3], q_sc),
            );
            a0_4 += q4 * p0; a1_4 += q4 * p1; a2_4 += q4 * p2; a3_4 += q4 * p3;
            if RP > 4u { a4_4 += q4 * p4; a5_4 += q4 * p5; a6_4 += q4 * p6; a7_4 += q4 * p7; }
            if RP > 8u { a8_4 += q4 * p8; a9_4 += q4 * p9; a10_4 += q4 * p10; a11_4 += q4 * p11; }
        }
        if TQ > 5u {
            let m5 = mat4x4<f32>(q[qi50 + qk], q[qi51 + qk], q[qi52 + qk], q[qi53 + qk]);
            let mt5 = transpose(m5);
            // Column kk of q5: K index kk of four output columns, so q5 * p = 4 dot products.
            let q5 = mat4x4<f32>(
                select(mt5[0], m5[0], q_sc),
                select(mt5[1], m5[1], q_sc),
                select(mt5[2], m5[2], q_sc),
                select(mt5[3], m5[3], q_sc),
            );
            a0_5 += q5 * p0; a1_5 += q5 * p1; a2_5 += q5 * p2; a3_5 += q5 * p3;
            if RP > 4u { a4_5 += q5 * p4; a5_5 += q5 * p5; a6_5 += q5 * p6; a7_5 += q5 * p7; }
            if RP > 8u { a8_5 += q5 * p8; a9_5 += q5 * p9; a10_5 += q5 * p10; a11_5 += q5 * p11; }
        }
    }
    let ob = b * params.o_batch;
    let ro0 = r0 + 0u * WG + 0u;
    put4(ob, ro0, s0, a0_0);
    if TQ > 1u { put4(ob, ro0, s0 + 4u, a0_1); }
    if TQ > 2u { put4(ob, ro0, s0 + 8u, a0_2); }
    if TQ > 3u { put4(ob, ro0, s0 + 12u, a0_3); }
    if TQ > 4u { put4(ob, ro0, s0 + 16u, a0_4); }
    if TQ > 5u { put4(ob, ro0, s0 + 20u, a0_5); }
    let ro1 = r0 + 0u * WG + 1u;
    put4(ob, ro1, s0, a1_0);
    if TQ > 1u { put4(ob, ro1, s0 + 4u, a1_1); }
    if TQ > 2u { put4(ob, ro1, s0 + 8u, a1_2); }
    if TQ > 3u { put4(ob, ro1, s0 + 12u, a1_3); }
    if TQ > 4u { put4(ob, ro1, s0 + 16u, a1_4); }
    if TQ > 5u { put4(ob, ro1, s0 + 20u, a1_5); }
    let ro2 = r0 + 0u * WG + 2u;
    put4(ob, ro2, s0, a2_0);
    if TQ > 1u { put4(ob, ro2, s0 + 4u, a2_1); }
    if TQ > 2u { put4(ob, ro2, s0 + 8u, a2_2); }
    if TQ > 3u { put4(ob, ro2, s0 + 12u, a2_3); }
    if TQ > 4u { put4(ob, ro2, s0 + 16u, a2_4); }
    if TQ > 5u { put4(ob, ro2, s0 + 20u, a2_5); }
    let ro3 = r0 + 0u * WG + 3u;
    put4(ob, ro3, s0, a3_0);
    if TQ > 1u { put4(ob, ro3, s0 + 4u, a3_1); }
    if TQ > 2u { put4(ob, ro3, s0 + 8u, a3_2); }
    if TQ > 3u { put4(ob, ro3, s0 + 12u, a3_3); }
    if TQ > 4u { put4(ob, ro3, s0 + 16u, a3_4); }
    if TQ > 5u { put4(ob, ro3, s0 + 20u, a3_5); }
    if RP > 4u {
        let ro4 = r0 + 4u * WG + 0u;
        put4(ob, ro4, s0, a4_0);
        if TQ > 1u { put4(ob, ro4, s0 + 4u, a4_1); }
        if TQ > 2u { put4(ob, ro4, s0 + 8u, a4_2); }
        if TQ > 3u { put4(ob, ro4, s0 + 12u, a4_3); }
        if TQ > 4u { put4(ob, ro4, s0 + 16u, a4_4); }
        if TQ > 5u { put4(ob, ro4, s0 + 20u, a4_5); }
        let ro5 = r0 + 4u * WG + 1u;
        put4(ob, ro5, s0, a5_0);
        if TQ > 1u { put4(ob, ro5, s0 + 4u, a5_1); }
        if TQ > 2u { put4(ob, ro5, s0 + 8u, a5_2); }
        if TQ > 3u { put4(ob, ro5, s0 + 12u, a5_3); }
        if TQ > 4u { put4(ob, ro5, s0 + 16u, a5_4); }
        if TQ > 5u { put4(ob, ro5, s0 + 20u, a5_5); }
        let ro6 = r0 + 4u * WG + 2u;
        put4(ob, ro6, s0, a6_0);
        if TQ > 1u { put4(ob, ro6, s0 + 4u, a6_1); }
        if TQ > 2u { put4(ob, ro6, s0 + 8u, a6_2); }
        if TQ > 3u { put4(ob, ro6, s0 + 12u, a6_3); }
        if TQ > 4u { put4(ob, ro6, s0 + 16u, a6_4); }
        if TQ > 5u { put4(ob, ro6, s0 + 20u, a6_5); }
        let ro7 = r0 + 4u * WG + 3u;
        put4(ob, ro7, s0, a7_0);
        if TQ > 1u { put4(ob, ro7, s0 + 4u, a7_1); }
        if TQ > 2u { put4(ob, ro7, s0 + 8u, a7_2); }
        if TQ > 3u { put4(ob, ro7, s0 + 12u, a7_3); }
        if TQ > 4u { put4(ob, ro7, s0 + 16u, a7_4); }
        if TQ > 5u { put4(ob, ro7, s0 + 20u, a7_5); }
    }
    if RP > 8u {
        let ro8 = r0 + 8u * WG + 0u;
        put4(ob, ro8, s0, a8_0);
        if TQ > 1u { put4(ob, ro8, s0 + 4u, a8_1); }
        if TQ > 2u { put4(ob, ro8, s0 + 8u, a8_2); }
        if TQ > 3u { put4(ob, ro8, s0 + 12u, a8_3); }
        if TQ > 4u { put4(ob, ro8, s0 + 16u, a8_4); }
        if TQ > 5u { put4(ob, ro8, s0 + 20u, a8_5); }
        let ro9 = r0 + 8u * WG + 1u;
        put4(ob, ro9, s0, a9_0);
        if TQ > 1u { put4(ob, ro9, s0 + 4u, a9_1); }
        if TQ > 2u { put4(ob, ro9, s0 + 8u, a9_2); }
        if TQ > 3u { put4(ob, ro9, s0 + 12u, a9_3); }
        if TQ > 4u { put4(ob, ro9, s0 + 16u, a9_4); }
        if TQ > 5u { put4(ob, ro9, s0 + 20u, a9_5); }
        let ro10 = r0 + 8u * WG + 2u;
        put4(ob, ro10, s0, a10_0);
        if TQ > 1u { put4(ob, ro10, s0 + 4u, a10_1); }
        if TQ > 2u { put4(ob, ro10, s0 + 8u, a10_2); }
        if TQ > 3u { put4(ob, ro10, s0 + 12u, a10_3); }
        if TQ > 4u { put4(ob, ro10, s0 + 16u, a10_4); }
        if TQ > 5u { put4(ob, ro10, s0 + 20u, a10_5); }
        let ro11 = r0 + 8u * WG + 3u;
        put4(ob, ro11, s0, a11_0);
        if TQ > 1u { put4(ob, ro11, s0 + 4u, a11_1); }
        if TQ > 2u { put4(ob, ro11, s0 + 8u, a11_2); }
        if TQ > 3u { put4(ob, ro11, s0 + 12u, a11_3); }
        if TQ > 4u { put4(ob, ro11, s0 + 16u, a11_4); }
        if TQ > 5u { put4(ob, ro11, s0 + 20u, a11_5); }
    }
}

// ---------------------------------------------------------------- mm_tiled (real GPUs)

// Invocation (x, y) owns rows 4y..4y+3 and columns 4x..4x+3 of a (4*TS)^2 tile. The tiles
// are stored as vec4s of 4 rows (xs) or 4 columns (ys) and the accumulators are named
// vectors: naga zero-initialises workgroup arrays element by element for GLSL, and GLSL and
// llvmpipe compile indexed private arrays slowly.
const TILE: u32 = TS * 4u;
var<workgroup> xs: array<vec4<f32>, BK * TS>; // [BK][TS] x 4 rows
var<workgroup> ys: array<vec4<f32>, BK * TS>; // [BK][TS] x 4 columns

// Writes v (plus bias) to row r, columns s..s+3, inside the output.
fn tiled_put(ob: u32, r: u32, s: u32, v: vec4<f32>) {
    if r >= params.rows {
        return;
    }
    let hb = params.has_bias == 1u;
    for (var j = 0u; j < 4u; j++) {
        let c = s + j;
        if c < params.cols {
            out[ob + r * params.o_rs + c * params.o_ss] = v[j] + select(0.0, bias_at(r, c), hb);
        }
    }
}

@compute @workgroup_size(TS, TS)
fn mm_tiled(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let lin = wid.x + wid.y * nwg.x;
    let sb = lin % params.s_blocks;
    let rb = lin / params.s_blocks;
    let b = wid.z;
    let tid = lid.y * TS + lid.x;
    let xb = b * params.x_batch;
    let yb = b * params.y_batch;
    // Let adjacent invocations read adjacent addresses whichever stride is contiguous.
    let x_k_fast = params.x_ks == 1u;
    let y_k_fast = params.y_ks == 1u && params.y_ss != 1u;
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    for (var kt = 0u; kt < params.k; kt += BK) {
        for (var e = tid; e < TILE * BK; e += TS * TS) {
            let row = select(e % TILE, e / BK, x_k_fast);
            let kk = select(e / TILE, e % BK, x_k_fast);
            let r = rb * TILE + row;
            let kg = kt + kk;
            var v = 0.0;
            if r < params.rows && kg < params.k {
                v = x[xb + r * params.x_rs + kg * params.x_ks];
            }
            xs[kk * TS + row / 4u][row % 4u] = v;
        }
        for (var e = tid; e < TILE * BK; e += TS * TS) {
            let col = select(e % TILE, e / BK, y_k_fast);
            let kk = select(e / TILE, e % BK, y_k_fast);
            let s = sb * TILE + col;
            let kg = kt + kk;
            var v = 0.0;
            if s < params.cols && kg < params.k {
                v = y[yb + kg * params.y_ks + s * params.y_ss];
            }
            ys[kk * TS + col / 4u][col % 4u] = v;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            let xv = xs[kk * TS + lid.y];
            let c = ys[kk * TS + lid.x];
            a0 += xv.x * c;
            a1 += xv.y * c;
            a2 += xv.z * c;
            a3 += xv.w * c;
        }
        workgroupBarrier();
    }
    let ob = b * params.o_batch;
    let r = rb * TILE + 4u * lid.y;
    let s = sb * TILE + 4u * lid.x;
    tiled_put(ob, r, s, a0);
    tiled_put(ob, r + 1u, s, a1);
    tiled_put(ob, r + 2u, s, a2);
    tiled_put(ob, r + 3u, s, a3);
}

// ---------------------------------------------------------------- pack

// out[b, r, kk] = X[b, r, kk] for kk < K, 0 up to the padded length `cols`.
@compute @workgroup_size(256)
fn pack(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if i >= params.s_blocks {
        return;
    }
    let kk = i % params.cols;
    let rest = i / params.cols;
    let r = rest % params.rows;
    let b = rest / params.rows;
    var v = 0.0;
    if kk < params.k {
        v = x[b * params.x_batch + r * params.x_rs + kk * params.x_ks];
    }
    out[i] = v;
}
