//! f64 references of the conv family: NCHW 2D convolution, GroupNorm, DCR depth-to-space.

/// Shape and hyper-parameters of one 2D convolution.
#[derive(Clone, Copy, Debug)]
pub struct ConvDims {
    /// Batch.
    pub b: usize,
    /// Input channels.
    pub cin: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub cout: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Stride (both axes).
    pub stride: usize,
    /// Zero padding (top, bottom, left, right).
    pub pad: [usize; 4],
}

impl ConvDims {
    /// Output (height, width).
    pub fn out_hw(&self) -> (usize, usize) {
        let [t, bo, l, r] = self.pad;
        (
            (self.h + t + bo - self.kh) / self.stride + 1,
            (self.w + l + r - self.kw) / self.stride + 1,
        )
    }
}

/// Convolution of x [B, Cin, H, W] with weight [Cout, Cin, kh, kw] (+ bias [Cout]) ->
/// [B, Cout, Ho, Wo], zero padding.
pub fn conv2d(x: &[f64], weight: &[f64], bias: Option<&[f64]>, d: ConvDims) -> Vec<f64> {
    let (ho, wo) = d.out_hw();
    let mut y = vec![0.0; d.b * d.cout * ho * wo];
    for b in 0..d.b {
        for co in 0..d.cout {
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut s = bias.map_or(0.0, |bv| bv[co]);
                    for ci in 0..d.cin {
                        for ky in 0..d.kh {
                            let iy = (oy * d.stride + ky) as isize - d.pad[0] as isize;
                            if iy < 0 || iy >= d.h as isize {
                                continue;
                            }
                            for kx in 0..d.kw {
                                let ix = (ox * d.stride + kx) as isize - d.pad[2] as isize;
                                if ix < 0 || ix >= d.w as isize {
                                    continue;
                                }
                                let xi = ((b * d.cin + ci) * d.h + iy as usize) * d.w + ix as usize;
                                let wi = ((co * d.cin + ci) * d.kh + ky) * d.kw + kx;
                                s += x[xi] * weight[wi];
                            }
                        }
                    }
                    y[((b * d.cout + co) * ho + oy) * wo + ox] = s;
                }
            }
        }
    }
    y
}

/// GroupNorm of x [B, C, H, W] (`hw` = H * W) over `groups` channel groups, biased variance;
/// weight ones and bias zeros by default.
pub fn group_norm(
    x: &[f64],
    c: usize,
    hw: usize,
    groups: usize,
    weight: Option<&[f64]>,
    bias: Option<&[f64]>,
    eps: f64,
) -> Vec<f64> {
    let len = c / groups * hw;
    let mut y = Vec::with_capacity(x.len());
    for (row, g) in x.chunks(len).enumerate() {
        let mean = g.iter().sum::<f64>() / len as f64;
        let var = g.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / len as f64;
        let r = 1.0 / (var + eps).sqrt();
        let c0 = (row % groups) * (c / groups);
        y.extend(g.iter().enumerate().map(|(i, v)| {
            let ch = c0 + i / hw;
            (v - mean) * r * weight.map_or(1.0, |w| w[ch]) + bias.map_or(0.0, |b| b[ch])
        }));
    }
    y
}

/// AdaptiveGroupNorm of x [B, C, H·W]: GroupNorm without affine, then `scale[b, c]` and
/// `shift[b, c]` ([B, C] each) per image and channel.
pub fn adaptive_group_norm(
    x: &[f64],
    c: usize,
    hw: usize,
    groups: usize,
    scale: &[f64],
    shift: &[f64],
    eps: f64,
) -> Vec<f64> {
    let y = group_norm(x, c, hw, groups, None, None, eps);
    y.iter()
        .enumerate()
        .map(|(i, v)| v * scale[i / hw] + shift[i / hw])
        .collect()
}

/// DCR depth-to-space of x [B, s²C, H, W] -> [B, C, sH, sW] (channel index splits as (b1, b2, c)).
pub fn depth_to_space(x: &[f64], b: usize, c: usize, h: usize, w: usize, s: usize) -> Vec<f64> {
    let mut y = vec![0.0; x.len()];
    for bi in 0..b {
        for b1 in 0..s {
            for b2 in 0..s {
                for ch in 0..c {
                    let ic = (b1 * s + b2) * c + ch;
                    for i in 0..h {
                        for j in 0..w {
                            let src = ((bi * s * s * c + ic) * h + i) * w + j;
                            let dst = ((bi * c + ch) * s * h + s * i + b1) * s * w + s * j + b2;
                            y[dst] = x[src];
                        }
                    }
                }
            }
        }
    }
    y
}
