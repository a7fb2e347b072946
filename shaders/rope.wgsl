// 2D rotary position embedding on x [B, T, H, Dh] with per-token positions (x, y) [T, 2].
// k = Dh/4 frequencies f_i = 10000^(-2i/(Dh/2)); interleaved pairs (2j, 2j+1): pair j < k
// rotates by pos_x * f_j, pair k + j by pos_y * f_j. Position (0, 0) is the identity.

struct Params {
    n_pairs: u32,   // B * T * H * Dh/2
    t: u32,
    h: u32,
    dh: u32,
    sign: f32,      // +1 forward, -1 backward (inverse rotation)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> pos: array<f32>;

@compute @workgroup_size(256)
fn rope_2d(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let p = gid.x + gid.y * nwg.x * 256u;
    if p >= params.n_pairs { return; }
    let half = params.dh / 2u;
    let k = params.dh / 4u;
    let j = p % half;
    let token = (p / (half * params.h)) % params.t;
    var coord = pos[token * 2u];
    var i = j;
    if j >= k {
        coord = pos[token * 2u + 1u];
        i = j - k;
    }
    let freq = exp2(-log2(10000.0) * f32(2u * i) / f32(half));
    let angle = coord * freq;
    let c = cos(angle);
    let s = params.sign * sin(angle);
    let x0 = x[2u * p];
    let x1 = x[2u * p + 1u];
    out[2u * p] = x0 * c - x1 * s;
    out[2u * p + 1u] = x1 * c + x0 * s;
}
