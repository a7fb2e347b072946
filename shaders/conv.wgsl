// 2D convolution (NCHW, zero padding), GroupNorm and depth-to-space of the binary autoencoder.
//
// Binding convention: output first (o1: read_write), then inputs (iN: read).
// conv2d is an implicit GEMM without barriers over operands packed first (conv_pack_x, conv_pack_w).
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
    hp: u32,      // padded input height (conv)
    wp: u32,      // padded input width (conv)
    cq: u32,      // input channels / 4, rounded up (conv)
    spare: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> o1: array<f32>;
@group(0) @binding(2) var<storage, read> i2: array<f32>;
@group(0) @binding(3) var<storage, read> i3: array<f32>;
@group(0) @binding(2) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> w4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> i4: array<f32>;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>, wg: u32) -> u32 {
    return gid.x + gid.y * nwg.x * wg;
}

// o1 = y [n, cout, ho, wo]; x4 = padded input [n, hp, wp, cq] vec4s (conv_pack_x),
// w4 = packed weight [kh * kw * cq, tiles_c * TC] vec4s (conv_pack_w), i4 = bias [cout].
// Each invocation computes TC output channels x PX consecutive output pixels (PX / 4 vec4s per
// channel); per (tap, 4 input channels) it loads PX + TC vec4s for 4 * PX * TC multiply-adds.
// Grid: x = pixel tiles (CONV_WG per workgroup), y = (batch, channel tile), so the weight
// loads are at workgroup-uniform addresses. Pixels past the end are clamped and not written.
@compute @workgroup_size(CONV_WG)
fn conv2d(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let tc = params.tiles_c;
    let ct = wid.y % tc;
    let b = wid.y / tc;
    let npix = params.ho * params.wo;
    let p0 = gid.x * PX;
    let c0 = ct * TC;
    let cq = params.cq;

    var base: array<u32, PX>;
    for (var q = 0u; q < PX; q++) {
        let p = min(p0 + q, npix - 1u);
        let iy = (p / params.wo) * params.stride;
        let ix = (p % params.wo) * params.stride;
        base[q] = ((b * params.hp + iy) * params.wp + ix) * cq;
    }

    var acc: array<vec4<f32>, TC * PX / 4u>;
    for (var j = 0u; j < TC * PX / 4u; j++) { acc[j] = vec4<f32>(0.0); }

    let cout_p = tc * TC;
    var xs: array<vec4<f32>, PX>;
    for (var ky = 0u; ky < params.kh; ky++) {
        for (var kx = 0u; kx < params.kw; kx++) {
            let tap = ky * params.kw + kx;
            var xo = (ky * params.wp + kx) * cq;
            var wi = tap * cq * cout_p + c0;
            for (var c = 0u; c < cq; c++) {
                for (var q = 0u; q < PX; q++) { xs[q] = x4[base[q] + xo]; }
                for (var j = 0u; j < TC; j++) {
                    let wv = w4[wi + j];
                    for (var g = 0u; g < PX / 4u; g++) {
                        acc[j * (PX / 4u) + g] += vec4<f32>(
                            dot(xs[4u * g], wv), dot(xs[4u * g + 1u], wv),
                            dot(xs[4u * g + 2u], wv), dot(xs[4u * g + 3u], wv));
                    }
                }
                xo += 1u;
                wi += cout_p;
            }
        }
    }

    for (var j = 0u; j < TC; j++) {
        let co = c0 + j;
        if co >= params.cout { break; }
        let bias = i4[co];
        let ob = (b * params.cout + co) * npix;
        for (var q = 0u; q < PX; q++) {
            if p0 + q < npix { o1[ob + p0 + q] = acc[j * (PX / 4u) + q / 4u][q % 4u] + bias; }
        }
    }
}

// o1 = padded input [n, hp, wp, 4 * cq] (NHWC, zero border of pad_t rows and pad_l columns,
// zero channels past cin); i2 = x [n, cin, h, w]. One thread per output element.
@compute @workgroup_size(256)
fn conv_pack_x(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg, 256u);
    if i >= params.total { return; }
    let cp = params.cq * 4u;
    let c = i % cp;
    let px = (i / cp) % params.wp;
    let py = (i / (cp * params.wp)) % params.hp;
    let b = i / (cp * params.wp * params.hp);
    let iy = i32(py) - i32(params.pad_t);
    let ix = i32(px) - i32(params.pad_l);
    let ok = c < params.cin && iy >= 0 && iy < i32(params.h) && ix >= 0 && ix < i32(params.w);
    let src = ((b * params.cin + min(c, params.cin - 1u)) * params.h + u32(max(iy, 0))) * params.w
        + u32(max(ix, 0));
    o1[i] = select(0.0, i2[min(src, arrayLength(&i2) - 1u)], ok);
}

// o1 = packed weight [kh * kw * cq, cout_p, 4]: vec4 (tap * cq + c) * cout_p + co holds the weights
// of input channels 4c..4c+3 at that tap for output channel co, zero past cin and cout;
// i2 = weight [cout, cin, kh, kw]. cout_p = tiles_c * TC.
@compute @workgroup_size(256)
fn conv_pack_w(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg, 256u);
    if i >= params.total { return; }
    let cp = params.tiles_c * TC;
    let e = i % 4u;
    let co = (i / 4u) % cp;
    let r = i / (4u * cp);
    let c = r % params.cq;
    let tap = r / params.cq;
    let ci = 4u * c + e;
    let kk = params.kh * params.kw;
    let src = (min(co, params.cout - 1u) * params.cin + min(ci, params.cin - 1u)) * kk + tap;
    o1[i] = select(0.0, i2[src], co < params.cout && ci < params.cin);
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
