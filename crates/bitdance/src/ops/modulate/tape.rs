//! adaLN modulation and gated residuals on the autograd tape.

use crate::autograd::{wrap, Tape, Var};
use crate::ops;
use crate::Result;

impl Tape {
    /// adaLN `x * (1 + scale) + shift`: x [G, T, C], shift and scale [G, C].
    pub fn modulate(&self, x: Var, shift: Var, scale: Var) -> Result<Var> {
        let (xv, sv) = (self.value(x), self.value(scale));
        let y = ops::modulate(&xv, &self.value(shift), &sv)?;
        Ok(self.push(
            y,
            &[x, shift, scale],
            Box::new(move |dy, _| {
                let (dx, dshift, dscale) = ops::modulate_backward(&xv, &sv, dy)?;
                Ok(wrap(vec![dx, dshift, dscale]))
            }),
        ))
    }

    /// Gated residual `x + gate * h`: x and h [G, T, C], gate [G, C].
    pub fn gated_residual(&self, x: Var, gate: Var, h: Var) -> Result<Var> {
        let (gv, hv) = (self.value(gate), self.value(h));
        let y = ops::gated_residual(&self.value(x), &gv, &hv)?;
        Ok(self.push(
            y,
            &[x, gate, h],
            Box::new(move |dy, _| {
                let (dx, dgate, dh) = ops::gated_residual_backward(&gv, &hv, dy)?;
                Ok(wrap(vec![dx, dgate, dh]))
            }),
        ))
    }
}
