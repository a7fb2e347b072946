// Sign quantization (lookup-free, BitDance's GFQ) and its group-wise entropy loss.
// x [N, C] with C = G * 8: group g of row n holds bits x[n, 8g .. 8g+8]; code j in 0..256 has
// bit d = (j >> d) & 1, value 2*bit - 1. A sample s = (n, g); S = N * G samples.

struct Params {
    n: u32,        // rows N (elements for sign_quantize)
    c: u32,        // channels C
    samples: u32,  // S = N * C / 8
    inv_temp: f32, // 1 / temperature
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> out2: array<f32>;
@group(0) @binding(3) var<storage, read> x: array<f32>;
@group(0) @binding(4) var<storage, read> w: array<f32>;
@group(0) @binding(5) var<storage, read> v: array<f32>;
@group(0) @binding(6) var<storage, read_write> codes: array<u32>;

const EPS: f32 = 1e-5;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

// q = x > 0 ? 1 : -1.   bindings: out, x
@compute @workgroup_size(64)
fn sign_quantize(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= params.n { return; }
    out[i] = select(-1.0, 1.0, x[i] > 0.0);
}

// codes[s] = sum_d (x[s, d] > 0) << d.   bindings: x, codes
@compute @workgroup_size(64)
fn group_indices(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = linear_id(gid, nwg);
    if s >= params.samples { return; }
    var code = 0u;
    for (var d = 0u; d < 8u; d++) {
        if x[s * 8u + d] > 0.0 { code |= 1u << d; }
    }
    codes[s] = code;
}

// The scaled logits z_j = 2 x_s . c_j / T of sample s.
fn logit(s: u32, j: u32) -> f32 {
    var dot = 0.0;
    for (var d = 0u; d < 8u; d++) {
        let bit = f32((j >> d) & 1u) * 2.0 - 1.0;
        dot += x[s * 8u + d] * bit;
    }
    return 2.0 * dot * params.inv_temp;
}

fn log_sum_exp(s: u32) -> f32 {
    var m = -3.0e38;
    for (var j = 0u; j < 256u; j++) { m = max(m, logit(s, j)); }
    var total = 0.0;
    for (var j = 0u; j < 256u; j++) { total += exp(logit(s, j) - m); }
    return m + log(total);
}

// Per sample: out[s, j] = p_sj = softmax(z_s)_j; out2[s] = H_s = -sum p log p.   bindings: out, out2, x
@compute @workgroup_size(64)
fn entropy_probs(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = linear_id(gid, nwg);
    if s >= params.samples { return; }
    let lse = log_sum_exp(s);
    var h = 0.0;
    for (var j = 0u; j < 256u; j++) {
        let lp = logit(s, j) - lse;
        let p = exp(lp);
        out[s * 256u + j] = p;
        h -= p * lp;
    }
    out2[s] = h;
}

// From column sums of p (w, [256]) and the mean sample entropy (v, [1]):
// out = [loss, mean sample entropy, codebook entropy]; out2 = dA/da_j for the backward.
// bindings: out, out2, w, v
@compute @workgroup_size(1)
fn entropy_finalize() {
    var codebook = 0.0;
    for (var j = 0u; j < 256u; j++) {
        let a = w[j] / f32(params.samples);
        let la = log(a + EPS);
        codebook -= a * la;
        out2[j] = -(la + a / (a + EPS));
    }
    out[0] = v[0] - codebook;
    out[1] = v[0];
    out[2] = codebook;
}

// dL/dx for L = mean_s H_s - A(mean_s p_s), scaled by the upstream gradient v[0].
// bindings: out (dx), x, w = dA/da [256], v = dloss [1]
@compute @workgroup_size(64)
fn entropy_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = linear_id(gid, nwg);
    if s >= params.samples { return; }
    let lse = log_sum_exp(s);
    var h = 0.0;
    var gp = 0.0;
    for (var j = 0u; j < 256u; j++) {
        let lp = logit(s, j) - lse;
        let p = exp(lp);
        h -= p * lp;
        gp += w[j] * p;
    }
    var dx: array<f32, 8>;
    for (var d = 0u; d < 8u; d++) { dx[d] = 0.0; }
    for (var j = 0u; j < 256u; j++) {
        let lp = logit(s, j) - lse;
        let p = exp(lp);
        let dz = -p * (lp + h) - p * (w[j] - gp);
        for (var d = 0u; d < 8u; d++) {
            dx[d] += dz * (f32((j >> d) & 1u) * 2.0 - 1.0);
        }
    }
    let k = 2.0 * params.inv_temp * v[0] / f32(params.samples);
    for (var d = 0u; d < 8u; d++) { out[s * 8u + d] = dx[d] * k; }
}
