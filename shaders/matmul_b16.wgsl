// The operands of matmul.wgsl with the weights (B) in 16 bits (appended to it), as pairs of
// halves packed in u32 words (unpack2x16float: no shader-f16 needed); sums stay f32. The
// launcher binds B as P for mm_rb and mm_sg (4 halves per vec4: a vec2<u32>) and as Y for
// mm_tiled (2 halves per word); the other operand stays f32 (x, q).

@group(0) @binding(2) var<storage, read> p: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> y: array<u32>;

// Vec4 i of P (halves 4i .. 4i + 3).
fn load_p(i: u32) -> vec4<f32> {
    let w = p[i];
    return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
}

// Element i of Y (half i).
fn load_y(i: u32) -> f32 {
    return unpack2x16float(y[i / 2u])[i % 2u];
}
