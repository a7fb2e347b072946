// Winograd F(2x2, 3x3) convolution (stride 1, zero padding): the transforms around 16 batched
// matmuls. Each 2x2 output tile needs a 4x4 input patch d; with B, G, A the F(2x2, 3x3)
// matrices, the tile is A^T [(G g G^T) . (B^T d B)] A, so the 16 elements of the transformed
// domain are 16 independent matmuls over the channels, 2.25x fewer multiplies than direct.
// Tiles are numbered over (n, tile row, tile column) of the output; a launch covers the
// `tiles` tiles from `tile0` (a chunk, so the transformed operands stay small).
//
// Binding convention: output first (read_write), then inputs (read). Its uniform, binding 0
// and index helpers come from conv_common.wgsl, prepended; binding 2 of wino_weight,
// `weight`, with its reader load_weight, from conv_w32.wgsl or conv_w16.wgsl, appended.

@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;       // wino_input
@group(0) @binding(2) var<storage, read> m: array<f32>;       // wino_output
@group(0) @binding(3) var<storage, read> bias: array<f32>;    // wino_output

// Tile `t` of the launch as its image, tile row and tile column.
fn tile_of(t: u32) -> Pixel {
    return pixel_of(params.tile0 + t, params.tiles_h, params.tiles_w);
}

// Writes a transformed 4x4 tile (rows of vec4s) as 16 matrices' element i: element e (row-major)
// at e * stride + i.
fn store_tile(tile: array<vec4<f32>, 4>, stride: u32, i: u32) {
    for (var r = 0u; r < 4u; r++) {
        for (var s = 0u; s < 4u; s++) {
            out[(4u * r + s) * stride + i] = tile[r][s];
        }
    }
}

// B^T v for the 4 values of one patch column (or, on the transposed pass, one row).
fn input_1d(v: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(v.x - v.z, v.y + v.z, v.z - v.y, v.y - v.w);
}

// out = V [16, tiles, cin]: element (e, t, c) is element e (row-major 4x4) of B^T d B for
// the 4x4 patch d of channel c under tile t (zero outside x [n, cin, h, w]). One thread per
// (tile, channel), channels fastest.
@compute @workgroup_size(256)
fn wino_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg, 256u);
    if i >= params.total { return; }
    let t = i / params.cin;
    let c = i - t * params.cin;
    let tile = tile_of(t);
    let y0 = i32(2u * tile.y) - i32(params.pad_t);
    let x0 = i32(2u * tile.x) - i32(params.pad_l);
    let plane = x0 + i32((tile.b * params.cin + c) * params.h * params.w);
    // Rows of B^T d: combine the 4 input rows column by column.
    var rows: array<vec4<f32>, 4>;
    var d: array<vec4<f32>, 4>;
    for (var r = 0u; r < 4u; r++) {
        let iy = y0 + i32(r);
        let row_in = iy >= 0 && iy < i32(params.h);
        var v = vec4<f32>(0.0);
        for (var s = 0u; s < 4u; s++) {
            let ix = x0 + i32(s);
            if row_in && ix >= 0 && ix < i32(params.w) {
                v[s] = x[u32(plane + iy * i32(params.w) + i32(s))];
            }
        }
        d[r] = v;
    }
    rows[0] = d[0] - d[2];
    rows[1] = d[1] + d[2];
    rows[2] = d[2] - d[1];
    rows[3] = d[1] - d[3];
    for (var r = 0u; r < 4u; r++) { rows[r] = input_1d(rows[r]); }
    store_tile(rows, params.tiles * params.cin, i);
}

// out = U [16, c_count, cin]: element (e, j, ci) is element e of G g G^T for the 3x3 kernel g
// of output channel co = c_first + j and input channel ci; weight [cout, cin, 3, 3], or with
// w_flip [cin, cout, 3, 3] read with the taps reversed (an input gradient). One thread per
// (j, ci), params.total of them.
@compute @workgroup_size(256)
fn wino_weight(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg, 256u);
    if i >= params.total { return; }
    let j = i / params.cin;
    let ci = i - j * params.cin;
    let co = params.c_first + j;
    let flip = params.w_flip == 1u;
    let base = select((co * params.cin + ci) * 9u, (ci * params.cout + co) * 9u, flip);
    var g: array<vec3<f32>, 3>;
    for (var r = 0u; r < 3u; r++) {
        var v = vec3<f32>(0.0);
        for (var s = 0u; s < 3u; s++) {
            let tap = select(3u * r + s, 8u - 3u * r - s, flip);
            v[s] = load_weight(base + tap);
        }
        g[r] = v;
    }
    // G g: rows g0, (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2, g2.
    var gg: array<vec3<f32>, 4>;
    gg[0] = g[0];
    gg[1] = 0.5 * (g[0] + g[1] + g[2]);
    gg[2] = 0.5 * (g[0] - g[1] + g[2]);
    gg[3] = g[2];
    // (G g) G^T: the same combination along each row.
    var u: array<vec4<f32>, 4>;
    for (var r = 0u; r < 4u; r++) {
        let v = gg[r];
        u[r] = vec4<f32>(v.x, 0.5 * (v.x + v.y + v.z), 0.5 * (v.x - v.y + v.z), v.z);
    }
    store_tile(u, params.c_count * params.cin, i);
}

// out = y [n, cout, ho, wo] at the launch's tiles and channels c_first.. c_first + c_count:
// A^T M A (+ bias) of the 16 matmul results m [16, tiles, c_count] of each (tile, channel);
// pixels past ho, wo are not written. One thread per (channel, tile), tiles fastest.
@compute @workgroup_size(256)
fn wino_output(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg, 256u);
    if i >= params.total { return; }
    let j = i / params.tiles;
    let t = i - j * params.tiles;
    let stride = params.tiles * params.c_count;
    let at = t * params.c_count + j;
    let co = params.c_first + j;
    var q: array<vec4<f32>, 4>;
    for (var r = 0u; r < 4u; r++) {
        q[r] = vec4<f32>(m[(4u * r) * stride + at], m[(4u * r + 1u) * stride + at],
                         m[(4u * r + 2u) * stride + at], m[(4u * r + 3u) * stride + at]);
    }
    // A^T q: rows q0 + q1 + q2 and q1 - q2 - q3; then the same along each row.
    let top = q[0] + q[1] + q[2];
    let bottom = q[1] - q[2] - q[3];
    let b = bias[co];
    let v = array<vec2<f32>, 2>(
        vec2<f32>(top.x + top.y + top.z, top.y - top.z - top.w) + b,
        vec2<f32>(bottom.x + bottom.y + bottom.z, bottom.y - bottom.z - bottom.w) + b,
    );
    let tile = tile_of(t);
    let plane = (tile.b * params.cout + co) * params.ho * params.wo;
    for (var r = 0u; r < 2u; r++) {
        let oy = 2u * tile.y + r;
        for (var s = 0u; s < 2u; s++) {
            let ox = 2u * tile.x + s;
            if oy < params.ho && ox < params.wo {
                out[plane + oy * params.wo + ox] = v[r][s];
            }
        }
    }
}
