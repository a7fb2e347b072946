// The operands of matmul.wgsl with the weights (B) in 16 bits (appended to it), read as WGSL
// f16 arrays (`enable f16;`, devices with SHADER_F16); sums stay f32. The same bytes and the
// same bindings as matmul_b16.wgsl: P for mm_rb, mm_sg (vec4<f16>) and mm_sg8 (mat2x4<f16>,
// 8 halves per load), Y for mm_tiled (f16); the other operand stays f32 (x, q).

@group(0) @binding(2) var<storage, read> p: array<vec4<f16>>;
@group(0) @binding(2) var<storage, read> p8: array<mat2x4<f16>>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> y: array<f16>;

// Vec4 i of P (halves 4i .. 4i + 3).
fn load_p(i: u32) -> vec4<f32> {
    return vec4<f32>(p[i]);
}

// Vec4s i and i + 1 of P (i even): halves 4i .. 4i + 7 as two K steps.
fn load_p8(i: u32) -> mat2x4<f32> {
    return mat2x4<f32>(p8[i / 2u]);
}

// Element i of Y (half i).
fn load_y(i: u32) -> f32 {
    return f32(y[i]);
}
