//! Low-rank adapters (LoRA): a frozen weight W [N, K] with trainable A [r, K] and B [N, r];
//! every `linear` through W computes `x Wᵀ + scale · (x Aᵀ) Bᵀ`, so only A and B (and x)
//! receive gradients and W's full-size gradient is never formed.

use super::{Tape, Var};
use crate::Result;

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
        let y = self.matmul(x, w, bias, false, true)?;
        let Some(adapter) = self.adapter(w) else {
            return Ok(y);
        };
        let down = self.matmul(x, adapter.a, None, false, true)?;
        let up = self.matmul(down, adapter.b, None, false, true)?;
        self.add(y, self.scale(up, adapter.scale)?)
    }
}
