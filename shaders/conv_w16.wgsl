// conv_pack_w's weight in 16 bits (appended to conv.wgsl): halves packed two per u32 word,
// widened here, so the packed operand and the convolution itself stay f32.

@group(0) @binding(2) var<storage, read> weight: array<u32>;              // conv_pack_w, wino_weight

// Element i of the weight (half i).
fn load_weight(i: u32) -> f32 {
    return unpack2x16float(weight[i / 2u])[i % 2u];
}
