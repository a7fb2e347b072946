//! 2D rotary position embedding (BitDance's RoPE) and the token positions it takes:
//! raster order, and the patch-raster order of next-patch models.

use crate::gpu::{Access, Kernel};
use crate::shaders::ROPE;
use crate::{DType, Error, Result, Tensor};

/// Define sets of `shaders/rope.wgsl` the runtime uses (validated by naga).
pub const ROPE_VARIANTS: &[&[(&str, u32)]] = &[&[]];

const ROPE_KERNEL: Kernel = Kernel {
    shader: &ROPE,
    entry: "rope_2d",
    bindings: &[Access::ReadWrite, Access::Read, Access::Read],
};

fn rotate(x: &Tensor, positions: &Tensor, sign: f32, op: &'static str) -> Result<Tensor> {
    let s = x.shape();
    if s.len() != 4 || !s[3].is_multiple_of(4) || s[3] == 0 {
        return Err(Error::Shape {
            op,
            detail: format!("x must be [B, T, H, Dh] with Dh a multiple of 4, found {s:?}"),
        });
    }
    if positions.shape() != [s[1], 2] {
        return Err(Error::Shape {
            op,
            detail: format!(
                "positions {:?} must be [{}, 2] for x {s:?}",
                positions.shape(),
                s[1]
            ),
        });
    }
    let out = Tensor::empty(x.gpu(), s, DType::F32)?;
    let pairs = x.numel() / 2;
    let p = [
        pairs as u32,
        s[1] as u32,
        s[2] as u32,
        s[3] as u32,
        sign.to_bits(),
    ];
    let grid = x.gpu().grid(op, (pairs as u32).div_ceil(256))?;
    x.gpu()
        .dispatch(&ROPE_KERNEL, &[], &[&out, x, positions], &p, grid)?;
    Ok(out)
}

/// Rotates q or k, x [B, T, H, Dh], by the 2D positions [T, 2] (x, y) of its tokens.
pub fn rope_2d(x: &Tensor, positions: &Tensor) -> Result<Tensor> {
    rotate(x, positions, 1.0, "rope_2d")
}

/// Backward of `rope_2d`: the inverse rotation of the gradient.
pub fn rope_2d_backward(dy: &Tensor, positions: &Tensor) -> Result<Tensor> {
    rotate(dy, positions, -1.0, "rope_2d_backward")
}

/// Positions [n_prefix + h*w, 2]: zeros for the prefix (class and query tokens), then
/// (col + 1.5, row + 1.5) for image cells in raster order.
pub fn rope_positions_raster(n_prefix: usize, grid_h: usize, grid_w: usize) -> Vec<f32> {
    let mut pos = vec![0.0; 2 * n_prefix];
    for row in 0..grid_h {
        for col in 0..grid_w {
            pos.extend([col as f32 + 1.5, row as f32 + 1.5]);
        }
    }
    pos
}

/// For each position in patch-raster order (patches of `patch` x `patch` cells in raster
/// order, cells inside a patch in raster order), the raster index of its cell.
pub fn patch_raster_order(grid_h: usize, grid_w: usize, patch: usize) -> Vec<u32> {
    let mut order = Vec::with_capacity(grid_h * grid_w);
    for pr in 0..grid_h.div_ceil(patch) {
        for pc in 0..grid_w.div_ceil(patch) {
            for r in pr * patch..((pr + 1) * patch).min(grid_h) {
                for c in pc * patch..((pc + 1) * patch).min(grid_w) {
                    order.push((r * grid_w + c) as u32);
                }
            }
        }
    }
    order
}

/// `rope_positions_raster` with the image cells permuted to patch-raster order.
pub fn rope_positions_patch_raster(
    n_prefix: usize,
    grid_h: usize,
    grid_w: usize,
    patch: usize,
) -> Vec<f32> {
    let raster = rope_positions_raster(0, grid_h, grid_w);
    let mut pos = vec![0.0; 2 * n_prefix];
    for cell in patch_raster_order(grid_h, grid_w, patch) {
        pos.extend_from_slice(&raster[2 * cell as usize..2 * cell as usize + 2]);
    }
    pos
}
