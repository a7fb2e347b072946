// Bidirectional attention within patches of `tokens` consecutive rows, straight from the fused
// projection and with the heads merged (inference): qkv [rows, 3, heads, D] (q | k | v), out
// [rows, heads, D], D = 4 * params.d4 (bound as vec4s). Row r attends to the rows of its patch
// (the next-patch head's attention over the tokens of one AR step). One thread per (row, head).

// struct Params: generated from the Rust `uniform!` in crates/bitdance/src/ops/attention/patch.rs
// (its fields are documented there) and prepended to this source.

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> qkv: array<vec4<f32>>;

// Most rows of a patch (the largest BitDance patch is 16 tokens).
const MAX_TOKENS: u32 = 16u;

// First vec4 of part `part` (0 q, 1 k, 2 v) of head h in row r of qkv.
fn part_at(r: u32, part: u32, h: u32) -> u32 {
    return ((r * 3u + part) * params.heads + h) * params.d4;
}

@compute @workgroup_size(256)
fn patch_attention(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if i >= params.rows * params.heads { return; }
    let row = i / params.heads;
    let h = i - row * params.heads;
    let first = row - row % params.tokens;
    let q = part_at(row, 0u, h);
    var weights: array<f32, MAX_TOKENS>;
    var top = -3.0e38;
    for (var j = 0u; j < params.tokens; j++) {
        let k = part_at(first + j, 1u, h);
        var s = 0.0;
        for (var d = 0u; d < params.d4; d++) { s += dot(qkv[q + d], qkv[k + d]); }
        weights[j] = s * params.scale;
        top = max(top, weights[j]);
    }
    var total = 0.0;
    for (var j = 0u; j < params.tokens; j++) {
        weights[j] = exp(weights[j] - top);
        total += weights[j];
    }
    let o = (row * params.heads + h) * params.d4;
    for (var d = 0u; d < params.d4; d++) {
        var acc = vec4<f32>(0.0);
        for (var j = 0u; j < params.tokens; j++) { acc += weights[j] * qkv[part_at(first + j, 2u, h) + d]; }
        out[o + d] = acc / total;
    }
}
