//! Backward ops of the autoencoder's convolution family, over `shaders/conv_grad.wgsl` and the
//! matmul kernels: conv2d's input, weight and bias gradients (im2col + matmul + col2im),
//! and depth_to_space's inverse.

use super::{nchw, Params, CONV_GRAD};
use crate::gpu::Kernel;
use crate::ops::{matmul, merge_heads, shape_err, Padding};
use crate::{DType, Result, Tensor};

/// Define sets of `shaders/conv_grad.wgsl` (it has no defines).
pub const CONV_GRAD_VARIANTS: &[&[(&str, u32)]] = &[&[]];

kernels! { CONV_GRAD_KERNELS = CONV_GRAD, Params;
    IM2COL = "im2col", [rw, r];
    IM2COL_PACKED = "im2col_packed", [rw, r];
    COL2IM = "col2im", [rw, r];
    SPACE_TO_DEPTH = "space_to_depth", [rw, r];
}

fn elementwise(kernel: &Kernel, out: &Tensor, inputs: &[&Tensor], p: Params) -> Result<()> {
    let mut tensors = vec![out];
    tensors.extend_from_slice(inputs);
    let items = p.total as usize;
    out.gpu().dispatch_items(kernel, &[], &tensors, &p, items)
}

/// Gradients of `conv2d_padded(x, weight, bias, stride, pad)` given dy [B, Cout, Ho, Wo]:
/// (dx [B, Cin, H, W], dweight [Cout, Cin, kh, kw], dbias [Cout]). Batch entries are processed
/// in groups whose patch matrix fits half a storage binding.
pub fn conv2d_backward(
    x: &Tensor,
    weight: &Tensor,
    dy: &Tensor,
    stride: usize,
    pad: Padding,
) -> Result<(Tensor, Tensor, Tensor)> {
    const OP: &str = "conv2d_backward";
    let [b, cin, h, w] = nchw(OP, "x", x)?;
    let [cout, wcin, kh, kw] = nchw(OP, "weight", weight)?;
    let [db_, dc, ho, wo] = nchw(OP, "dy", dy)?;
    let (hp, wp) = (h + pad.top + pad.bottom, w + pad.left + pad.right);
    if wcin != cin
        || db_ != b
        || dc != cout
        || stride == 0
        || hp < kh
        || wp < kw
        || ho != (hp - kh) / stride + 1
        || wo != (wp - kw) / stride + 1
    {
        return Err(shape_err(
            OP,
            format!(
                "x {:?}, weight {:?}, dy {:?}, stride {stride}, {pad:?} do not form a convolution",
                x.shape(),
                weight.shape(),
                dy.shape()
            ),
        ));
    }
    let gpu = x.gpu();
    let (k2, pix, cq) = (kh * kw, ho * wo, cin.div_ceil(4));
    let k = cin * k2;
    // At stride 1 the input gradient is a convolution of dy (the fast forward kernels) and the
    // patches come from the convolution's packed input, (tap, channel vec4) columns copied as
    // vec4s; otherwise (channel, tap) columns, and the patches' gradients are gathered back
    // from a matmul (col2im).
    let as_convolution =
        stride == 1 && pad.top < kh && pad.bottom < kh && pad.left < kw && pad.right < kw;
    let k_cols = if as_convolution { k2 * 4 * cq } else { k };
    let limit = gpu.limits().max_storage_buffer_binding_size as usize / 2;
    let per_group = (limit / (4 * pix * k_cols).max(1)).clamp(1, b);
    let mut dw: Option<Tensor> = None;
    let mut dbias: Option<Tensor> = None;
    let mut dx_parts = Vec::new();
    if as_convolution {
        dx_parts.push(super::conv2d_input_grad(dy, weight, pad)?);
    }
    for start in (0..b).step_by(per_group) {
        let n = per_group.min(b - start);
        let (xs, dys) = if n == b {
            (x.clone(), dy.clone())
        } else {
            (
                crate::ops::slice(x, 0, start, n)?,
                crate::ops::slice(dy, 0, start, n)?,
            )
        };
        let p = Params::convolution(n, cin, [h, w], [kh, kw], stride, pad);
        let cols = Tensor::empty(gpu, &[n * pix, k_cols], DType::F32)?;
        if as_convolution {
            let xp = super::pack_input(&xs, pad)?;
            let packed = Params {
                total: (n * pix * k2) as u32,
                ..p
            };
            elementwise(&IM2COL_PACKED, &cols, &[&xp], packed)?;
        } else {
            let scalar = Params {
                total: (n * pix * cin) as u32,
                ..p
            };
            elementwise(&IM2COL, &cols, &[&xs], scalar)?;
        }
        // dy as [Cout, n * pix] (channel rows) for the weight gradient.
        let dy_chan = merge_heads(&dys.reshape(&[1, n, cout, pix])?)?.reshape(&[cout, n * pix])?;
        let mut part_w = matmul(&dy_chan, &cols, None, false, false)?;
        if as_convolution {
            // [Cout, tap, 4 cq] -> [Cout, Cin, tap], dropping the padding channels.
            part_w = merge_heads(&part_w.reshape(&[cout, k2, 4 * cq, 1])?)?;
            if 4 * cq != cin {
                part_w = crate::ops::slice(&part_w, 1, 0, cin)?;
            }
            part_w = part_w.reshape(&[cout, k])?;
        }
        // The bias gradient: the channel rows summed.
        let part_b = crate::ops::sum_last(&dy_chan)?;
        dw = Some(match dw {
            None => part_w,
            Some(acc) => crate::ops::add(&acc, &part_w)?,
        });
        dbias = Some(match dbias {
            None => part_b,
            Some(acc) => crate::ops::add(&acc, &part_b)?,
        });
        if as_convolution {
            continue;
        }
        // dy as [n * pix, Cout] (pixel rows): the patches' gradients, gathered back by col2im.
        let dy_rows = merge_heads(&dys.reshape(&[n, cout, pix, 1])?)?.reshape(&[n * pix, cout])?;
        let dcols = matmul(&dy_rows, &weight.reshape(&[cout, k])?, None, false, false)?;
        let dx = Tensor::empty(gpu, &[n, cin, h, w], DType::F32)?;
        elementwise(
            &COL2IM,
            &dx,
            &[&dcols],
            Params {
                total: (n * cin * h * w) as u32,
                ..p
            },
        )?;
        dx_parts.push(dx);
    }
    let dx = if dx_parts.len() == 1 {
        dx_parts.pop().unwrap_or_else(|| unreachable!())
    } else {
        let refs: Vec<&Tensor> = dx_parts.iter().collect();
        crate::ops::concat(&refs, 0)?
    };
    let dw = dw
        .ok_or_else(|| shape_err(OP, "empty batch".into()))?
        .reshape(&[cout, cin, kh, kw])?;
    let dbias = dbias
        .ok_or_else(|| shape_err(OP, "empty batch".into()))?
        .reshape(&[cout])?;
    Ok((dx, dw, dbias))
}

/// The inverse of `depth_to_space` (and its gradient): y [B, C, sH, sW] -> x [B, s²C, H, W].
pub fn space_to_depth(y: &Tensor, block: usize) -> Result<Tensor> {
    const OP: &str = "space_to_depth";
    let [b, c, hs, ws] = nchw(OP, "y", y)?;
    if block == 0 || hs % block != 0 || ws % block != 0 {
        return Err(shape_err(
            OP,
            format!(
                "y {:?} is not divisible into {block}x{block} blocks",
                y.shape()
            ),
        ));
    }
    let (h, w) = (hs / block, ws / block);
    let x = Tensor::empty(y.gpu(), &[b, block * block * c, h, w], DType::F32)?;
    let p = Params::blocks(b, c, [h, w], block);
    elementwise(&SPACE_TO_DEPTH, &x, &[y], p)?;
    Ok(x)
}
