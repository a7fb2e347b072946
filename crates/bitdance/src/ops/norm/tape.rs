//! The norm family on the autograd tape: RMSNorm, LayerNorm, row statistics, softmax.

use crate::autograd::{Tape, Var};
use crate::ops;
use crate::{Result, Tensor};

impl Tape {
    /// RMSNorm over the last dim with an optional weight [D].
    pub fn rms_norm(&self, x: Var, weight: Option<Var>, eps: f32) -> Result<Var> {
        let xv = self.value(x);
        let wv = weight.map(|w| self.value(w));
        let (y, rstd) = ops::rms_norm(&xv, wv.as_ref(), eps)?;
        let mut inputs = vec![x];
        inputs.extend(weight);
        Ok(self.push(
            y,
            &inputs,
            Box::new(move |dy, _| {
                let (dx, dw) = ops::rms_norm_backward(&xv, wv.as_ref(), &rstd, dy)?;
                let mut g = vec![Some(dx)];
                if dw.is_some() {
                    g.push(dw);
                }
                Ok(g)
            }),
        ))
    }

    /// LayerNorm over the last dim, affine when `affine` = Some((weight, bias)).
    pub fn layer_norm(&self, x: Var, affine: Option<(Var, Var)>, eps: f32) -> Result<Var> {
        let xv = self.value(x);
        let wv = affine.map(|(w, _)| self.value(w));
        let bv = affine.map(|(_, b)| self.value(b));
        let (y, mean, rstd) = ops::layer_norm(&xv, wv.as_ref(), bv.as_ref(), eps)?;
        let mut inputs = vec![x];
        if let Some((w, b)) = affine {
            inputs.extend([w, b]);
        }
        Ok(self.push(
            y,
            &inputs,
            Box::new(move |dy, _| {
                let (dx, dw, db) = ops::layer_norm_backward(&xv, wv.as_ref(), &mean, &rstd, dy)?;
                let mut g = vec![Some(dx)];
                if dw.is_some() {
                    g.extend([dw, db]);
                }
                Ok(g)
            }),
        ))
    }

    /// Per-row mean and sqrt(unbiased variance + eps) of x [.., D] -> ([rows], [rows]).
    pub fn row_stats(&self, x: Var, eps: f32) -> Result<(Var, Var)> {
        let xv = self.value(x);
        let (mean, std) = ops::row_stats(&xv, eps)?;
        let rows = mean.numel();
        let record = |out: &Tensor, of_mean: bool| {
            let (xv, mean, std) = (xv.clone(), mean.clone(), std.clone());
            self.push(
                out.clone(),
                &[x],
                Box::new(move |dy, _| {
                    let zeros = Tensor::zeros(xv.gpu(), &[rows])?;
                    let (dm, ds) = if of_mean { (dy, &zeros) } else { (&zeros, dy) };
                    Ok(vec![Some(ops::row_stats_backward(
                        &xv, &mean, &std, dm, ds,
                    )?)])
                }),
            )
        };
        Ok((record(&mean, true), record(&std, false)))
    }

    /// Softmax over the last dim.
    pub fn softmax(&self, x: Var) -> Result<Var> {
        let y = ops::softmax(&self.value(x))?;
        let yv = y.clone();
        Ok(self.push(
            y,
            &[x],
            Box::new(move |dy, _| Ok(vec![Some(ops::softmax_backward(&yv, dy)?)])),
        ))
    }
}
