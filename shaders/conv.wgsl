// 2D convolution (NCHW, zero padding), GroupNorm and depth-to-space of the binary autoencoder.
//
// Binding convention: output first (o1: read_write), then inputs (iN: read).
// conv2d is an implicit GEMM without barriers: each invocation computes TC output channels x 4
// consecutive output pixels (a vec4 per channel), reducing over (ky, kx, ci) in registers.
// group_norm runs one workgroup of GN_WG threads per (batch, group).
// Element kernels run 256 threads per workgroup: id = gid.x + gid.y * nwg.x * 256.

struct Params {
    n: u32,       // batch
    cin: u32,     // input channels (conv), channels (group_norm), output channels (depth_to_space)
    h: u32,       // input height
    w: u32,       // input width
    cout: u32,    // output channels (conv), groups (group_norm)
    ho: u32,      // output height
    wo: u32,      // output width
    kh: u32,
    kw: u32,
    stride: u32,
    pad_t: u32,
    pad_l: u32,
    tiles_c: u32, // channel tiles of TC (conv)
    tiles_p: u32, // pixel tiles of 4 (conv)
    eps: f32,
    total: u32,   // threads needed (element kernels)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> o1: array<f32>;
@group(0) @binding(2) var<storage, read> i2: array<f32>;
@group(0) @binding(3) var<storage, read> i3: array<f32>;
@group(0) @binding(4) var<storage, read> i4: array<f32>;

const CONV_WG: u32 = 64u;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>, wg: u32) -> u32 {
    return gid.x + gid.y * nwg.x * wg;
}

// o1 = y [n, cout, ho, wo]; i2 = x [n, cin, h, w], i3 = weight [cout, cin, kh, kw], i4 = bias [cout]
@compute @workgroup_size(CONV_WG)
fn conv2d(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg, CONV_WG);
    let tp = params.tiles_p;
    let tc = params.tiles_c;
    if t >= params.n * tc * tp { return; }
    // Pixel tiles vary fastest: neighbouring invocations share the same weights.
    let pt = t % tp;
    let ct = (t / tp) % tc;
    let b = t / (tp * tc);
    let npix = params.ho * params.wo;
    let p0 = pt * 4u;
    let c0 = ct * TC;
    let s = i32(params.stride);
    let h = i32(params.h);
    let w = i32(params.w);

    // Top-left input corner of each of the 4 pixels (invalid pixels are masked out).
    var iy0: array<i32, 4>;
    var ix0: array<i32, 4>;
    var pv = vec4<bool>(false);
    for (var q = 0u; q < 4u; q++) {
        let p = min(p0 + q, npix - 1u);
        iy0[q] = i32(p / params.wo) * s - i32(params.pad_t);
        ix0[q] = i32(p % params.wo) * s - i32(params.pad_l);
        pv[q] = p0 + q < npix;
    }

    var acc: array<vec4<f32>, TC>;
    for (var j = 0u; j < TC; j++) { acc[j] = vec4<f32>(0.0); }

    let hw = params.h * params.w;
    let kk = params.kh * params.kw;
    let wstride = params.cin * kk;
    // Weight rows of channels past cout read the last channel; their results are never written.
    var wrow: array<u32, TC>;
    for (var j = 0u; j < TC; j++) { wrow[j] = min(c0 + j, params.cout - 1u) * wstride; }
    let xb = b * params.cin * hw;

    for (var ky = 0u; ky < params.kh; ky++) {
        for (var kx = 0u; kx < params.kw; kx++) {
            var off = vec4<u32>(0u);
            var m = vec4<f32>(0.0);
            for (var q = 0u; q < 4u; q++) {
                let iy = iy0[q] + i32(ky);
                let ix = ix0[q] + i32(kx);
                let ok = pv[q] && iy >= 0 && iy < h && ix >= 0 && ix < w;
                off[q] = select(0u, u32(iy) * params.w + u32(ix), ok);
                m[q] = select(0.0, 1.0, ok);
            }
            var xi = xb;
            var wi = ky * params.kw + kx;
            for (var ci = 0u; ci < params.cin; ci++) {
                let v = vec4<f32>(i2[xi + off.x], i2[xi + off.y], i2[xi + off.z], i2[xi + off.w]) * m;
                for (var j = 0u; j < TC; j++) {
                    acc[j] = fma(vec4<f32>(i3[wrow[j] + wi]), v, acc[j]);
                }
                xi += hw;
                wi += kk;
            }
        }
    }

    for (var j = 0u; j < TC; j++) {
        let co = c0 + j;
        if co >= params.cout { break; }
        let bias = i4[co];
        let ob = (b * params.cout + co) * npix;
        for (var q = 0u; q < 4u; q++) {
            if p0 + q < npix { o1[ob + p0 + q] = acc[j][q] + bias; }
        }
    }
}

var<workgroup> red: array<f32, GN_WG>;

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

// o1 = y [n, c, h, w]; i2 = x, i3 = weight [c], i4 = bias [c]. Workgroup id = b * groups + g.
@compute @workgroup_size(GN_WG)
fn group_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * nwg.x;
    let groups = params.cout;
    if row >= params.n * groups { return; }
    let cpg = params.cin / groups;
    let hw = params.h * params.w;
    let len = cpg * hw;
    // A (batch, group) is one contiguous run of cpg * hw values.
    let base = row * len;
    var s = 0.0;
    for (var i = lid; i < len; i += GN_WG) { s += i2[base + i]; }
    let mean = wg_sum(lid, s) / f32(len);
    var v = 0.0;
    for (var i = lid; i < len; i += GN_WG) {
        let d = i2[base + i] - mean;
        v += d * d;
    }
    let rstd = inverseSqrt(wg_sum(lid, v) / f32(len) + params.eps);
    let c0 = (row % groups) * cpg;
    for (var i = lid; i < len; i += GN_WG) {
        let c = c0 + i / hw;
        o1[base + i] = (i2[base + i] - mean) * rstd * i3[c] + i4[c];
    }
}

// o1 = y [n, c, s*h, s*w]; i2 = x [n, s*s*c, h, w], block s = params.stride. DCR: input channel
// (b1 * s + b2) * c + ch goes to output pixel (s*y + b1, s*x + b2) of channel ch.
@compute @workgroup_size(256)
fn depth_to_space(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg, 256u);
    if i >= params.total { return; }
    let bs = params.stride;
    let w2 = params.w * bs;
    let h2 = params.h * bs;
    let ox = i % w2;
    let oy = (i / w2) % h2;
    let ch = (i / (w2 * h2)) % params.cin;
    let b = i / (w2 * h2 * params.cin);
    let blk = (oy % bs) * bs + ox % bs;
    let ic = (b * bs * bs + blk) * params.cin + ch;
    o1[i] = i2[(ic * params.h + oy / bs) * params.w + ox / bs];
}
