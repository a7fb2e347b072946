// Optimizer kernels: fused AdamW (optionally with the EMA of the weights) with a GPU-side clip
// factor, and the clip factor itself. VEC (1 or 4) is the element width of the AdamW entry
// points: V is f32 or vec4<f32> and n counts V elements.

// struct Params: generated from the Rust `uniform!` in crates/bitdance/src/ops/optim/mod.rs
// (its fields are documented there) and prepended to this source.

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> param: array<V>;
@group(0) @binding(2) var<storage, read_write> m: array<V>;
@group(0) @binding(3) var<storage, read_write> v: array<V>;
@group(0) @binding(4) var<storage, read> grad: array<V>;
@group(0) @binding(5) var<storage, read> clip: array<f32>;
@group(0) @binding(6) var<storage, read_write> ema: array<V>;
// clip_factor: binding 1 as scalars (out), binding 2 the squared norm.
@group(0) @binding(1) var<storage, read_write> clip_out: array<f32>;
@group(0) @binding(2) var<storage, read> norm_squared: array<f32>;

// One AdamW step of element i as torch.optim.AdamW: decay first, then the bias-corrected Adam
// update; the gradient is scaled by clip[0] (1 when not clipping). Updates the moments and
// returns the new parameter value.
fn adamw_at(i: u32) -> V {
    let g = grad[i] * clip[0];
    let p = param[i] * (1.0 - params.lr * params.weight_decay);
    let mi = params.beta1 * m[i] + (1.0 - params.beta1) * g;
    let vi = params.beta2 * v[i] + (1.0 - params.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    let denom = sqrt(vi) / sqrt(params.bias_correction2) + params.eps;
    return p - (params.lr / params.bias_correction1) * mi / denom;
}

@compute @workgroup_size(256)
fn adamw(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if i >= params.n { return; }
    param[i] = adamw_at(i);
}

// adamw, then ema = decay * ema + (1 - decay) * param with the updated parameter (one pass
// over the weights instead of two dispatches).
@compute @workgroup_size(256)
fn adamw_ema(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if i >= params.n { return; }
    let p = adamw_at(i);
    param[i] = p;
    ema[i] = params.ema_decay * ema[i] + (1.0 - params.ema_decay) * p;
}

// Clip factor from the squared global norm norm_squared[0] into clip_out:
// [min(1, max_norm / (norm + 1e-6)), norm].
@compute @workgroup_size(1)
fn clip_factor() {
    let norm = sqrt(norm_squared[0]);
    clip_out[0] = min(1.0, params.max_norm / (norm + 1e-6));
    clip_out[1] = norm;
}
