// 2D rotary position embedding on x [B, T, H, Dh] with per-token positions [T, 2] = (x, y).
// Interleaved pairs (2j, 2j+1) of each head rotate as complex numbers by angle a:
// (x0, x1) -> (x0 cos a - x1 sin a, x1 cos a + x0 sin a); pair j < k = Dh/4 uses pos.x * f_j,
// pair k + j uses pos.y * f_j. The backward rotates by -a (sign = -1).
// Two passes: rope_table writes (sin a, cos a) for every (token, pair of the H heads), then
// rope_2d rotates x as vec4s (two pairs each) with no loop and no transcendental: on llvmpipe a
// per-invocation loop over the batch after the sine polynomial ran ~15x slower than this.
// id = gid.x + gid.y * nwg.x * 256.

// struct Params: generated from the Rust `uniform!` in crates/bitdance/src/ops/rope/mod.rs
// (its fields are documented there) and prepended to this source.

@group(0) @binding(0) var<uniform> params: Params;
// rope_table: table [T, hp] of (sin, cos); rope_2d: out, x as vec4s, table as vec4s.
@group(0) @binding(1) var<storage, read_write> table: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> pos: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> table_in: array<vec4<f32>>;

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

// table[t, p] = (sin a, cos a) for pair p of token t.
@compute @workgroup_size(256)
fn rope_table(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = gid.x + gid.y * nwg.x * 256u;
    if id >= params.n { return; }
    let t = id / params.hp;
    let p = id - t * params.hp;
    let j = p % params.half;
    let axis = select(0u, 1u, j >= params.k);
    let i = j - axis * params.k;
    let f = params.freqs[i / 4u][i % 4u];
    table[id] = sincos(pos[t * 2u + axis] * f);
}

// out = x rotated by the table's angles times `sign`, two pairs per invocation.
@compute @workgroup_size(256)
fn rope_2d(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = gid.x + gid.y * nwg.x * 256u;
    if id >= params.n { return; }
    let hq = params.hp / 2u;
    let row = id / hq;
    let c = id - row * hq;
    let t = row - (row / params.t) * params.t;
    let sc = table_in[t * hq + c];
    let sn = vec2<f32>(sc.x, sc.z) * params.sign;
    let cs = vec2<f32>(sc.y, sc.w);
    let v = x[id];
    out[id] = vec4<f32>(
        v.x * cs.x - v.y * sn.x,
        v.y * cs.x + v.x * sn.x,
        v.z * cs.y - v.w * sn.y,
        v.w * cs.y + v.z * sn.y,
    );
}
