//! Convolution-family ops of the binary autoencoder (forward): NCHW 2D convolution with zero
//! padding and DCR depth-to-space.

mod backward;
pub(crate) mod check;
mod check_backward;
pub(crate) mod reference;
mod tape;
mod winograd;

pub use backward::*;

use super::shape_err;
use crate::gpu::Kernel;
use crate::{DType, Error, Result, Tensor};

shader! {
    /// `shaders/conv.wgsl` (f32 weights) followed by the generated `shaders/conv_rb.wgsl` (the

    /// CPU form of the convolution without subgroups).
    CONV = "conv", ["conv_common", "conv", "conv_w32", "conv_rb"], Params,
        crate::gpu::Variants::Listed(CONV_VARIANTS), false;
}
shader! {
    /// `shaders/conv.wgsl` (f32 weights) followed by the generated `shaders/conv_sg.wgsl` (the
    /// convolution with subgroup-broadcast weights, CPU adapters with 8-lane subgroups).
    CONV_SG = "conv_sg", ["conv_common", "conv", "conv_w32", "conv_sg"], Params,
        crate::gpu::Variants::Listed(CONV_SG_VARIANTS), true;
}
shader! {
    /// `shaders/conv.wgsl` with 16-bit weights (`conv_w16.wgsl`), for conv_pack_w.
    CONV_W16 = "conv_w16", ["conv_common", "conv", "conv_w16"], Params,
        crate::gpu::Variants::Listed(CONV_VARIANTS), false, f16 ["conv_common", "conv", "conv_h16"];
}
shader! {
    /// `shaders/conv_grad.wgsl` (after `conv_common.wgsl`): im2col, col2im and the other backward helpers.
    CONV_GRAD = "conv_grad", ["conv_common", "conv_grad"], Params,
        crate::gpu::Variants::Listed(CONV_GRAD_VARIANTS), false;
}

/// The shaders of this family, for validation.
#[cfg(test)]
pub(crate) const SHADERS: &[&crate::gpu::Shader] = &[
    &CONV,
    &CONV_SG,
    &CONV_W16,
    &CONV_GRAD,
    &winograd::WINOGRAD,
    &winograd::WINOGRAD_W16,
];

/// Define sets of `shaders/conv.wgsl` the runtime uses (validated by naga): output channels per
/// conv invocation (TC), output pixels per conv invocation (PX, a multiple of 4), conv threads
/// per workgroup (CONV_WG).
pub const CONV_VARIANTS: &[&[(&str, u32)]] = &[CPU_DEFINES, CPU_SG_DEFINES, GPU_DEFINES];
/// Define sets of the subgroup build (`conv.wgsl` + `conv_sg.wgsl`): CPU adapters only.
pub const CONV_SG_VARIANTS: &[&[(&str, u32)]] = &[CPU_SG_DEFINES];

/// CPU adapters (llvmpipe): wide register blocks, few threads per barrier; TC and PX must
/// match the written-out `conv2d_rb` (and `CPU_SG_DEFINES` `conv2d_sg`; `scripts/gen_conv.py`).
const CPU_DEFINES: &[(&str, u32)] = &[("TC", 16), ("PX", 16), ("CONV_WG", 16)];
/// CPU adapters with 8-lane subgroups (`conv2d_sg`): more channels, fewer pixels per lane.
const CPU_SG_DEFINES: &[(&str, u32)] = &[("TC", 32), ("PX", 8), ("CONV_WG", 16)];
/// GPUs: smaller blocks, more invocations.
const GPU_DEFINES: &[(&str, u32)] = &[("TC", 8), ("PX", 4), ("CONV_WG", 64)];

kernels! { CONV_KERNELS = CONV, Params;
    CONV2D = "conv2d", [rw, r, r, r];
    CONV2D_RB = "conv2d_rb", [rw, r, r, r];
    CONV_PACK_X = "conv_pack_x", [rw, r];
    CONV_PACK_W = "conv_pack_w", [rw, r];
    DEPTH_TO_SPACE = "depth_to_space", [rw, r];
}
kernels! { CONV_SG_KERNELS = CONV_SG, Params;
    CONV2D_SG = "conv2d_sg", [rw, r, r, r];
}
kernels! { CONV_W16_KERNELS = CONV_W16, Params;
    CONV_PACK_W16 = "conv_pack_w", [rw, r];
}

/// Which kernels and define set to use: the adapter's own, or the GPU (portable) ones anywhere,
/// so conformance also covers the GPU path on CPU adapters; or the Winograd form wherever it
/// applies (3x3, stride 1), so conformance covers it on every adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Path {
    Auto,
    Portable,
    Winograd,
}

impl Path {
    fn cpu(self, gpu: &crate::Gpu) -> bool {
        self != Path::Portable && gpu.is_cpu()
    }
}

fn defines(gpu: &crate::Gpu, path: Path) -> &'static [(&'static str, u32)] {
    conv_form(gpu, path).1
}

/// The convolution kernel of `path` on this adapter and the define set every kernel of the
/// family then uses: `conv2d_sg` on CPU adapters with subgroups of 8+ lanes, `conv2d_rb` on
/// other CPU adapters, `conv2d` on GPUs.
fn conv_form(gpu: &crate::Gpu, path: Path) -> (&'static Kernel, &'static [(&'static str, u32)]) {
    match path.cpu(gpu) {
        true if gpu.has_subgroups(8) => (&CONV2D_SG, CPU_SG_DEFINES),
        true => (&CONV2D_RB, CPU_DEFINES),
        false => (&CONV2D, GPU_DEFINES),
    }
}

/// The value of define `name` on this adapter.
fn define(gpu: &crate::Gpu, path: Path, name: &str) -> usize {
    defines(gpu, path)
        .iter()
        .find(|(k, _)| *k == name)
        .map_or(1, |(_, v)| *v as usize)
}

uniform! {
    /// The uniform of the whole family (`conv_common.wgsl`).
    struct Params {
        /// Batch.
        n: u32,
        /// Input channels (conv, im2col, col2im), output channels (depth_to_space, space_to_depth).
        cin: u32,
        /// Input height.
        h: u32,
        /// Input width.
        w: u32,
        /// Output channels (conv).
        cout: u32,
        /// Output height.
        ho: u32,
        /// Output width.
        wo: u32,
        kh: u32,
        kw: u32,
        stride: u32,
        pad_t: u32,
        pad_l: u32,
        /// Channel tiles of TC (conv).
        tiles_c: u32,
        /// Pixel tiles of PX (conv).
        tiles_p: u32,
        /// Threads needed (element kernels).
        total: u32,
        /// Padded input height (conv).
        hp: u32,
        /// Padded input width (conv).
        wp: u32,
        /// Input channels / 4, rounded up (conv).
        cq: u32,
        /// conv_pack_w, wino_weight: 1 = weight stored [cin, cout, kh, kw], taps reversed.
        w_flip: u32,
        /// Winograd: first tile of the launch (tiles numbered over n, tile rows, tile columns).
        tile0: u32,
        /// Winograd: tiles of the launch.
        tiles: u32,
        /// Winograd: rows of 2x2 output tiles, ceil(ho / 2).
        tiles_h: u32,
        /// Winograd: columns of 2x2 output tiles, ceil(wo / 2).
        tiles_w: u32,
        /// Winograd: first output channel of the launch.
        c_first: u32,
        /// Winograd: output channels of the launch.
        c_count: u32,
    }
}

/// `[B, C, H, W]` of a rank-4 f32 tensor with no zero dim.
pub(super) fn nchw(op: &'static str, what: &'static str, t: &Tensor) -> Result<[usize; 4]> {
    t.expect_dtype(op, what, DType::F32)?;
    dims4(op, what, t)
}

/// `[B, C, H, W]` of a rank-4 tensor of any dtype with no zero dim.
fn dims4(op: &'static str, what: &'static str, t: &Tensor) -> Result<[usize; 4]> {
    match *t.shape() {
        [b, c, h, w] if b * c * h * w > 0 => Ok([b, c, h, w]),
        _ => Err(shape_err(
            op,
            format!(
                "{what} {:?} must be [B, C, H, W] with no zero dim",
                t.shape()
            ),
        )),
    }
}

/// Zero padding of a convolution: rows added on top and bottom, columns on the left and right.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Padding {
    /// Rows of zeros above.
    pub top: usize,
    /// Rows of zeros below.
    pub bottom: usize,
    /// Columns of zeros on the left.
    pub left: usize,
    /// Columns of zeros on the right.
    pub right: usize,
}

impl Padding {
    /// The same padding `p` on all four sides (PyTorch `padding=p`).
    pub fn same(p: usize) -> Self {
        Self {
            top: p,
            bottom: p,
            left: p,
            right: p,
        }
    }
}

/// 2D convolution, PyTorch `nn.Conv2d` semantics (NCHW, zero padding, no dilation or groups):
/// x [B, Cin, H, W], weight [Cout, Cin, kh, kw], bias [Cout] or none, symmetric `padding`.
/// Returns y [B, Cout, Ho, Wo] with Ho = (H + 2p - kh) / stride + 1 (likewise Wo).
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    conv2d_padded(x, weight, bias, stride, Padding::same(padding))
}

/// `conv2d` with explicit (possibly asymmetric) zero padding:
/// Ho = (H + top + bottom - kh) / stride + 1, Wo = (W + left + right - kw) / stride + 1.
pub fn conv2d_padded(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    pad: Padding,
) -> Result<Tensor> {
    conv2d_on(x, weight, bias, stride, pad, Path::Auto)
}

/// `conv2d_padded` on the kernels of `path`.
pub(crate) fn conv2d_on(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    pad: Padding,
    path: Path,
) -> Result<Tensor> {
    conv2d_core(x, weight, WeightLayout::Forward, bias, stride, pad, path)
}

/// x [B, C, H, W] padded by `pad` and packed as NHWC vec4s of channels: [B, Hp, Wp, 4 ceil(C/4)]
/// (zero border, zero channels past C), the layout the convolution kernels read.
pub(crate) fn pack_input(x: &Tensor, pad: Padding) -> Result<Tensor> {
    let [b, cin, h, w] = nchw("pack_input", "x", x)?;
    let mut p = Params::convolution(b, cin, [h, w], [1, 1], 1, pad);
    pack_input_with(x, &mut p, Path::Auto)
}

/// `pack_input` for the convolution described by `p` (n, cin, h, w, pads, hp, wp, cq).
fn pack_input_with(x: &Tensor, p: &mut Params, path: Path) -> Result<Tensor> {
    let gpu = x.gpu();
    let shape = [p.n, p.hp, p.wp, 4 * p.cq].map(|v| v as usize);
    let xp = Tensor::empty(gpu, &shape, DType::F32)?;
    let total = xp.numel() / 4;
    p.total = total as u32;
    gpu.dispatch_items(&CONV_PACK_X, defines(gpu, path), &[&xp, x], p, total)?;
    Ok(xp)
}

/// How `conv2d_core` reads its weight tensor.
#[derive(Clone, Copy, PartialEq, Eq)]
enum WeightLayout {
    /// [Cout, Cin, kh, kw], as `nn.Conv2d` stores it.
    Forward,
    /// The weight of the convolution whose input gradient this is: [Cin, Cout, kh, kw] with
    /// the taps reversed (a transposed convolution at stride 1).
    TransposedFlipped,
}

/// The input gradient of a stride-1 convolution with `weight` [Cout, Cin, kh, kw] and padding
/// `pad`, given dy [B, Cout, Ho, Wo]: the convolution of dy with the transposed, flipped weight
/// at padding (kh - 1 - top, kh - 1 - bottom, kw - 1 - left, kw - 1 - right), each at most
/// kernel - 1. Returns dx [B, Cin, Ho + kh - 1 - top - bottom, ...].
pub(crate) fn conv2d_input_grad(dy: &Tensor, weight: &Tensor, pad: Padding) -> Result<Tensor> {
    let [_, _, kh, kw] = nchw("conv2d_input_grad", "weight", weight)?;
    let flipped = |p: usize, k: usize| {
        (k - 1).checked_sub(p).ok_or_else(|| {
            shape_err(
                "conv2d_input_grad",
                format!("padding {pad:?} exceeds the {kh}x{kw} kernel"),
            )
        })
    };
    let pad = Padding {
        top: flipped(pad.top, kh)?,
        bottom: flipped(pad.bottom, kh)?,
        left: flipped(pad.left, kw)?,
        right: flipped(pad.right, kw)?,
    };
    let layout = WeightLayout::TransposedFlipped;
    conv2d_core(dy, weight, layout, None, 1, pad, Path::Auto)
}

/// The convolution of `conv2d_on`, its weight read as `layout` says.
fn conv2d_core(
    x: &Tensor,
    weight: &Tensor,
    layout: WeightLayout,
    bias: Option<&Tensor>,
    stride: usize,
    pad: Padding,
    path: Path,
) -> Result<Tensor> {
    const OP: &str = "conv2d";
    let [b, cin, h, w] = nchw(OP, "x", x)?;
    // The weight may be 16-bit (inference): conv_pack_w widens it.
    if weight.dtype() != DType::F16 {
        weight.expect_dtype(OP, "weight", DType::F32)?;
    }
    let [wo_ch, wi_ch, kh, kw] = dims4(OP, "weight", weight)?;
    let (cout, wcin) = match layout {
        WeightLayout::Forward => (wo_ch, wi_ch),
        WeightLayout::TransposedFlipped => (wi_ch, wo_ch),
    };
    if wcin != cin {
        return Err(shape_err(
            OP,
            format!(
                "weight {:?} needs {cin} input channels to match x {:?}",
                weight.shape(),
                x.shape()
            ),
        ));
    }
    if stride == 0 {
        return Err(shape_err(OP, "stride must be at least 1".into()));
    }
    let (hp, wp) = (h + pad.top + pad.bottom, w + pad.left + pad.right);
    if hp < kh || wp < kw {
        return Err(shape_err(
            OP,
            format!(
                "kernel {kh}x{kw} larger than the padded input {hp}x{wp} (x {:?}, {pad:?})",
                x.shape()
            ),
        ));
    }
    let (ho, wo) = ((hp - kh) / stride + 1, (wp - kw) / stride + 1);
    let gpu = x.gpu();
    let bias = match bias {
        Some(bt) => {
            bt.expect_dtype(OP, "bias", DType::F32)?;
            if bt.numel() != cout {
                return Err(shape_err(
                    OP,
                    format!("bias {:?} must have {cout} elements", bt.shape()),
                ));
            }
            bt.clone()
        }
        None => Tensor::zeros(gpu, &[cout])?,
    };
    if winograd::applies(gpu, path, [kh, kw], stride, [cin, cout]) {
        let geometry = Params {
            cout: cout as u32,
            ..Params::convolution(b, cin, [h, w], [kh, kw], stride, pad)
        };
        return winograd::conv(x, weight, layout, &bias, &geometry, path);
    }
    let y = Tensor::empty(gpu, &[b, cout, ho, wo], DType::F32)?;
    let (tc, px) = (define(gpu, path, "TC"), define(gpu, path, "PX"));
    let tiles_c = cout.div_ceil(tc);
    let cq = cin.div_ceil(4);
    let mut p = Params {
        cout: cout as u32,
        tiles_c: tiles_c as u32,
        tiles_p: (ho * wo).div_ceil(px) as u32,
        w_flip: u32::from(layout == WeightLayout::TransposedFlipped),
        ..Params::convolution(b, cin, [h, w], [kh, kw], stride, pad)
    };
    let xp = pack_input_with(x, &mut p, path)?;
    let wpk = Tensor::empty(gpu, &[kh * kw * cq, tiles_c * tc, 4], DType::F32)?;
    let total = wpk.numel() / 4;
    p.total = total as u32;
    let tensors = [&wpk, weight];
    let pack = if weight.dtype() == DType::F16 {
        &CONV_PACK_W16
    } else {
        &CONV_PACK_W
    };
    gpu.dispatch_items(pack, defines(gpu, path), &tensors, &p, total)?;
    let max = gpu.limits().max_compute_workgroups_per_dimension as usize;
    let (gx, gy) = (
        (p.tiles_p as usize).div_ceil(define(gpu, path, "CONV_WG")),
        b * tiles_c,
    );
    if gx > max || gy > max {
        return Err(Error::Limit {
            what: OP.to_string(),
            requested: gx.max(gy) as u64,
            limit_name: "max_compute_workgroups_per_dimension",
            limit: max as u64,
        });
    }
    let (kernel, defines) = conv_form(gpu, path);
    gpu.dispatch(
        kernel,
        defines,
        &[&y, &xp, &wpk, &bias],
        &p,
        [gx as u32, gy as u32, 1],
    )?;
    Ok(y)
}

/// Depth-to-space, DCR order: x [B, s²C, H, W] -> y [B, C, sH, sW] for block s, with
/// `y[b, c, s*i + b1, s*j + b2] = x[b, (s * b1 + b2) * C + c, i, j]` (channel splits as
/// (b1, b2, c)).
pub fn depth_to_space(x: &Tensor, block: usize) -> Result<Tensor> {
    const OP: &str = "depth_to_space";
    let [b, cs, h, w] = nchw(OP, "x", x)?;
    let s2 = block * block;
    if block == 0 || cs % s2 != 0 {
        return Err(shape_err(
            OP,
            format!(
                "x {:?} needs channels divisible by block² (block {block})",
                x.shape()
            ),
        ));
    }
    let c = cs / s2;
    let y = Tensor::empty(x.gpu(), &[b, c, block * h, block * w], DType::F32)?;
    let n = y.numel();
    let p = Params::blocks(b, c, [h, w], block);
    let defines = defines(x.gpu(), Path::Auto);
    x.gpu()
        .dispatch_items(&DEPTH_TO_SPACE, defines, &[&y, x], &p, n)?;
    Ok(y)
}

impl Params {
    /// The geometry of depth_to_space and space_to_depth: `n` spatial images [c, block * h,
    /// block * w] paired with depth images [block² c, h, w], one thread per element.
    fn blocks(n: usize, c: usize, [h, w]: [usize; 2], block: usize) -> Params {
        let u = |v: usize| v as u32;
        Params {
            n: u(n),
            cin: u(c),
            h: u(h),
            w: u(w),
            stride: u(block),
            total: u(n * c * block * block * h * w),
            ..Default::default()
        }
    }

    /// The geometry of a convolution of `n` images [cin, h, w] by `[kh, kw]` taps at `stride`
    /// with zero padding `pad` (validated by the caller): the output size, the padded size and
    /// the input channels in vec4s included.
    fn convolution(
        n: usize,
        cin: usize,
        [h, w]: [usize; 2],
        [kh, kw]: [usize; 2],
        stride: usize,
        pad: Padding,
    ) -> Params {
        let (hp, wp) = (h + pad.top + pad.bottom, w + pad.left + pad.right);
        let u = |v: usize| v as u32;
        Params {
            n: u(n),
            cin: u(cin),
            h: u(h),
            w: u(w),
            ho: u((hp - kh) / stride + 1),
            wo: u((wp - kw) / stride + 1),
            kh: u(kh),
            kw: u(kw),
            stride: u(stride),
            pad_t: u(pad.top),
            pad_l: u(pad.left),
            hp: u(hp),
            wp: u(wp),
            cq: u(cin.div_ceil(4)),
            ..Default::default()
        }
    }
}

/// Every kernel this family declares, for the binding contract test.
#[cfg(test)]
pub(crate) const KERNELS: &[&[crate::gpu::Kernel]] = &[
    backward::CONV_GRAD_KERNELS,
    CONV_KERNELS,
    CONV_SG_KERNELS,
    CONV_W16_KERNELS,
    winograd::WINOGRAD_KERNELS,
    winograd::WINOGRAD_W16_KERNELS,
];
