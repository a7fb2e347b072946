// conv_pack_w's and wino_weight's weight in 16 bits, read as a WGSL f16 array (`enable f16;`,
// devices with SHADER_F16) and widened here: conv_w16.wgsl with f16 arrays.

@group(0) @binding(2) var<storage, read> weight: array<f16>;              // conv_pack_w, wino_weight

// Element i of the weight (half i).
fn load_weight(i: u32) -> f32 {
    return f32(weight[i]);
}
