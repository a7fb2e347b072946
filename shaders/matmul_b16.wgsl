// The operands of matmul.wgsl with the weights (B) in 16 bits (appended to it), as pairs of
// halves packed in u32 words (unpack2x16float: no shader-f16 needed); sums stay f32. The
// launcher binds B as P for mm_rb, mm_sg and mm_sg8 (4 halves per vec4: a vec2<u32>; 8 per
// mm_sg8 load: a vec4<u32>) and as Y for mm_tiled (2 halves per word); the other operand stays
// f32 (x, q). matmul_h16.wgsl is the same with f16 arrays.

@group(0) @binding(2) var<storage, read> p: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read> p8: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> y: array<u32>;

// Vec4 i of P (halves 4i .. 4i + 3).
fn load_p(i: u32) -> vec4<f32> {
    let w = p[i];
    return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
}

// Vec4s i and i + 1 of P (i even): halves 4i .. 4i + 7 as two K steps.
fn load_p8(i: u32) -> mat2x4<f32> {
    let w = p8[i / 2u];
    return mat2x4<f32>(
        vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y)),
        vec4<f32>(unpack2x16float(w.z), unpack2x16float(w.w)),
    );
}

// Element i of Y (half i).
fn load_y(i: u32) -> f32 {
    return unpack2x16float(y[i / 2u])[i % 2u];
}
