//! Winograd F(2x2, 3x3) form of stride-1 3x3 convolutions: the input patches and the kernels
//! transformed (`shaders/winograd.wgsl`), 16 batched matmuls over the channels, the output
//! tiles transformed back. 2.25x fewer multiplies than the direct convolution; the
//! transformed operands are made a chunk of tiles at a time, so they stay small.

use super::{Params, Path, WeightLayout};
use crate::gpu::Kernel;
use crate::ops::matmul;
use crate::{DType, Result, Tensor};

shader! {
    /// `shaders/winograd.wgsl` with f32 weights.
    WINOGRAD = "winograd", ["conv_common", "winograd", "conv_w32"], Params,
        crate::gpu::Variants::Listed(NO_DEFINES), false;
}
shader! {
    /// `shaders/winograd.wgsl` with 16-bit weights (wino_weight widens them).
    WINOGRAD_W16 = "winograd_w16", ["conv_common", "winograd", "conv_w16"], Params,
        crate::gpu::Variants::Listed(NO_DEFINES), false,
        f16 ["conv_common", "winograd", "conv_h16"];
}

/// The Winograd kernels take no defines.
const NO_DEFINES: &[&[(&str, u32)]] = &[&[]];

kernels! { WINOGRAD_KERNELS = WINOGRAD, Params;
    WINO_INPUT = "wino_input", [rw, r];
    WINO_WEIGHT = "wino_weight", [rw, r];
    WINO_OUTPUT = "wino_output", [rw, r, r];
}
kernels! { WINOGRAD_W16_KERNELS = WINOGRAD_W16, Params;
    WINO_WEIGHT16 = "wino_weight", [rw, r];
}

/// The transformed input and the matmul output of one chunk, and the transformed kernels of
/// one group of output channels, stay under this many bytes each.
const CHUNK_BYTES: usize = 16 << 20;

/// Tiles per chunk and output channels per group on `Path::Winograd`, so that conformance
/// crosses chunk and group boundaries.
const CHECK_CHUNK_TILES: usize = 7;
const CHECK_GROUP_CHANNELS: usize = 5;

/// Channels below which the direct convolution is kept on `Path::Auto`: the 16 matmuls of a
/// thin convolution (the decoder's RGB output, 3 channels) are too narrow to pay.
const MIN_CHANNELS: usize = 16;

/// Whether the convolution of `kernel` taps at `stride` from `cin` to `cout` channels runs in
/// the Winograd form on `path`: always where it can on `Path::Winograd`; on `Path::Auto` on
/// CPU adapters (where it was measured faster) for channels of at least `MIN_CHANNELS`.
pub(super) fn applies(
    gpu: &crate::Gpu,
    path: Path,
    kernel: [usize; 2],
    stride: usize,
    [cin, cout]: [usize; 2],
) -> bool {
    let fits = kernel == [3, 3] && stride == 1;
    match path {
        Path::Winograd => fits,
        Path::Auto => fits && gpu.is_cpu() && cin.min(cout) >= MIN_CHANNELS,
        Path::Portable => false,
    }
}

/// Records a Winograd kernel over `items` threads (its `total`).
fn launch(kernel: &Kernel, tensors: &[&Tensor], p: &mut Params, items: usize) -> Result<()> {
    p.total = items as u32;
    tensors[0]
        .gpu()
        .dispatch_items(kernel, &[], tensors, p, items)
}

/// The convolution `geometry` describes (n, cin, h, w, cout, ho, wo, pad_t, pad_l; 3x3 taps,
/// stride 1) of x [n, cin, h, w] with `weight` (f32 or f16) read as `layout`, plus `bias`
/// [cout]: y [n, cout, ho, wo]. `Path::Winograd` (conformance) runs chunks of a few tiles and
/// groups of a few channels.
pub(super) fn conv(
    x: &Tensor,
    weight: &Tensor,
    layout: WeightLayout,
    bias: &Tensor,
    geometry: &Params,
    path: Path,
) -> Result<Tensor> {
    let gpu = x.gpu();
    let u = |v: u32| v as usize;
    let (n, cin, cout) = (u(geometry.n), u(geometry.cin), u(geometry.cout));
    let (ho, wo) = (u(geometry.ho), u(geometry.wo));
    let (tiles_h, tiles_w) = (ho.div_ceil(2), wo.div_ceil(2));
    let mut p = Params {
        w_flip: u32::from(layout == WeightLayout::TransposedFlipped),
        tiles_h: tiles_h as u32,
        tiles_w: tiles_w as u32,
        ..*geometry
    };
    let weight_kernel = match weight.dtype() {
        DType::F16 => &WINO_WEIGHT16,
        _ => &WINO_WEIGHT,
    };
    let y = Tensor::empty(gpu, &[n, cout, ho, wo], DType::F32)?;
    let all = n * tiles_h * tiles_w;
    let budget = CHUNK_BYTES.min(gpu.limits().max_storage_buffer_binding_size as usize);
    let row_bytes = 16 * std::mem::size_of::<f32>();
    let (chunk, group) = match path {
        Path::Winograd => (CHECK_CHUNK_TILES, CHECK_GROUP_CHANNELS),
        _ => (
            budget / (row_bytes * cin.max(cout)),
            budget / (row_bytes * cin),
        ),
    };
    // Even chunks and groups: fewer distinct buffer sizes for the pool to hold.
    let even = |step: usize, n: usize| n.div_ceil(n.div_ceil(step.clamp(1, n)));
    let (chunk, group) = (even(chunk, all), even(group, cout));
    // Output channels by groups (the transformed kernels of a group stay under the budget),
    // tiles by chunks within each group.
    for c_first in (0..cout).step_by(group) {
        let c_count = group.min(cout - c_first);
        p.c_first = c_first as u32;
        p.c_count = c_count as u32;
        let transformed = Tensor::empty(gpu, &[16, c_count, cin], DType::F32)?;
        launch(
            weight_kernel,
            &[&transformed, weight],
            &mut p,
            c_count * cin,
        )?;
        for tile0 in (0..all).step_by(chunk) {
            let tiles = chunk.min(all - tile0);
            p.tile0 = tile0 as u32;
            p.tiles = tiles as u32;
            let v = Tensor::empty(gpu, &[16, tiles, cin], DType::F32)?;
            launch(&WINO_INPUT, &[&v, x], &mut p, tiles * cin)?;
            let m = matmul(&v, &transformed, None, false, true)?;
            launch(&WINO_OUTPUT, &[&y, &m, bias], &mut p, tiles * c_count)?;
        }
    }
    Ok(y)
}
