// conv_pack_w's weight in f32 (appended to conv.wgsl).

@group(0) @binding(2) var<storage, read> weight: array<f32>;              // conv_pack_w

// Element i of the weight.
fn load_weight(i: u32) -> f32 {
    return weight[i];
}
