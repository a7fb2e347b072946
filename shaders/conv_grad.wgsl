// Gradients of the autoencoder's convolution family, built around the matmul kernels:
// im2col (the patches of x as matrix rows), col2im (the patches' gradients gathered back, no
// atomics) and space_to_depth (the inverse permutation of depth_to_space).
// Binding convention: outputs first (read_write), then inputs (read).
// Element kernels run 256 threads per workgroup: id = gid.x + gid.y * nwg.x * 256.

struct Params {
    n: u32,      // batch
    c: u32,      // input channels (im2col/col2im), output channels (space_to_depth)
    h: u32,      // input height (im2col/col2im), output height (space_to_depth)
    w: u32,      // input width
    ho: u32,     // output height of the convolution
    wo: u32,     // output width of the convolution
    kh: u32,
    kw: u32,
    stride: u32, // convolution stride, or the block of space_to_depth
    pad_t: u32,
    pad_l: u32,
    total: u32,  // threads needed
}

@group(0) @binding(0) var<uniform> params: Params;
// Bindings are named for what they hold; names that share a binding number belong to
// different entry points.
@group(0) @binding(1) var<storage, read_write> cols: array<f32>;               // im2col
@group(0) @binding(1) var<storage, read_write> cols_packed: array<vec4<f32>>;  // im2col_packed
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;                 // col2im
@group(0) @binding(1) var<storage, read_write> y_out: array<f32>;              // space_to_depth
@group(0) @binding(2) var<storage, read> x_in: array<f32>;                        // im2col, space_to_depth
@group(0) @binding(2) var<storage, read> x_packed: array<vec4<f32>>;           // im2col_packed
@group(0) @binding(2) var<storage, read> dcols: array<f32>;                    // col2im

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

// cols [n * ho * wo, c * kh * kw]: row (b, oy, ox), column (ci, i, j) holds
// x_in[b, ci, oy * stride + i - pad_t, ox * stride + j - pad_l] (0 outside), x_in [n, c, h, w].
// One thread per (row, ci) writes that pair's kh * kw consecutive columns, so the index
// arithmetic (divisions are lane-by-lane loops on llvmpipe) is shared by all its taps.
// params.total = n * ho * wo * c.
@compute @workgroup_size(256)
fn im2col(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if id >= params.total { return; }
    let r = id / params.c;
    let ci = id - r * params.c;
    let t = r / params.wo;
    let ox = r - t * params.wo;
    let b = t / params.ho;
    let oy = t - b * params.ho;
    let y0 = i32(oy * params.stride) - i32(params.pad_t);
    let x0 = i32(ox * params.stride) - i32(params.pad_l);
    let plane = (b * params.c + ci) * params.h * params.w;
    var o = id * params.kh * params.kw;
    for (var i = 0u; i < params.kh; i++) {
        let y = y0 + i32(i);
        let row_in = y >= 0 && u32(y) < params.h;
        for (var j = 0u; j < params.kw; j++) {
            let x = x0 + i32(j);
            var v = 0.0;
            if row_in && x >= 0 && u32(x) < params.w {
                v = x_in[plane + u32(y) * params.w + u32(x)];
            }
            cols[o] = v;
            o += 1u;
        }
    }
}

// im2col over the padded NHWC input of the convolution kernels (conv_pack_x), columns in
// (tap, channel) order: cols_packed [n * ho * wo, kh * kw, cq] vec4s, x_packed [n, hp, wp, cq]
// vec4s (params.h, params.w = hp, wp; params.c = cq). One thread per (row, tap) copies the
// tap's cq channel vec4s, contiguous on both sides. params.total = n * ho * wo * kh * kw.
@compute @workgroup_size(256)
fn im2col_packed(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if id >= params.total { return; }
    let k2 = params.kh * params.kw;
    let r = id / k2;
    let tap = id - r * k2;
    let i = tap / params.kw;
    let j = tap - i * params.kw;
    let t = r / params.wo;
    let ox = r - t * params.wo;
    let b = t / params.ho;
    let oy = t - b * params.ho;
    let cq = params.c;
    let src = ((b * params.h + oy * params.stride + i) * params.w + ox * params.stride + j) * cq;
    let dst = id * cq;
    for (var c = 0u; c < cq; c++) { cols_packed[dst + c] = x_packed[src + c]; }
}

// The adjoint of im2col: dx [n, c, h, w], each element the sum of the column entries that
// read it (at most kh * kw, gathered in a fixed order). dcols [n * ho * wo, c * kh * kw].
// Stride 1 (most convolutions) needs no division per tap.
@compute @workgroup_size(256)
fn col2im(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if id >= params.total { return; }
    let t1 = id / params.w;
    let x = id - t1 * params.w;
    let t2 = t1 / params.h;
    let y = t1 - t2 * params.h;
    let b = t2 / params.c;
    let ci = t2 - b * params.c;
    let k2 = params.kh * params.kw;
    let cols = params.c * k2;
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

// The inverse of depth_to_space (DCR): y_out [n, s*s*c, h, w] from x_in [n, c, s*h, s*w],
// block s = params.stride: y_out[b, (b1 * s + b2) * c + ch, i, j] = x_in[b, ch, s*i + b1, s*j + b2].
@compute @workgroup_size(256)
fn space_to_depth(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if id >= params.total { return; }
    let s = params.stride;
    let j = id % params.w;
    let i = (id / params.w) % params.h;
    let ic = (id / (params.w * params.h)) % (s * s * params.c);
    let b = id / (params.w * params.h * s * s * params.c);
    let blk = ic / params.c;
    let ch = ic % params.c;
    let oy = s * i + blk / s;
    let ox = s * j + blk % s;
    y_out[id] = x_in[((b * params.c + ch) * params.h * s + oy) * params.w * s + ox];
}
