// 2D rotary position embedding on x [B, T, H, Dh] with per-token positions [T, 2] = (x, y).
// Interleaved pairs (2j, 2j+1) of each head rotate as complex numbers by angle a:
// (x0, x1) -> (x0 cos a - x1 sin a, x1 cos a + x0 sin a); pair j < k = Dh/4 uses pos.x * f_j,
// pair k + j uses pos.y * f_j. The backward rotates by -a (sign = -1).
// One thread per (token, head pair), looping over the batch: id = gid.x + gid.y * nwg.x * 256.

struct Params {
    b: u32,       // batch
    t: u32,       // tokens
    hp: u32,      // pairs per token: H * Dh / 2
    half: u32,    // pairs per head: Dh / 2
    k: u32,       // frequencies: Dh / 4
    sign: f32,    // +1 forward, -1 backward
    pad0: u32,
    pad1: u32,
    // f_i = 10000^(-2i / (Dh/2)), computed in f64 on the host and rounded to f32.
    freqs: array<vec4<f32>, 16>,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> x: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read> pos: array<f32>;

// sin and cos to about 1 ulp for |a| up to a few thousand: WGSL only promises an absolute
// error of 2^-11 for the builtins, so reduce by pi/2 (three-part Cody-Waite constant, the
// products q * P are exact) and evaluate minimax polynomials on [-pi/4, pi/4].
fn sincos(a: f32) -> vec2<f32> {
    let q = round(a * 0.63661975);
    let r = ((a - q * 1.5703125) - q * 4.8375129699707031e-4) - q * 7.5497899548918821e-8;
    let z = r * r;
    let s = r + r * z * (-1.6666654611e-1 + z * (8.3321608736e-3 + z * -1.9515295891e-4));
    let c = 1.0 - 0.5 * z + z * z * (4.166664568298827e-2 + z * (-1.388731625493765e-3 + z * 2.443315711809948e-5));
    let quadrant = i32(q) & 3;
    if quadrant == 0 { return vec2<f32>(s, c); }
    if quadrant == 1 { return vec2<f32>(c, -s); }
    if quadrant == 2 { return vec2<f32>(-s, -c); }
    return vec2<f32>(-c, s);
}

@compute @workgroup_size(256)
fn rope_2d(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = gid.x + gid.y * nwg.x * 256u;
    if id >= params.t * params.hp { return; }
    let t = id / params.hp;
    let p = id % params.hp;
    let j = p % params.half;
    let axis = select(0u, 1u, j >= params.k);
    let i = j - axis * params.k;
    let f = params.freqs[i / 4u][i % 4u];
    let sc = sincos(pos[t * 2u + axis] * f);
    let sn = sc.x * params.sign;
    let cs = sc.y;
    for (var b = 0u; b < params.b; b++) {
        let e = (b * params.t + t) * params.hp + p;
        let v = x[e];
        out[e] = vec2<f32>(v.x * cs - v.y * sn, v.y * cs + v.x * sn);
    }
}
