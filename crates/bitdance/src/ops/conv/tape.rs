//! The convolution family on the autograd tape: convolution and depth-to-space.

use crate::autograd::{Tape, Var};
use crate::ops::{self, Padding};
use crate::Result;

impl Tape {
    /// 2D convolution (PyTorch `nn.Conv2d`): x [B, Cin, H, W], w [Cout, Cin, kh, kw], bias
    /// [Cout], symmetric zero `padding` -> [B, Cout, Ho, Wo].
    pub fn conv2d(
        &self,
        x: Var,
        w: Var,
        bias: Option<Var>,
        stride: usize,
        padding: usize,
    ) -> Result<Var> {
        let (xv, wv) = (self.value(x), self.value(w));
        let bv = bias.map(|b| self.value(b));
        let pad = Padding::same(padding);
        let y = ops::conv2d_padded(&xv, &wv, bv.as_ref(), stride, pad)?;
        let mut inputs = vec![x, w];
        inputs.extend(bias);
        let has_bias = bias.is_some();
        Ok(self.push(
            y,
            &inputs,
            Box::new(move |dy, _| {
                let (dx, dw, db) = ops::conv2d_backward(&xv, &wv, dy, stride, pad)?;
                let mut g = vec![Some(dx), Some(dw)];
                if has_bias {
                    g.push(Some(db));
                }
                Ok(g)
            }),
        ))
    }

    /// Depth-to-space (DCR): x [B, s²C, H, W] -> [B, C, sH, sW].
    pub fn depth_to_space(&self, x: Var, block: usize) -> Result<Var> {
        let y = ops::depth_to_space(&self.value(x), block)?;
        Ok(self.push(
            y,
            &[x],
            Box::new(move |dy, _| Ok(vec![Some(ops::space_to_depth(dy, block)?)])),
        ))
    }
}
