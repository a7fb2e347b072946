// gather_rows_f16's table read as a WGSL f16 array (`enable f16;`, devices with SHADER_F16):
// data_b16.wgsl with f16 arrays, at src's binding.

@group(0) @binding(2) var<storage, read> src16: array<f16>;

// Half e of src, widened.
fn load_half(e: u32) -> f32 {
    return f32(src16[e]);
}
