//! 2D rotary position embedding (BitDance / LlamaGen style) and its host-side position tables.
//!
//! Head dim Dh, k = Dh/4 frequencies f_i = 10000^(-2i/(Dh/2)). Interleaved pairs (2j, 2j+1) of
//! each head rotate like the complex product (x_2j + i x_2j+1) * e^(i a): pair j < k by
//! a = pos.x * f_j, pair k + j by a = pos.y * f_j. Image cell (row, col) has position
//! (x, y) = (col + 1.5, row + 1.5); class and query tokens have (0, 0), the identity.

pub(crate) mod check;
pub(crate) mod reference;
mod tape;

use crate::{DType, Error, Result, Tensor};

shader! {
    /// `shaders/rope.wgsl`.
    ROPE = "rope", ["rope"], Params, crate::gpu::Variants::Listed(ROPE_VARIANTS), false;
}

/// The shaders of this family, for validation.
#[cfg(test)]
pub(crate) const SHADERS: &[&crate::gpu::Shader] = &[&ROPE];

/// Define sets of `shaders/rope.wgsl` the runtime uses (validated by naga).
pub const ROPE_VARIANTS: &[&[(&str, u32)]] = &[&[]];

/// Largest head dim the kernel's uniform frequency table holds (64 frequencies).
pub const ROPE_MAX_HEAD_DIM: usize = 256;

/// RoPE frequency base.
const BASE: f64 = 10000.0;

uniform! {
    /// The uniform of `rope.wgsl`.
    struct Params {
        /// rope_2d: vec4s of x (B * T * hp / 2); rope_table: entries (T * hp).
        n: u32,
        /// Tokens.
        t: u32,
        /// Pairs per token: H * Dh / 2.
        hp: u32,
        /// Pairs per head: Dh / 2.
        half: u32,
        /// Frequencies: Dh / 4.
        k: u32,
        /// +1 forward, -1 backward.
        sign: f32,
        pad0: u32,
        pad1: u32,
        /// f_i = 10000^(-2i / (Dh/2)), computed in f64 and rounded to f32: ROPE_MAX_HEAD_DIM / 4
        /// of them, four to a vec4.
        freqs: [[f32; 4]; 16],
    }
}

// The table holds the Dh / 4 frequencies of the largest head dim, four to a vec4.
const _: () = assert!(ROPE_MAX_HEAD_DIM / 16 == 16);

kernels! { ROPE_KERNELS = ROPE, Params;
    ROPE_TABLE = "rope_table", [rw, r];
    ROPE_2D = "rope_2d", [rw, r, r];
}

/// The k = Dh/4 frequencies `10000^(-2i/(Dh/2))` in f64.
pub fn rope_frequencies(head_dim: usize) -> Vec<f64> {
    let half = (head_dim / 2) as f64;
    (0..head_dim / 4)
        .map(|i| BASE.powf(-2.0 * i as f64 / half))
        .collect()
}

/// The (sin, cos) of every RoPE angle for tokens at `positions` [T, 2] and `heads` heads of
/// `head_dim`: built once, it serves every rotation (forward and backward) of those tokens.
#[derive(Clone)]
pub struct RopeTable {
    /// [T, heads * head_dim / 2, 2] (sin, cos) per token and pair.
    table: Tensor,
    tokens: usize,
    heads: usize,
    head_dim: usize,
}

impl RopeTable {
    /// Computes the table on the GPU (one dispatch).
    pub fn new(positions: &Tensor, heads: usize, head_dim: usize) -> Result<Self> {
        const OP: &str = "rope_table";
        positions.expect_dtype(OP, "positions", DType::F32)?;
        let bad = |detail: String| Error::Shape { op: OP, detail };
        let t = match positions.shape() {
            &[t, 2] if t > 0 => t,
            s => return Err(bad(format!("positions {s:?} must be [T, 2], T > 0"))),
        };
        if heads == 0
            || head_dim == 0
            || !head_dim.is_multiple_of(4)
            || head_dim > ROPE_MAX_HEAD_DIM
        {
            return Err(bad(format!(
                "{heads} heads of dim {head_dim}: the head dim must be a non-zero multiple of 4, \
                 at most {ROPE_MAX_HEAD_DIM}"
            )));
        }
        let hp = heads * head_dim / 2;
        let table = Tensor::empty(positions.gpu(), &[t, hp, 2], DType::F32)?;
        let p = params(t * hp, t, hp, head_dim, 1.0);
        positions
            .gpu()
            .dispatch_items(&ROPE_TABLE, &[], &[&table, positions], &p, t * hp)?;
        Ok(Self {
            table,
            tokens: t,
            heads,
            head_dim,
        })
    }

    /// x [B, T, H, Dh] rotated by the table's angles times `sign` (+1 forward, -1 backward).
    fn rotate(&self, x: &Tensor, sign: f32, op: &'static str) -> Result<Tensor> {
        x.expect_dtype(op, "x", DType::F32)?;
        let want = [self.tokens, self.heads, self.head_dim];
        match x.shape() {
            &[b, t, h, dh] if b > 0 && [t, h, dh] == want => {
                let hp = h * dh / 2;
                let quads = b * t * hp / 2;
                let out = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
                let p = params(quads, t, hp, dh, sign);
                let tensors = [&out, x, &self.table];
                x.gpu().dispatch_items(&ROPE_2D, &[], &tensors, &p, quads)?;
                Ok(out)
            }
            s => Err(Error::Shape {
                op,
                detail: format!(
                    "x {s:?} must be [B, {}, {}, {}] for this table",
                    want[0], want[1], want[2]
                ),
            }),
        }
    }

    /// Applies the rotation: x [B, T, H, Dh] -> the same shape.
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        self.rotate(x, 1.0, "rope_2d")
    }

    /// Backward of `apply`: rotates dy [B, T, H, Dh] by the negative angles.
    pub fn apply_backward(&self, dy: &Tensor) -> Result<Tensor> {
        self.rotate(dy, -1.0, "rope_2d_backward")
    }
}

/// The uniform of a rope kernel over n items for T tokens of hp pairs and `head_dim`.
fn params(n: usize, t: usize, hp: usize, head_dim: usize, sign: f32) -> Params {
    let mut p = Params {
        n: n as u32,
        t: t as u32,
        hp: hp as u32,
        half: (head_dim / 2) as u32,
        k: (head_dim / 4) as u32,
        sign,
        ..Params::default()
    };
    let slots = p.freqs.iter_mut().flatten();
    for (slot, f) in slots.zip(rope_frequencies(head_dim)) {
        *slot = f as f32;
    }
    p
}

/// The table for x [B, T, H, Dh] and `positions` [T, 2], checking that they agree.
fn table_for(op: &'static str, x: &Tensor, positions: &Tensor) -> Result<RopeTable> {
    match x.shape() {
        &[_, t, h, dh] if positions.shape() == [t, 2] => RopeTable::new(positions, h, dh),
        s => Err(Error::Shape {
            op,
            detail: format!(
                "x {s:?} must be [B, T, H, Dh] with positions [T, 2]; positions are {:?}",
                positions.shape()
            ),
        }),
    }
}

/// Applies 2D RoPE to x [B, T, H, Dh] with per-token positions [T, 2] = (x, y) in f32 (builds
/// the table each call; use `RopeTable` to rotate several tensors of the same tokens).
pub fn rope_2d(x: &Tensor, positions: &Tensor) -> Result<Tensor> {
    table_for("rope_2d", x, positions)?.apply(x)
}

/// Backward of `rope_2d`: rotates dy [B, T, H, Dh] by the negative angles.
pub fn rope_2d_backward(dy: &Tensor, positions: &Tensor) -> Result<Tensor> {
    table_for("rope_2d_backward", dy, positions)?.apply_backward(dy)
}

/// Positions [n_prefix + h*w, 2] (flat): zeros for the prefix tokens, then (col + 1.5, row + 1.5)
/// for each image cell in raster order.
pub fn rope_positions_raster(n_prefix: usize, grid_h: usize, grid_w: usize) -> Vec<f32> {
    let mut p = vec![0.0; 2 * n_prefix];
    for row in 0..grid_h {
        for col in 0..grid_w {
            p.push(col as f32 + 1.5);
            p.push(row as f32 + 1.5);
        }
    }
    p
}

/// For each position of the patch-raster order (patches of `patch` x `patch` cells in raster
/// order, cells inside a patch in raster order), the raster index `row * grid_w + col` of its cell.
pub fn patch_raster_order(grid_h: usize, grid_w: usize, patch: usize) -> Result<Vec<u32>> {
    if patch == 0 || !grid_h.is_multiple_of(patch) || !grid_w.is_multiple_of(patch) {
        return Err(Error::Invalid(format!(
            "patch_raster_order: grid {grid_h}x{grid_w} is not divisible by patch {patch}"
        )));
    }
    let mut order = Vec::with_capacity(grid_h * grid_w);
    for pr in 0..grid_h / patch {
        for pc in 0..grid_w / patch {
            for i in 0..patch {
                for j in 0..patch {
                    order.push(((pr * patch + i) * grid_w + pc * patch + j) as u32);
                }
            }
        }
    }
    Ok(order)
}

/// `rope_positions_raster` with the image positions permuted to patch-raster order.
pub fn rope_positions_patch_raster(
    n_prefix: usize,
    grid_h: usize,
    grid_w: usize,
    patch: usize,
) -> Result<Vec<f32>> {
    let raster = rope_positions_raster(0, grid_h, grid_w);
    let mut p = vec![0.0; 2 * n_prefix];
    for cell in patch_raster_order(grid_h, grid_w, patch)? {
        let c = cell as usize;
        p.extend_from_slice(&raster[2 * c..2 * c + 2]);
    }
    Ok(p)
}

/// Every kernel this family declares, for the binding contract test.
#[cfg(test)]
pub(crate) const KERNELS: &[&[crate::gpu::Kernel]] = &[ROPE_KERNELS];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raster_positions_are_cell_centres_plus_one() {
        let p = rope_positions_raster(2, 2, 3);
        assert_eq!(p.len(), 2 * 8);
        assert_eq!(&p[..4], &[0.0; 4]);
        // token 2 + (row 0, col 0), token 2 + 5 = (row 1, col 2)
        assert_eq!(&p[4..6], &[1.5, 1.5]);
        assert_eq!(&p[6..8], &[2.5, 1.5]);
        assert_eq!(&p[14..16], &[3.5, 2.5]);
    }

    #[test]
    fn patch_raster_order_groups_patches() {
        let o = patch_raster_order(4, 4, 2).unwrap();
        assert_eq!(
            o,
            vec![0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15]
        );
        assert_eq!(
            patch_raster_order(3, 3, 1).unwrap(),
            (0..9).collect::<Vec<u32>>()
        );
        assert!(patch_raster_order(4, 6, 4).is_err());
        let p = rope_positions_patch_raster(1, 4, 4, 2).unwrap();
        // second patch position = raster cell 1 = (row 0, col 1)
        assert_eq!(&p[0..2], &[0.0, 0.0]);
        assert_eq!(&p[4..6], &[2.5, 1.5]);
        assert_eq!(&p[6..8], &[1.5, 2.5]);
    }

    #[test]
    fn frequencies_follow_the_official_formula() {
        let f = rope_frequencies(64);
        assert_eq!(f.len(), 16);
        assert_eq!(f[0], 1.0);
        assert!((f[1] - 10000f64.powf(-2.0 / 32.0)).abs() < 1e-15);
    }
}
