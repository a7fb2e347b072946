// What every shader of the convolution family shares (prepended to conv.wgsl and
// conv_grad.wgsl): the one uniform, its binding, and the index helpers of the element kernels.
// Element kernels run 256 threads per workgroup: id = gid.x + gid.y * nwg.x * 256.

// struct Params: generated from the Rust `uniform!` in crates/bitdance/src/ops/conv/mod.rs
// (its fields are documented there) and prepended to this source.

@group(0) @binding(0) var<uniform> params: Params;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>, wg: u32) -> u32 {
    return gid.x + gid.y * nwg.x * wg;
}

// Pixel `r` of an [n, h, w] grid as its batch, row and column (the divisions, lane-by-lane
// loops on llvmpipe, written once).
struct Pixel {
    b: u32,
    y: u32,
    x: u32,
}

fn pixel_of(r: u32, h: u32, w: u32) -> Pixel {
    let t = r / w;
    let b = t / h;
    return Pixel(b, t - b * h, r - t * w);
}

// Item i of [pixels of an h x w map, per] as its pixel and its slot (0..per) at that pixel.
struct PixelItem {
    p: Pixel,
    slot: u32,
}

fn pixel_item(i: u32, per: u32, h: u32, w: u32) -> PixelItem {
    let t = i / per;
    return PixelItem(pixel_of(t, h, w), i - t * per);
}

// The DCR pairing of depth_to_space and space_to_depth (block s = params.stride, params.cin
// = c, params.h, params.w = h, w): element i of the spatial tensor [n, c, s*h, s*w] is
// element depth_index(i) of the depth tensor [n, s*s*c, h, w], whose channel
// (b1 * s + b2) * c + ch holds pixel (s*y + b1, s*x + b2) of channel ch.
fn depth_index(i: u32) -> u32 {
    let s = params.stride;
    let p = pixel_of(i, params.h * s, params.w * s);
    let b = p.b / params.cin;
    let ch = p.b - b * params.cin;
    let blk = (p.y % s) * s + p.x % s;
    let ic = (b * s * s + blk) * params.cin + ch;
    return (ic * params.h + p.y / s) * params.w + p.x / s;
}
