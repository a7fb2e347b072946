//! Low-rank adapters (LoRA): a frozen weight W [N, K] with trainable A [r, K] and B [N, r];
//! every `linear` through W computes `x Wᵀ + scale · (x Aᵀ) Bᵀ`, so only A and B (and x)
//! receive gradients and W's full-size gradient is never formed.

use super::{Tape, Var};
use crate::{ops, Result, Tensor};

/// The adapter of one weight: `a` [r, K], `b` [N, r] and `scale` (alpha / r).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adapter {
    /// The down projection A [r, K].
    pub a: Var,
    /// The up projection B [N, r] (zeros at the start, so the adapted model starts as W).
    pub b: Var,
    /// alpha / r.
    pub scale: f32,
}

impl Tape {
    /// Gives the weight `w` [N, K] an adapter: `linear(x, w, ..)` then adds
    /// `scale · (x Aᵀ) Bᵀ`.
    pub fn adapt(&self, w: Var, adapter: Adapter) {
        self.adapters.borrow_mut().insert(w.0, adapter);
    }

    /// The adapter of `w`, if it has one.
    pub fn adapter(&self, w: Var) -> Option<Adapter> {
        self.adapters.borrow().get(&w.0).copied()
    }

    /// `x` [.., K] · `w` [N, K]ᵀ (+ `bias` [N]), plus the low-rank product of `w`'s adapter.
    pub fn linear(&self, x: Var, w: Var, bias: Option<Var>) -> Result<Var> {
        match self.adapter(w) {
            None => self.matmul(x, w, bias, false, true),
            Some(adapter) => self.adapted_linear(x, w, bias, adapter),
        }
    }

    /// The adapted linear as one node: it keeps its output and the rows' down projection
    /// x Aᵀ [.., r] alone (the base output and the low-rank product are not kept), and its
    /// backward forms no gradient of W unless W trains:
    /// dx = dy W + s (dy B) A, dA = s (dy B)ᵀ x, dB = s dyᵀ (x Aᵀ).
    fn adapted_linear(&self, x: Var, w: Var, bias: Option<Var>, adapter: Adapter) -> Result<Var> {
        let (xv, wv) = (self.value(x), self.value(w));
        let (av, bv) = (self.value(adapter.a), self.value(adapter.b));
        let s = adapter.scale;
        let biasv = bias.map(|v| self.value(v));
        let out = ops::matmul(&xv, &wv, biasv.as_ref(), false, true)?;
        let down = ops::matmul(&xv, &av, None, false, true)?;
        ops::axpby_inplace(1.0, &out, s, &ops::matmul(&down, &bv, None, false, true)?)?;
        let mut inputs = vec![x, w, adapter.a, adapter.b];
        inputs.extend(bias);
        Ok(self.push(
            out,
            &inputs,
            Box::new(move |dy, need| {
                // Rows of x, down and dy: [rows, K], [rows, r], [rows, N].
                let rows = |t: &Tensor| -> Result<Tensor> {
                    let last = *t.shape().last().unwrap_or(&1);
                    t.reshape(&[t.numel() / last, last])
                };
                let (x2, down2, dy2) = (rows(&xv)?, rows(&down)?, rows(dy)?);
                let g = ops::matmul(&dy2, &bv, None, false, false)?;
                let dx = if need[0] {
                    let dx = ops::matmul(&dy2, &wv, None, false, false)?;
                    ops::axpby_inplace(1.0, &dx, s, &ops::matmul(&g, &av, None, false, false)?)?;
                    Some(dx.reshape(xv.shape())?)
                } else {
                    None
                };
                let dw = match need[1] {
                    true => Some(ops::matmul(&dy2, &x2, None, true, false)?),
                    false => None,
                };
                let da = match need[2] {
                    true => Some(ops::scale(&ops::matmul(&g, &x2, None, true, false)?, s)?),
                    false => None,
                };
                let db = match need[3] {
                    true => Some(ops::scale(
                        &ops::matmul(&dy2, &down2, None, true, false)?,
                        s,
                    )?),
                    false => None,
                };
                let mut grads = vec![dx, dw, da, db];
                if need.len() > 4 {
                    grads.push(Some(ops::sum_rows(&dy2)?));
                }
                Ok(grads)
            }),
        ))
    }
}
