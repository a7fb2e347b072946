//! The GroupNorm family on the autograd tape: GroupNorm (a LayerNorm over each (batch, group)
//! run, then the per-channel affine map) and the per-row and per-channel affine maps.

use crate::autograd::{Tape, Var};
use crate::ops;
use crate::Result;

impl Tape {
    /// `x * s[r] + t[r]` over the R equal rows of x (s, t with R elements).
    pub fn row_affine(&self, x: Var, s: Var, t: Var) -> Result<Var> {
        let (xv, sv) = (self.value(x), self.value(s));
        let y = ops::row_affine(&xv, &sv, &self.value(t))?;
        let (s_shape, t_shape) = (self.shape(s), self.shape(t));
        Ok(self.push(
            y,
            &[x, s, t],
            Box::new(move |dy, _| {
                let (dx, ds, dt) = ops::row_affine_backward(&xv, &sv, dy)?;
                Ok(vec![
                    Some(dx),
                    Some(ds.reshape(&s_shape)?),
                    Some(dt.reshape(&t_shape)?),
                ])
            }),
        ))
    }

    /// GroupNorm (PyTorch `nn.GroupNorm`, biased variance) of x [B, C, H, W] over `groups`,
    /// with the per-channel affine (weight, bias [C]) when given.
    pub fn group_norm(
        &self,
        x: Var,
        groups: usize,
        affine: Option<(Var, Var)>,
        eps: f32,
    ) -> Result<Var> {
        let shape = self.shape(x);
        let [b, c, h, w] = shape[..] else {
            return Err(crate::Error::Shape {
                op: "group_norm",
                detail: format!("x {shape:?} must be [B, C, H, W]"),
            });
        };
        if groups == 0 || c % groups != 0 {
            return Err(crate::Error::Shape {
                op: "group_norm",
                detail: format!("{groups} groups do not divide the channels of x {shape:?}"),
            });
        }
        let rows = self.reshape(x, &[b * groups, c / groups * h * w])?;
        let y = self.layer_norm(rows, None, eps)?;
        let y = self.reshape(y, &shape)?;
        let Some((weight, bias)) = affine else {
            return Ok(y);
        };
        self.channel_affine(y, weight, bias)
    }

    /// `x[b, c, ..] * weight[c] + bias[c]` for x [B, C, ..] (the affine part of GroupNorm).
    pub fn channel_affine(&self, x: Var, weight: Var, bias: Var) -> Result<Var> {
        let (xv, wv) = (self.value(x), self.value(weight));
        let y = ops::channel_affine(&xv, &wv, &self.value(bias))?;
        let (w_shape, b_shape) = (self.shape(weight), self.shape(bias));
        Ok(self.push(
            y,
            &[x, weight, bias],
            Box::new(move |dy, _| {
                let (dx, dw, db) = ops::channel_affine_backward(&xv, &wv, dy)?;
                Ok(vec![
                    Some(dx),
                    Some(dw.reshape(&w_shape)?),
                    Some(db.reshape(&b_shape)?),
                ])
            }),
        ))
    }
}
