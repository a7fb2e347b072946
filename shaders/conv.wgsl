// 2D convolution (NCHW, zero padding), GroupNorm and depth-to-space of the binary autoencoder.
//
// Binding convention: output first (o1: read_write), then inputs (iN: read).
// conv2d is an implicit GEMM without barriers over operands packed first (conv_pack_x, conv_pack_w);
// conv2d_rb is the same kernel written out with named registers for CPU adapters.
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
    tiles_p: u32, // pixel tiles of PX (conv)
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

// conv2d_rb (CPU adapters): conv2d written out for TC = 16, PX = 16 with named accumulators and
// operands (llvmpipe keeps dynamically indexed arrays in memory). The CPU define set must match.
@compute @workgroup_size(CONV_WG)
fn conv2d_rb(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let tc = params.tiles_c;
    let ct = wid.y % tc;
    let b = wid.y / tc;
    let npix = params.ho * params.wo;
    let p0 = gid.x * 16u;
    let c0 = ct * 16u;
    let cq = params.cq;
    let pp0 = min(p0 + 0u, npix - 1u);
    let base0 = ((b * params.hp + (pp0 / params.wo) * params.stride) * params.wp + (pp0 % params.wo) * params.stride) * cq;
    let pp1 = min(p0 + 1u, npix - 1u);
    let base1 = ((b * params.hp + (pp1 / params.wo) * params.stride) * params.wp + (pp1 % params.wo) * params.stride) * cq;
    let pp2 = min(p0 + 2u, npix - 1u);
    let base2 = ((b * params.hp + (pp2 / params.wo) * params.stride) * params.wp + (pp2 % params.wo) * params.stride) * cq;
    let pp3 = min(p0 + 3u, npix - 1u);
    let base3 = ((b * params.hp + (pp3 / params.wo) * params.stride) * params.wp + (pp3 % params.wo) * params.stride) * cq;
    let pp4 = min(p0 + 4u, npix - 1u);
    let base4 = ((b * params.hp + (pp4 / params.wo) * params.stride) * params.wp + (pp4 % params.wo) * params.stride) * cq;
    let pp5 = min(p0 + 5u, npix - 1u);
    let base5 = ((b * params.hp + (pp5 / params.wo) * params.stride) * params.wp + (pp5 % params.wo) * params.stride) * cq;
    let pp6 = min(p0 + 6u, npix - 1u);
    let base6 = ((b * params.hp + (pp6 / params.wo) * params.stride) * params.wp + (pp6 % params.wo) * params.stride) * cq;
    let pp7 = min(p0 + 7u, npix - 1u);
    let base7 = ((b * params.hp + (pp7 / params.wo) * params.stride) * params.wp + (pp7 % params.wo) * params.stride) * cq;
    let pp8 = min(p0 + 8u, npix - 1u);
    let base8 = ((b * params.hp + (pp8 / params.wo) * params.stride) * params.wp + (pp8 % params.wo) * params.stride) * cq;
    let pp9 = min(p0 + 9u, npix - 1u);
    let base9 = ((b * params.hp + (pp9 / params.wo) * params.stride) * params.wp + (pp9 % params.wo) * params.stride) * cq;
    let pp10 = min(p0 + 10u, npix - 1u);
    let base10 = ((b * params.hp + (pp10 / params.wo) * params.stride) * params.wp + (pp10 % params.wo) * params.stride) * cq;
    let pp11 = min(p0 + 11u, npix - 1u);
    let base11 = ((b * params.hp + (pp11 / params.wo) * params.stride) * params.wp + (pp11 % params.wo) * params.stride) * cq;
    let pp12 = min(p0 + 12u, npix - 1u);
    let base12 = ((b * params.hp + (pp12 / params.wo) * params.stride) * params.wp + (pp12 % params.wo) * params.stride) * cq;
    let pp13 = min(p0 + 13u, npix - 1u);
    let base13 = ((b * params.hp + (pp13 / params.wo) * params.stride) * params.wp + (pp13 % params.wo) * params.stride) * cq;
    let pp14 = min(p0 + 14u, npix - 1u);
    let base14 = ((b * params.hp + (pp14 / params.wo) * params.stride) * params.wp + (pp14 % params.wo) * params.stride) * cq;
    let pp15 = min(p0 + 15u, npix - 1u);
    let base15 = ((b * params.hp + (pp15 / params.wo) * params.stride) * params.wp + (pp15 % params.wo) * params.stride) * cq;
    var a0_0 = vec4<f32>(0.0); var a0_1 = vec4<f32>(0.0); var a0_2 = vec4<f32>(0.0); var a0_3 = vec4<f32>(0.0);
    var a1_0 = vec4<f32>(0.0); var a1_1 = vec4<f32>(0.0); var a1_2 = vec4<f32>(0.0); var a1_3 = vec4<f32>(0.0);
    var a2_0 = vec4<f32>(0.0); var a2_1 = vec4<f32>(0.0); var a2_2 = vec4<f32>(0.0); var a2_3 = vec4<f32>(0.0);
    var a3_0 = vec4<f32>(0.0); var a3_1 = vec4<f32>(0.0); var a3_2 = vec4<f32>(0.0); var a3_3 = vec4<f32>(0.0);
    var a4_0 = vec4<f32>(0.0); var a4_1 = vec4<f32>(0.0); var a4_2 = vec4<f32>(0.0); var a4_3 = vec4<f32>(0.0);
    var a5_0 = vec4<f32>(0.0); var a5_1 = vec4<f32>(0.0); var a5_2 = vec4<f32>(0.0); var a5_3 = vec4<f32>(0.0);
    var a6_0 = vec4<f32>(0.0); var a6_1 = vec4<f32>(0.0); var a6_2 = vec4<f32>(0.0); var a6_3 = vec4<f32>(0.0);
    var a7_0 = vec4<f32>(0.0); var a7_1 = vec4<f32>(0.0); var a7_2 = vec4<f32>(0.0); var a7_3 = vec4<f32>(0.0);
    var a8_0 = vec4<f32>(0.0); var a8_1 = vec4<f32>(0.0); var a8_2 = vec4<f32>(0.0); var a8_3 = vec4<f32>(0.0);
    var a9_0 = vec4<f32>(0.0); var a9_1 = vec4<f32>(0.0); var a9_2 = vec4<f32>(0.0); var a9_3 = vec4<f32>(0.0);
    var a10_0 = vec4<f32>(0.0); var a10_1 = vec4<f32>(0.0); var a10_2 = vec4<f32>(0.0); var a10_3 = vec4<f32>(0.0);
    var a11_0 = vec4<f32>(0.0); var a11_1 = vec4<f32>(0.0); var a11_2 = vec4<f32>(0.0); var a11_3 = vec4<f32>(0.0);
    var a12_0 = vec4<f32>(0.0); var a12_1 = vec4<f32>(0.0); var a12_2 = vec4<f32>(0.0); var a12_3 = vec4<f32>(0.0);
    var a13_0 = vec4<f32>(0.0); var a13_1 = vec4<f32>(0.0); var a13_2 = vec4<f32>(0.0); var a13_3 = vec4<f32>(0.0);
    var a14_0 = vec4<f32>(0.0); var a14_1 = vec4<f32>(0.0); var a14_2 = vec4<f32>(0.0); var a14_3 = vec4<f32>(0.0);
    var a15_0 = vec4<f32>(0.0); var a15_1 = vec4<f32>(0.0); var a15_2 = vec4<f32>(0.0); var a15_3 = vec4<f32>(0.0);
    let cout_p = tc * 16u;
    for (var ky = 0u; ky < params.kh; ky++) {
        for (var kx = 0u; kx < params.kw; kx++) {
            var xo = (ky * params.wp + kx) * cq;
            var wi = (ky * params.kw + kx) * cq * cout_p + c0;
            for (var c = 0u; c < cq; c++) {
                let v0 = x4[base0 + xo];
                let v1 = x4[base1 + xo];
                let v2 = x4[base2 + xo];
                let v3 = x4[base3 + xo];
                let v4 = x4[base4 + xo];
                let v5 = x4[base5 + xo];
                let v6 = x4[base6 + xo];
                let v7 = x4[base7 + xo];
                let v8 = x4[base8 + xo];
                let v9 = x4[base9 + xo];
                let v10 = x4[base10 + xo];
                let v11 = x4[base11 + xo];
                let v12 = x4[base12 + xo];
                let v13 = x4[base13 + xo];
                let v14 = x4[base14 + xo];
                let v15 = x4[base15 + xo];
                let k0 = w4[wi + 0u];
                let k1 = w4[wi + 1u];
                let k2 = w4[wi + 2u];
                let k3 = w4[wi + 3u];
                let k4 = w4[wi + 4u];
                let k5 = w4[wi + 5u];
                let k6 = w4[wi + 6u];
                let k7 = w4[wi + 7u];
                let k8 = w4[wi + 8u];
                let k9 = w4[wi + 9u];
                let k10 = w4[wi + 10u];
                let k11 = w4[wi + 11u];
                let k12 = w4[wi + 12u];
                let k13 = w4[wi + 13u];
                let k14 = w4[wi + 14u];
                let k15 = w4[wi + 15u];
                a0_0 += vec4<f32>(dot(v0, k0), dot(v1, k0), dot(v2, k0), dot(v3, k0));
                a0_1 += vec4<f32>(dot(v4, k0), dot(v5, k0), dot(v6, k0), dot(v7, k0));
                a0_2 += vec4<f32>(dot(v8, k0), dot(v9, k0), dot(v10, k0), dot(v11, k0));
                a0_3 += vec4<f32>(dot(v12, k0), dot(v13, k0), dot(v14, k0), dot(v15, k0));
                a1_0 += vec4<f32>(dot(v0, k1), dot(v1, k1), dot(v2, k1), dot(v3, k1));
                a1_1 += vec4<f32>(dot(v4, k1), dot(v5, k1), dot(v6, k1), dot(v7, k1));
                a1_2 += vec4<f32>(dot(v8, k1), dot(v9, k1), dot(v10, k1), dot(v11, k1));
                a1_3 += vec4<f32>(dot(v12, k1), dot(v13, k1), dot(v14, k1), dot(v15, k1));
                a2_0 += vec4<f32>(dot(v0, k2), dot(v1, k2), dot(v2, k2), dot(v3, k2));
                a2_1 += vec4<f32>(dot(v4, k2), dot(v5, k2), dot(v6, k2), dot(v7, k2));
                a2_2 += vec4<f32>(dot(v8, k2), dot(v9, k2), dot(v10, k2), dot(v11, k2));
                a2_3 += vec4<f32>(dot(v12, k2), dot(v13, k2), dot(v14, k2), dot(v15, k2));
                a3_0 += vec4<f32>(dot(v0, k3), dot(v1, k3), dot(v2, k3), dot(v3, k3));
                a3_1 += vec4<f32>(dot(v4, k3), dot(v5, k3), dot(v6, k3), dot(v7, k3));
                a3_2 += vec4<f32>(dot(v8, k3), dot(v9, k3), dot(v10, k3), dot(v11, k3));
                a3_3 += vec4<f32>(dot(v12, k3), dot(v13, k3), dot(v14, k3), dot(v15, k3));
                a4_0 += vec4<f32>(dot(v0, k4), dot(v1, k4), dot(v2, k4), dot(v3, k4));
                a4_1 += vec4<f32>(dot(v4, k4), dot(v5, k4), dot(v6, k4), dot(v7, k4));
                a4_2 += vec4<f32>(dot(v8, k4), dot(v9, k4), dot(v10, k4), dot(v11, k4));
                a4_3 += vec4<f32>(dot(v12, k4), dot(v13, k4), dot(v14, k4), dot(v15, k4));
                a5_0 += vec4<f32>(dot(v0, k5), dot(v1, k5), dot(v2, k5), dot(v3, k5));
                a5_1 += vec4<f32>(dot(v4, k5), dot(v5, k5), dot(v6, k5), dot(v7, k5));
                a5_2 += vec4<f32>(dot(v8, k5), dot(v9, k5), dot(v10, k5), dot(v11, k5));
                a5_3 += vec4<f32>(dot(v12, k5), dot(v13, k5), dot(v14, k5), dot(v15, k5));
                a6_0 += vec4<f32>(dot(v0, k6), dot(v1, k6), dot(v2, k6), dot(v3, k6));
                a6_1 += vec4<f32>(dot(v4, k6), dot(v5, k6), dot(v6, k6), dot(v7, k6));
                a6_2 += vec4<f32>(dot(v8, k6), dot(v9, k6), dot(v10, k6), dot(v11, k6));
                a6_3 += vec4<f32>(dot(v12, k6), dot(v13, k6), dot(v14, k6), dot(v15, k6));
                a7_0 += vec4<f32>(dot(v0, k7), dot(v1, k7), dot(v2, k7), dot(v3, k7));
                a7_1 += vec4<f32>(dot(v4, k7), dot(v5, k7), dot(v6, k7), dot(v7, k7));
                a7_2 += vec4<f32>(dot(v8, k7), dot(v9, k7), dot(v10, k7), dot(v11, k7));
                a7_3 += vec4<f32>(dot(v12, k7), dot(v13, k7), dot(v14, k7), dot(v15, k7));
                a8_0 += vec4<f32>(dot(v0, k8), dot(v1, k8), dot(v2, k8), dot(v3, k8));
                a8_1 += vec4<f32>(dot(v4, k8), dot(v5, k8), dot(v6, k8), dot(v7, k8));
                a8_2 += vec4<f32>(dot(v8, k8), dot(v9, k8), dot(v10, k8), dot(v11, k8));
                a8_3 += vec4<f32>(dot(v12, k8), dot(v13, k8), dot(v14, k8), dot(v15, k8));
                a9_0 += vec4<f32>(dot(v0, k9), dot(v1, k9), dot(v2, k9), dot(v3, k9));
                a9_1 += vec4<f32>(dot(v4, k9), dot(v5, k9), dot(v6, k9), dot(v7, k9));
                a9_2 += vec4<f32>(dot(v8, k9), dot(v9, k9), dot(v10, k9), dot(v11, k9));
                a9_3 += vec4<f32>(dot(v12, k9), dot(v13, k9), dot(v14, k9), dot(v15, k9));
                a10_0 += vec4<f32>(dot(v0, k10), dot(v1, k10), dot(v2, k10), dot(v3, k10));
                a10_1 += vec4<f32>(dot(v4, k10), dot(v5, k10), dot(v6, k10), dot(v7, k10));
                a10_2 += vec4<f32>(dot(v8, k10), dot(v9, k10), dot(v10, k10), dot(v11, k10));
                a10_3 += vec4<f32>(dot(v12, k10), dot(v13, k10), dot(v14, k10), dot(v15, k10));
                a11_0 += vec4<f32>(dot(v0, k11), dot(v1, k11), dot(v2, k11), dot(v3, k11));
                a11_1 += vec4<f32>(dot(v4, k11), dot(v5, k11), dot(v6, k11), dot(v7, k11));
                a11_2 += vec4<f32>(dot(v8, k11), dot(v9, k11), dot(v10, k11), dot(v11, k11));
                a11_3 += vec4<f32>(dot(v12, k11), dot(v13, k11), dot(v14, k11), dot(v15, k11));
                a12_0 += vec4<f32>(dot(v0, k12), dot(v1, k12), dot(v2, k12), dot(v3, k12));
                a12_1 += vec4<f32>(dot(v4, k12), dot(v5, k12), dot(v6, k12), dot(v7, k12));
                a12_2 += vec4<f32>(dot(v8, k12), dot(v9, k12), dot(v10, k12), dot(v11, k12));
                a12_3 += vec4<f32>(dot(v12, k12), dot(v13, k12), dot(v14, k12), dot(v15, k12));
                a13_0 += vec4<f32>(dot(v0, k13), dot(v1, k13), dot(v2, k13), dot(v3, k13));
                a13_1 += vec4<f32>(dot(v4, k13), dot(v5, k13), dot(v6, k13), dot(v7, k13));
                a13_2 += vec4<f32>(dot(v8, k13), dot(v9, k13), dot(v10, k13), dot(v11, k13));
                a13_3 += vec4<f32>(dot(v12, k13), dot(v13, k13), dot(v14, k13), dot(v15, k13));
                a14_0 += vec4<f32>(dot(v0, k14), dot(v1, k14), dot(v2, k14), dot(v3, k14));
                a14_1 += vec4<f32>(dot(v4, k14), dot(v5, k14), dot(v6, k14), dot(v7, k14));
                a14_2 += vec4<f32>(dot(v8, k14), dot(v9, k14), dot(v10, k14), dot(v11, k14));
                a14_3 += vec4<f32>(dot(v12, k14), dot(v13, k14), dot(v14, k14), dot(v15, k14));
                a15_0 += vec4<f32>(dot(v0, k15), dot(v1, k15), dot(v2, k15), dot(v3, k15));
                a15_1 += vec4<f32>(dot(v4, k15), dot(v5, k15), dot(v6, k15), dot(v7, k15));
                a15_2 += vec4<f32>(dot(v8, k15), dot(v9, k15), dot(v10, k15), dot(v11, k15));
                a15_3 += vec4<f32>(dot(v12, k15), dot(v13, k15), dot(v14, k15), dot(v15, k15));
                xo += 1u;
                wi += cout_p;
            }
        }
    }
    put_rb(b, c0 + 0u, p0, a0_0, a0_1, a0_2, a0_3);
    put_rb(b, c0 + 1u, p0, a1_0, a1_1, a1_2, a1_3);
    put_rb(b, c0 + 2u, p0, a2_0, a2_1, a2_2, a2_3);
    put_rb(b, c0 + 3u, p0, a3_0, a3_1, a3_2, a3_3);
    put_rb(b, c0 + 4u, p0, a4_0, a4_1, a4_2, a4_3);
    put_rb(b, c0 + 5u, p0, a5_0, a5_1, a5_2, a5_3);
    put_rb(b, c0 + 6u, p0, a6_0, a6_1, a6_2, a6_3);
    put_rb(b, c0 + 7u, p0, a7_0, a7_1, a7_2, a7_3);
    put_rb(b, c0 + 8u, p0, a8_0, a8_1, a8_2, a8_3);
    put_rb(b, c0 + 9u, p0, a9_0, a9_1, a9_2, a9_3);
    put_rb(b, c0 + 10u, p0, a10_0, a10_1, a10_2, a10_3);
    put_rb(b, c0 + 11u, p0, a11_0, a11_1, a11_2, a11_3);
    put_rb(b, c0 + 12u, p0, a12_0, a12_1, a12_2, a12_3);
    put_rb(b, c0 + 13u, p0, a13_0, a13_1, a13_2, a13_3);
    put_rb(b, c0 + 14u, p0, a14_0, a14_1, a14_2, a14_3);
    put_rb(b, c0 + 15u, p0, a15_0, a15_1, a15_2, a15_3);
}

// Writes the PX = 16 pixels of output channel co (skipped past cout and past the last pixel).
fn put_rb(b: u32, co: u32, p0: u32, v0: vec4<f32>, v1: vec4<f32>, v2: vec4<f32>, v3: vec4<f32>) {
    if co >= params.cout { return; }
    let npix = params.ho * params.wo;
    let bias = i4[co];
    let ob = (b * params.cout + co) * npix + p0;
    for (var q = 0u; q < 4u; q++) {
        if p0 + 0u + q < npix { o1[ob + 0u + q] = v0[q] + bias; }
        if p0 + 4u + q < npix { o1[ob + 4u + q] = v1[q] + bias; }
        if p0 + 8u + q < npix { o1[ob + 8u + q] = v2[q] + bias; }
        if p0 + 12u + q < npix { o1[ob + 12u + q] = v3[q] + bias; }
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
