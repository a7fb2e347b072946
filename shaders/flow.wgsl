// Rectified-flow sampling of the binary diffusion head: one fused Euler-Maruyama (or final
// Euler) update per step, with classifier-free guidance. x [n]; pred [cfg_mult * n] is the
// head's x-prediction for the rows [x; x] (conditional first, then unconditional).

// struct Params: generated from the Rust `uniform!` in crates/bitdance/src/ops/flow/mod.rs
// (its fields are documented there) and prepended to this source.

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> pred: array<f32>;
@group(0) @binding(3) var<storage, read> noise: array<f32>;

@compute @workgroup_size(256)
fn flow_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if i >= params.n { return; }
    let xi = x[i];
    let denom = max(1.0 - params.t, 0.05);
    var v = (pred[i] - xi) / denom;
    if params.guided == 1u {
        let vu = (pred[params.n + i] - xi) / denom;
        v = vu + params.cfg * (v - vu);
    }
    if params.maruyama == 1u {
        let one_minus_t = 1.0 - params.t;
        let score = (params.t * v - xi) / one_minus_t;
        let drift = v + one_minus_t * score;
        x[i] = xi + drift * params.dt + params.noise_scale * noise[i];
    } else {
        x[i] = xi + v * params.dt;
    }
}
