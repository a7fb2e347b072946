// Row softmax, forward and backward, over rows of f32. Appended to norm_common.wgsl.

@group(0) @binding(1) var<storage, read_write> probs: array<f32>;      // softmax
@group(0) @binding(1) var<storage, read_write> dlogits: array<f32>;    // softmax_backward
@group(0) @binding(2) var<storage, read> logits: array<f32>;           // softmax
@group(0) @binding(2) var<storage, read> saved_probs: array<f32>;      // softmax_backward
@group(0) @binding(3) var<storage, read> dprobs: array<f32>;           // softmax_backward

// probs = softmax(logits) over each row.
@compute @workgroup_size(ROW_WG)
fn softmax(at: RowPlace, @builtin(local_invocation_index) lid: u32) {
    let row = row_id(at);
    if row >= params.rows { return; }
    let base = row * params.d;
    var m = -3.0e38;
    for (var j = lid; j < params.d; j += ROW_WG) { m = max(m, logits[base + j]); }
    let mx = max_a(lid, m);
    var s = 0.0;
    for (var j = lid; j < params.d; j += ROW_WG) { s += exp(logits[base + j] - mx); }
    let inv = 1.0 / sum_b(lid, s);
    for (var j = lid; j < params.d; j += ROW_WG) { probs[base + j] = exp(logits[base + j] - mx) * inv; }
}

// dlogits = y * (dy - sum(y * dy)) with y = saved_probs and dy = dprobs.
@compute @workgroup_size(ROW_WG)
fn softmax_backward(at: RowPlace, @builtin(local_invocation_index) lid: u32) {
    let row = row_id(at);
    if row >= params.rows { return; }
    let base = row * params.d;
    var s = 0.0;
    for (var j = lid; j < params.d; j += ROW_WG) { s += saved_probs[base + j] * dprobs[base + j]; }
    let dot = sum_a(lid, s);
    for (var j = lid; j < params.d; j += ROW_WG) {
        dlogits[base + j] = saved_probs[base + j] * (dprobs[base + j] - dot);
    }
}
