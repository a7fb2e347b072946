//! f64 references of the conv family: NCHW 2D convolution, DCR depth-to-space.

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

/// A checked convolution with a square kernel: (B, Cin, H, W, Cout, k, stride, padding (top,
/// bottom, left, right)).
pub type ConvCase = (usize, usize, usize, usize, usize, usize, usize, [usize; 4]);

impl From<ConvCase> for ConvDims {
    fn from((b, cin, h, w, cout, k, stride, pad): ConvCase) -> Self {
        Self {
            b,
            cin,
            h,
            w,
            cout,
            kh: k,
            kw: k,
            stride,
            pad,
        }
    }
}

impl ConvDims {
    /// The padding as the ops take it.
    pub fn padding(&self) -> crate::ops::Padding {
        let [top, bottom, left, right] = self.pad;
        crate::ops::Padding {
            top,
            bottom,
            left,
            right,
        }
    }

    /// `[B,Cin,H,W]->Cout khxkw sS pad[..]`, naming a checked case.
    pub fn label(&self) -> String {
        let d = self;
        format!(
            "[{},{},{},{}]->{} {}x{} s{} pad{:?}",
            d.b, d.cin, d.h, d.w, d.cout, d.kh, d.kw, d.stride, d.pad
        )
    }

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
