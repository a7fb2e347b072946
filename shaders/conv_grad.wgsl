// Gradients of the autoencoder's convolution family, built around the matmul kernels:
// im2col (the patches of x as matrix rows), col2im (the patches' gradients gathered back, no
// atomics) and space_to_depth (the inverse permutation of depth_to_space).
// Binding convention: outputs first (read_write), then inputs (read).
// Its uniform, binding 0 and index helpers come from conv_common.wgsl, prepended.

// Bindings are named for what they hold; names that share a binding number belong to
// different entry points.
@group(0) @binding(1) var<storage, read_write> cols: array<f32>;               // im2col
@group(0) @binding(1) var<storage, read_write> cols_packed: array<vec4<f32>>;  // im2col_packed
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;                 // col2im
@group(0) @binding(1) var<storage, read_write> y_out: array<f32>;              // space_to_depth
@group(0) @binding(2) var<storage, read> x_in: array<f32>;                        // im2col, space_to_depth
@group(0) @binding(2) var<storage, read> x_packed: array<vec4<f32>>;           // im2col_packed
@group(0) @binding(2) var<storage, read> dcols: array<f32>;                    // col2im

// cols [n * ho * wo, c * kh * kw]: row (b, oy, ox), column (ci, i, j) holds
// x_in[b, ci, oy * stride + i - pad_t, ox * stride + j - pad_l] (0 outside), x_in [n, c, h, w].
// One thread per (row, ci) writes that pair's kh * kw consecutive columns, so the index
// arithmetic (divisions are lane-by-lane loops on llvmpipe) is shared by all its taps.
// params.total = n * ho * wo * c.
@compute @workgroup_size(256)
fn im2col(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg, 256u);
    if id >= params.total { return; }
    let item = pixel_item(id, params.cin, params.ho, params.wo);
    let y0 = i32(item.p.y * params.stride) - i32(params.pad_t);
    let x0 = i32(item.p.x * params.stride) - i32(params.pad_l);
    let plane = (item.p.b * params.cin + item.slot) * params.h * params.w;
    var at = id * params.kh * params.kw;
    for (var i = 0u; i < params.kh; i++) {
        let y = y0 + i32(i);
        let row_in = y >= 0 && u32(y) < params.h;
        for (var j = 0u; j < params.kw; j++) {
            let x = x0 + i32(j);
            var v = 0.0;
            if row_in && x >= 0 && u32(x) < params.w {
                v = x_in[plane + u32(y) * params.w + u32(x)];
            }
            cols[at] = v;
            at += 1u;
        }
    }
}

// im2col over the padded NHWC input of the convolution kernels (conv_pack_x), columns in
// (tap, channel) order: cols_packed [n * ho * wo, kh * kw, cq] vec4s, x_packed [n, hp, wp, cq]
// vec4s. One thread per (row, tap) copies the
// tap's cq channel vec4s, contiguous on both sides. params.total = n * ho * wo * kh * kw.
@compute @workgroup_size(256)
fn im2col_packed(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg, 256u);
    if id >= params.total { return; }
    let item = pixel_item(id, params.kh * params.kw, params.ho, params.wo);
    let o = item.p;
    let i = item.slot / params.kw;
    let j = item.slot - i * params.kw;
    let cq = params.cq;
    let src = ((o.b * params.hp + o.y * params.stride + i) * params.wp + o.x * params.stride + j) * cq;
    let dst = id * cq;
    for (var c = 0u; c < cq; c++) { cols_packed[dst + c] = x_packed[src + c]; }
}

// The adjoint of im2col: dx [n, c, h, w], each element the sum of the column entries that
// read it (at most kh * kw, gathered in a fixed order). dcols [n * ho * wo, c * kh * kw].
// Stride 1 (most convolutions) needs no division per tap.
@compute @workgroup_size(256)
fn col2im(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg, 256u);
    if id >= params.total { return; }
    let p = pixel_of(id, params.h, params.w);
    let x = p.x;
    let y = p.y;
    let b = p.b / params.cin;
    let ci = p.b - b * params.cin;
    let k2 = params.kh * params.kw;
    let cols = params.cin * k2;
    let s = params.stride;
    var acc = 0.0;
    for (var i = 0u; i < params.kh; i++) {
        let ty = i32(y + params.pad_t) - i32(i);
        if ty < 0 { continue; }
        var oy = u32(ty);
        if s != 1u {
            if oy % s != 0u { continue; }
            oy = oy / s;
        }
        if oy >= params.ho { continue; }
        for (var j = 0u; j < params.kw; j++) {
            let tx = i32(x + params.pad_l) - i32(j);
            if tx < 0 { continue; }
            var ox = u32(tx);
            if s != 1u {
                if ox % s != 0u { continue; }
                ox = ox / s;
            }
            if ox >= params.wo { continue; }
            let row = (b * params.ho + oy) * params.wo + ox;
            acc += dcols[row * cols + ci * k2 + i * params.kw + j];
        }
    }
    dx[id] = acc;
}

// The inverse of depth_to_space: y_out [n, s*s*c, h, w] from x_in [n, c, s*h, s*w] (DCR, see
// depth_index), one thread per element of x_in (a permutation: each output written once).
@compute @workgroup_size(256)
fn space_to_depth(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg, 256u);
    if id >= params.total { return; }
    y_out[depth_index(id)] = x_in[id];
}
