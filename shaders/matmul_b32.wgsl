// The operands of matmul.wgsl in f32 (appended to it): X as vec4s along K (p, mm_rb and mm_sg)
// or scalars (x, mm_tiled and pack), Y likewise (q, y).

@group(0) @binding(2) var<storage, read> p: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> y: array<f32>;

// Vec4 i of P.
fn load_p(i: u32) -> vec4<f32> {
    return p[i];
}

// Element i of Y.
fn load_y(i: u32) -> f32 {
    return y[i];
}
