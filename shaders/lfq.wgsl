// The lookup-free quantizer (appended to loss.wgsl, whose uniform, bindings, linear_id and put
// it uses): sign quantization, the code index of each group of bits, and the group-wise LFQ
// entropy loss with its gradient.
//
// Entropy loss maths (one row = one sample's group of d bits, x_j its d values): the logits
// over the K = 2^d codes, (2/T) x . c_k, factorise over bits, so the softmax is a product of
// independent bits with p(bit j = +1) = sigmoid(z_j), z_j = 4 x_j / T, and
// log p(k) = -sum_j softplus(-s_kj z_j), s_kj = +1 if bit j of k is set else -1. As
// softplus(-s z) = log(1 + exp(-|z|)) + (|z| where s z < 0), the log terms are summed once per
// row (`Row.l`) and each code adds the |z_j| of the bits where its sign disagrees with z_j.

// eps of the official batch entropy, -sum A log(A + eps).
const ENTROPY_EPS: f32 = 1e-5;

// log(1 + e) for e in [0, 1], accurate when e is tiny.
fn log1p_small(e: f32) -> f32 {
    let u = 1.0 + e;
    if u == 1.0 { return e; }
    return log(u) * e / (u - 1.0);
}

// sigmoid(z) * sigmoid(-z) without overflow.
fn sig_prod(z: f32) -> f32 {
    let e = exp(-abs(z));
    return e / ((1.0 + e) * (1.0 + e));
}

// Entropy of one bit with logit z: sigmoid(z) softplus(-z) + sigmoid(-z) softplus(z).
fn bit_entropy(z: f32) -> f32 {
    let e = exp(-abs(z));
    let l = log1p_small(e);
    return (l + e * (abs(z) + l)) / (1.0 + e);
}

struct Row {
    pos: u32,  // bit j set where z_j > 0
    l: f32,    // sum_j log(1 + exp(-|z_j|))
}

// Loads row r of x (d bits) as |z_j| = a |x_j| into az.
fn load_row(r: u32, d: u32, a: f32, az: ptr<function, array<f32, 8>>) -> Row {
    var row = Row(0u, 0.0);
    for (var j = 0u; j < d; j++) {
        let z = a * x[r * d + j];
        (*az)[j] = abs(z);
        row.pos |= select(0u, 1u << j, z > 0.0);
        row.l += log1p_small(exp(-abs(z)));
    }
    return row;
}

fn log_prob(k: u32, row: Row, az: ptr<function, array<f32, 8>>, d: u32) -> f32 {
    let wrong = k ^ row.pos;
    var s = row.l;
    for (var j = 0u; j < d; j++) {
        if ((wrong >> j) & 1u) == 1u { s += (*az)[j]; }
    }
    return -s;
}

// out = +1 where x > 0 else -1 (x == 0 gives -1, as the official quantizer). n elements.
@compute @workgroup_size(256)
fn sign_quantize(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i < params.n { put(i, select(-1.0, 1.0, x[i] > 0.0)); }
}

// out[i] (u32) = sum_j [x[i * p1 + j] > 0] << j: code index of group i, channel j of the
// group is bit j (least significant first), as the official quantizer. n groups.
@compute @workgroup_size(256)
fn lfq_group_indices(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= params.n { return; }
    var code = 0u;
    for (var j = 0u; j < params.p1; j++) {
        code |= select(0u, 1u << j, x[i * params.p1 + j] > 0.0);
    }
    out[i] = code;
}

// Partial sums over rows of x [p2 rows, p1 bits]: thread (q, k), k <= K = 2^p1, adds rows
// r = q, q + p3, ... of p_r(k) (k < K) or of the row's entropy sum_j H(z_j) (k = K).
// out [p3, K + 1]; a = 4 / T. n = p3 * (K + 1).
@compute @workgroup_size(256)
fn lfq_entropy_partial(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= params.n { return; }
    let d = params.p1;
    let codes = 1u << d;
    let k = i % (codes + 1u);
    var az: array<f32, 8>;
    var acc = 0.0;
    for (var r = i / (codes + 1u); r < params.p2; r += params.p3) {
        let row = load_row(r, d, params.a, &az);
        if k == codes {
            for (var j = 0u; j < d; j++) {
                acc += bit_entropy(az[j]);
            }
        } else {
            acc += exp(log_prob(k, row, &az, d));
        }
    }
    put(i, acc);
}

// x = stats [K + 1] (batch-mean probabilities A_k, then the mean per-row entropy S):
// out[0] = S - H(A), H(A) = -sum_k A_k log(A_k + eps). p1 = K, n = 1.
@compute @workgroup_size(64)
fn lfq_entropy_finish(@builtin(global_invocation_id) gid: vec3<u32>) {
    if gid.x != 0u { return; }
    let codes = params.p1;
    var h = 0.0;
    for (var k = 0u; k < codes; k++) {
        let p = x[k];
        h -= p * log(p + ENTROPY_EPS);
    }
    put(0u, x[codes] - h);
}

// out[k] = d(-H(A))/dA_k = log(A_k + eps) + A_k / (A_k + eps); x = stats. n = K.
@compute @workgroup_size(256)
fn lfq_entropy_weights(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = linear_id(gid, nwg);
    if k >= params.n { return; }
    let p = x[k];
    put(k, log(p + ENTROPY_EPS) + p / (p + ENTROPY_EPS));
}

// dx for one row r of x [n rows, p1 bits]; y = weights w [K], g = upstream scalar gradient;
// a = 4 / T, b = 1 / rows. With P = p_r, wbar = sum_k P(k) w_k (both shifted by w_pos):
// dx_j = g b [ -a z_j s(z_j) + (a / 2) sum_k P(k) (w_k - wbar) s_kj ], s(z) = sig(z) sig(-z).
@compute @workgroup_size(256)
fn lfq_entropy_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = linear_id(gid, nwg);
    if r >= params.n { return; }
    let d = params.p1;
    let codes = 1u << d;
    var az: array<f32, 8>;
    var acc: array<f32, 8>;
    let row = load_row(r, d, params.a, &az);
    // Weights relative to the most likely code row.pos: when p is nearly one-hot, wbar - w_pos
    // is a sum of small terms and keeps its accuracy.
    let w0 = y[row.pos];
    var wbar = 0.0;
    for (var k = 0u; k < codes; k++) {
        wbar += exp(log_prob(k, row, &az, d)) * (y[k] - w0);
    }
    for (var k = 0u; k < codes; k++) {
        let t = exp(log_prob(k, row, &az, d)) * ((y[k] - w0) - wbar);
        for (var j = 0u; j < d; j++) {
            acc[j] += select(-t, t, ((k >> j) & 1u) == 1u);
        }
    }
    let scale = g[0] * params.b;
    for (var j = 0u; j < d; j++) {
        let z = select(-az[j], az[j], ((row.pos >> j) & 1u) == 1u);
        let grad = -params.a * z * sig_prod(z) + 0.5 * params.a * acc[j];
        put(r * d + j, scale * grad);
    }
}
