//! Batched matrix multiply with a fused bias, over `shaders/matmul.wgsl`, with a kernel
//! configuration chosen per adapter (register blocking on CPU adapters, shared-memory tiles on
//! GPUs; see `autotune_matmul`).

pub(crate) mod check;
pub(crate) mod reference;
mod tape;

mod geometry;
mod launch;
mod tune;

pub use tune::{
    autotune_matmul, default_matmul_config, matmul_candidates, matmul_config, set_matmul_config,
};

use crate::{DType, Result, Tensor};

shader! {
    /// `shaders/matmul.wgsl` with f32 operands and the generated `shaders/matmul_rb.wgsl`.
    MATMUL = "matmul", ["matmul", "matmul_b32", "matmul_rb"], launch::Params,
        crate::gpu::Variants::Derived(|| matmul_variants(false)), false;
}
shader! {
    /// `shaders/matmul.wgsl` with f32 operands and the generated `shaders/matmul_sg.wgsl`
    /// (the subgroup-broadcast matmul reuses its parameters, bindings and helpers).
    MATMUL_SG = "matmul_sg", ["matmul", "matmul_b32", "matmul_sg"], launch::Params,
        crate::gpu::Variants::Derived(|| matmul_variants(true)), true;
}
shader! {
    /// `MATMUL` with the weights (B) in 16 bits (`shaders/matmul_b16.wgsl`).
    MATMUL_B16 = "matmul_b16", ["matmul", "matmul_b16", "matmul_rb"], launch::Params,
        crate::gpu::Variants::Derived(|| matmul_variants(false)), false,
        f16 ["matmul", "matmul_h16", "matmul_rb"];
}
shader! {
    /// `MATMUL_SG` with the weights (B) in 16 bits (`shaders/matmul_b16.wgsl`).
    MATMUL_SG_B16 = "matmul_sg_b16", ["matmul", "matmul_b16", "matmul_sg"], launch::Params,
        crate::gpu::Variants::Derived(|| matmul_variants(true)), true,
        f16 ["matmul", "matmul_h16", "matmul_sg"];
}

shader! {
    /// `MATMUL_SG_B16` reading 8 halves per load (`shaders/matmul_sg8.wgsl`), for weights
    /// stored along K with K a multiple of 8.
    MATMUL_SG8_B16 = "matmul_sg8_b16", ["matmul", "matmul_b16", "matmul_sg8"], launch::Params,
        crate::gpu::Variants::Derived(|| matmul_variants(true)), true,
        f16 ["matmul", "matmul_h16", "matmul_sg8"];
}

/// The shaders of this family, for validation.
#[cfg(test)]
pub(crate) const SHADERS: &[&crate::gpu::Shader] = &[
    &MATMUL,
    &MATMUL_SG,
    &MATMUL_B16,
    &MATMUL_SG_B16,
    &MATMUL_SG8_B16,
];

/// One kernel configuration of `shaders/matmul.wgsl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MatmulConfig {
    /// Barrier-free register blocking (CPU adapters): workgroups of `wg` invocations sharing
    /// `t` output columns, each invocation owning `rp` rows.
    Register {
        /// Invocations per workgroup.
        wg: u32,
        /// Output columns per workgroup (multiply-adds per gathered value).
        t: u32,
        /// Rows per invocation.
        rp: u32,
    },
    /// `Register` with the shared columns loaded once per subgroup and broadcast to its lanes
    /// (CPU adapters with subgroups of at least 8 lanes: lavapipe).
    Subgroup {
        /// Invocations per workgroup.
        wg: u32,
        /// Output columns per workgroup (a multiple of 8, or 4 when narrowed).
        t: u32,
        /// Rows per invocation.
        rp: u32,
    },
    /// Shared-memory tiling (GPUs): `ts`x`ts` invocations with 4x4 outputs each, over K
    /// tiles `bk` deep.
    Tiled {
        /// Invocations per side of the workgroup.
        ts: u32,
        /// Depth of a K tile.
        bk: u32,
    },
}

impl MatmulConfig {
    /// Default on CPU adapters with subgroups of 8 or more lanes (lavapipe).
    pub const CPU_SUBGROUP_DEFAULT: Self = Self::Subgroup {
        wg: 16,
        t: 32,
        rp: 8,
    };
    /// Default on CPU adapters without subgroups (SwiftShader in a browser).
    pub const CPU_DEFAULT: Self = Self::Register {
        wg: 16,
        t: 16,
        rp: 12,
    };
    /// Default on real GPUs.
    pub const GPU_DEFAULT: Self = Self::Tiled { ts: 16, bk: 8 };

    /// The shader defines of this configuration (every define of the file, unused ones neutral).
    pub fn defines(self) -> [(&'static str, u32); 5] {
        let (wg, t, rp, ts, bk) = match self {
            Self::Register { wg, t, rp } | Self::Subgroup { wg, t, rp } => (wg, t, rp, 8, 4),
            Self::Tiled { ts, bk } => (64, 4, 4, ts, bk),
        };
        [("WG", wg), ("T", t), ("RP", rp), ("TS", ts), ("BK", bk)]
    }

    /// The configuration that computes `cols` output columns per workgroup pass: a register
    /// block narrowed to 4 or 8 columns when that covers them (a linear layer over the few
    /// rows of a sampling step would otherwise multiply padding), else `self`.
    pub fn narrowed(self, cols: usize) -> Self {
        match self {
            Self::Register { wg, t, rp } => Self::Register {
                wg,
                t: narrow_columns(t, cols),
                rp,
            },
            Self::Subgroup { wg, t, rp } => Self::Subgroup {
                wg,
                t: narrow_columns(t, cols),
                rp,
            },
            tiled => tiled,
        }
    }

    /// Whether `gpu` can run this configuration (the subgroup one needs subgroups of 8+).
    pub fn runs_on(self, gpu: &crate::Gpu) -> bool {
        !matches!(self, Self::Subgroup { .. }) || gpu.has_subgroups(8)
    }
}

/// The register block's column count for `cols` output columns: the narrowest of 4, 8, 16
/// and 24 that covers them and is narrower than `t`, else `t`. Each weight load feeds a
/// multiply-add per column of the block: a block twice the columns does twice the work for
/// the same output (2 images' 16 head rows on a 32-column block took 2.7x one image's 8 rows
/// on lavapipe; on 16 columns, less than twice).
fn narrow_columns(t: u32, cols: usize) -> u32 {
    [4, 8, 16, 24]
        .into_iter()
        .find(|&n| n < t && cols <= n as usize)
        .unwrap_or(t)
}

impl std::fmt::Display for MatmulConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Register { wg, t, rp } => write!(f, "register wg{wg} t{t} rp{rp}"),
            Self::Subgroup { wg, t, rp } => write!(f, "subgroup wg{wg} t{t} rp{rp}"),
            Self::Tiled { ts, bk } => write!(f, "tiled {ts}x{ts} bk{bk}"),
        }
    }
}

/// Every selectable configuration (each is verified by the conformance checks). The
/// register blocks trade lane-gathered loads for spilled accumulators; 24x4 suits drivers
/// whose workgroup-uniform loads are cheap broadcasts (newer Mesa), the others Mesa 22.
pub const MATMUL_CONFIGS: &[MatmulConfig] = &[
    MatmulConfig::CPU_SUBGROUP_DEFAULT,
    MatmulConfig::Subgroup {
        wg: 16,
        t: 16,
        rp: 12,
    },
    MatmulConfig::Subgroup {
        wg: 16,
        t: 32,
        rp: 4,
    },
    MatmulConfig::Subgroup {
        wg: 16,
        t: 24,
        rp: 8,
    },
    MatmulConfig::Subgroup {
        wg: 8,
        t: 32,
        rp: 12,
    },
    MatmulConfig::CPU_DEFAULT,
    MatmulConfig::Register {
        wg: 16,
        t: 16,
        rp: 8,
    },
    MatmulConfig::Register {
        wg: 16,
        t: 24,
        rp: 4,
    },
    MatmulConfig::GPU_DEFAULT,
    MatmulConfig::Tiled { ts: 8, bk: 8 },
];

/// Define sets the runtime may build `shaders/matmul.wgsl` with (`subgroup` false: mm_rb and
/// mm_tiled) or `shaders/matmul_sg.wgsl` (true): each configuration of that kind in
/// `MATMUL_CONFIGS`, and its register block narrowed to 24, 16, 8 and 4 columns.
pub fn matmul_variants(subgroup: bool) -> Vec<Vec<(&'static str, u32)>> {
    let mut sets: Vec<Vec<(&'static str, u32)>> = Vec::new();
    let kind = |c: &&MatmulConfig| matches!(c, MatmulConfig::Subgroup { .. }) == subgroup;
    for &c in MATMUL_CONFIGS.iter().filter(kind) {
        for cols in [usize::MAX, 24, 16, 8, 4] {
            let set = c.narrowed(cols).defines().to_vec();
            if !sets.contains(&set) {
                sets.push(set);
            }
        }
    }
    sets
}

/// `a · b (+ bias)` with the configuration chosen for `a`'s adapter.
///
/// a is [..batch, M, K] ([..batch, K, M] when `trans_a`); b is [..batch, K, N]
/// ([..batch, N, K] when `trans_b`) with the same batch dims, or 2-D and shared by every
/// batch entry (a linear layer is `matmul(x, w, Some(bias), false, true)` with PyTorch's
/// w [out, in]); bias is [N]. b may be f16 when it is such weights (K a multiple of 4): the
/// kernels widen it and sum in f32. Returns [..batch, M, N].
pub fn matmul(
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    trans_a: bool,
    trans_b: bool,
) -> Result<Tensor> {
    matmul_with(a, b, bias, trans_a, trans_b, matmul_config(a.gpu()))
}

/// `matmul` with an explicit kernel configuration (used by the conformance checks and tuning).
pub fn matmul_with(
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    trans_a: bool,
    trans_b: bool,
    config: MatmulConfig,
) -> Result<Tensor> {
    a.expect_dtype("matmul", "a", DType::F32)?;
    if b.dtype() != DType::F16 {
        b.expect_dtype("matmul", "b", DType::F32)?;
    }
    if let Some(bias) = bias {
        bias.expect_dtype("matmul", "bias", DType::F32)?;
    }
    let g = geometry::geometry(
        a.shape(),
        b.shape(),
        bias.map(|t| t.shape()),
        trans_a,
        trans_b,
    )?;
    // 16-bit b is read 4 halves at a time, along K (x·Wᵀ) or along its rows (dy·W, the
    // input gradient through a frozen 16-bit weight), never packed.
    let along_k = g.b_ks == 1;
    let along_rows = g.b_ns == 1 && g.n.is_multiple_of(4);
    if b.dtype() == DType::F16 && !(g.k.is_multiple_of(4) && (along_k || along_rows)) {
        return Err(crate::Error::Shape {
            op: "matmul",
            detail: format!(
                "16-bit b {:?} must be weights [N, K] read along K (trans_b) with K a multiple \
                 of 4, or [K, N] read along N with K and N multiples of 4",
                b.shape()
            ),
        });
    }
    let gpu = a.gpu();
    if g.k == 0 {
        let zeros = Tensor::zeros(gpu, &g.out_shape)?;
        return match bias {
            Some(bias) if zeros.numel() > 0 => crate::ops::add_bias(&zeros, bias),
            _ => Ok(zeros),
        };
    }
    let out = Tensor::empty(gpu, &g.out_shape, DType::F32)?;
    if out.numel() > 0 {
        launch::record(&g, a, b, bias, &out, config)?;
    }
    Ok(out)
}

/// Every kernel this family declares, for the binding contract test.
#[cfg(test)]
pub(crate) const KERNELS: &[&[crate::gpu::Kernel]] = &[
    launch::MATMUL_KERNELS,
    launch::MATMUL_SG_KERNELS,
    launch::MATMUL_B16_KERNELS,
    launch::MATMUL_SG_B16_KERNELS,
    launch::MATMUL_SG8_B16_KERNELS,
];

#[cfg(test)]
mod tests {
    use super::{matmul_variants, MatmulConfig, MATMUL_CONFIGS};

    #[test]
    fn configs_fit_the_shader() {
        for c in MATMUL_CONFIGS {
            match *c {
                // mm_rb is generated for RP in {4, 8, 12} and T <= 32 in steps of 4.
                MatmulConfig::Register { wg, t, rp } => {
                    assert!([4, 8, 12].contains(&rp) && t % 4 == 0 && (4..=32).contains(&t));
                    assert!((1..=256).contains(&wg), "{c:?}");
                }
                // mm_sg: RP as mm_rb, T <= 32 in steps of 8 (each lane loads T / 8 vec4s).
                MatmulConfig::Subgroup { wg, t, rp } => {
                    assert!([4, 8, 12].contains(&rp) && t % 8 == 0 && (8..=32).contains(&t));
                    assert!(wg % 8 == 0 && (8..=256).contains(&wg), "{c:?}");
                }
                MatmulConfig::Tiled { ts, bk } => assert!(ts * ts <= 256 && bk > 0, "{c:?}"),
            }
        }
    }

    #[test]
    fn every_narrowing_has_its_variant() {
        // The derived sets assume narrowing yields only the block itself, 24, 16, 8 or 4
        // columns.
        for &c in MATMUL_CONFIGS {
            let sets = matmul_variants(matches!(c, MatmulConfig::Subgroup { .. }));
            for cols in 1..=64 {
                let n = c.narrowed(cols).defines().to_vec();
                assert!(sets.contains(&n), "{c:?} narrowed to {cols}");
            }
        }
    }

    #[test]
    fn narrowing_covers_the_columns_with_the_smallest_block() {
        let c = MatmulConfig::CPU_DEFAULT;
        let t = |c: MatmulConfig, cols| match c.narrowed(cols) {
            MatmulConfig::Register { t, .. } | MatmulConfig::Subgroup { t, .. } => t,
            MatmulConfig::Tiled { .. } => unreachable!(),
        };
        let widths = |c| [1, 4, 5, 8, 9, 16, 17, 24, 25, 300].map(|cols| t(c, cols));
        assert_eq!(widths(c), [4, 4, 8, 8, 16, 16, 16, 16, 16, 16]);
        assert_eq!(
            widths(MatmulConfig::CPU_SUBGROUP_DEFAULT),
            [4, 4, 8, 8, 16, 16, 24, 24, 32, 32]
        );
        assert_eq!(
            MatmulConfig::GPU_DEFAULT.narrowed(2),
            MatmulConfig::GPU_DEFAULT
        );
    }
}
