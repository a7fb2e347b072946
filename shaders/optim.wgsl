// Optimizer kernels: fused AdamW with a GPU-side clip factor, and the clip factor itself.

struct Params {
    n: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    bias_correction1: f32,   // 1 - beta1^t
    bias_correction2: f32,   // 1 - beta2^t
    max_norm: f32,           // clip_factor only
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<storage, read> grad: array<f32>;
@group(0) @binding(5) var<storage, read> clip: array<f32>;
// adamw4: the same arrays as vec4s (n counts vec4s).
@group(0) @binding(1) var<storage, read_write> param4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> m4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> v4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> grad4: array<vec4<f32>>;

// One AdamW step as torch.optim.AdamW: decay first, then the bias-corrected Adam update.
// The gradient is scaled by clip[0] (1 when not clipping).
@compute @workgroup_size(256)
fn adamw(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if i >= params.n { return; }
    let g = grad[i] * clip[0];
    var p = param[i] * (1.0 - params.lr * params.weight_decay);
    let mi = params.beta1 * m[i] + (1.0 - params.beta1) * g;
    let vi = params.beta2 * v[i] + (1.0 - params.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    let denom = sqrt(vi) / sqrt(params.bias_correction2) + params.eps;
    p = p - (params.lr / params.bias_correction1) * mi / denom;
    param[i] = p;
}

// adamw over vec4s, for parameters with a multiple of 4 elements.
@compute @workgroup_size(256)
fn adamw4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if i >= params.n { return; }
    let g = grad4[i] * clip[0];
    var p = param4[i] * (1.0 - params.lr * params.weight_decay);
    let mi = params.beta1 * m4[i] + (1.0 - params.beta1) * g;
    let vi = params.beta2 * v4[i] + (1.0 - params.beta2) * g * g;
    m4[i] = mi;
    v4[i] = vi;
    let denom = sqrt(vi) / sqrt(params.bias_correction2) + params.eps;
    p = p - (params.lr / params.bias_correction1) * mi / denom;
    param4[i] = p;
}

// Clip factor from the squared global norm m[0] into param: [min(1, max_norm / (norm + 1e-6)), norm].
@compute @workgroup_size(1)
fn clip_factor() {
    let norm = sqrt(m[0]);
    param[0] = min(1.0, params.max_norm / (norm + 1e-6));
    param[1] = norm;
}
