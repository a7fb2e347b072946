// gather_rows_f16's table as pairs of halves packed in data.wgsl's u32 words (unpack2x16float).

// Half e of src, widened.
fn load_half(e: u32) -> f32 {
    return unpack2x16float(src[e / 2u])[e % 2u];
}
