//! Element-wise ops on the autograd tape.

use crate::autograd::{Tape, Var};
use crate::ops;
use crate::Result;

impl Tape {
    /// `a + b` (same shapes).
    pub fn add(&self, a: Var, b: Var) -> Result<Var> {
        let out = ops::add(&self.value(a), &self.value(b))?;
        Ok(self.push(
            out,
            &[a, b],
            Box::new(|dy, _| Ok(vec![Some(dy.clone()), Some(dy.clone())])),
        ))
    }

    /// `a - b` (same shapes).
    pub fn sub(&self, a: Var, b: Var) -> Result<Var> {
        let out = ops::sub(&self.value(a), &self.value(b))?;
        Ok(self.push(
            out,
            &[a, b],
            Box::new(|dy, need| {
                Ok(vec![
                    Some(dy.clone()),
                    if need[1] {
                        Some(ops::scale(dy, -1.0)?)
                    } else {
                        None
                    },
                ])
            }),
        ))
    }

    /// `a * b` element-wise (same shapes).
    pub fn mul(&self, a: Var, b: Var) -> Result<Var> {
        let (av, bv) = (self.value(a), self.value(b));
        let out = ops::mul(&av, &bv)?;
        Ok(self.push(
            out,
            &[a, b],
            Box::new(move |dy, need| {
                Ok(vec![
                    if need[0] {
                        Some(ops::mul(dy, &bv)?)
                    } else {
                        None
                    },
                    if need[1] {
                        Some(ops::mul(dy, &av)?)
                    } else {
                        None
                    },
                ])
            }),
        ))
    }

    /// `alpha * a`.
    pub fn scale(&self, a: Var, alpha: f32) -> Result<Var> {
        let out = ops::scale(&self.value(a), alpha)?;
        Ok(self.push(
            out,
            &[a],
            Box::new(move |dy, _| Ok(vec![Some(ops::scale(dy, alpha)?)])),
        ))
    }

    /// `x * sigmoid(x)`.
    pub fn silu(&self, x: Var) -> Result<Var> {
        let xv = self.value(x);
        let out = ops::silu(&xv)?;
        Ok(self.push(
            out,
            &[x],
            Box::new(move |dy, _| Ok(vec![Some(ops::silu_backward(&xv, dy)?)])),
        ))
    }

    /// SwiGLU gating on the halves of the last dim: [.., 2h] -> [.., h].
    pub fn swiglu(&self, x: Var) -> Result<Var> {
        let xv = self.value(x);
        let out = ops::swiglu(&xv)?;
        Ok(self.push(
            out,
            &[x],
            Box::new(move |dy, _| Ok(vec![Some(ops::swiglu_backward(&xv, dy)?)])),
        ))
    }

    /// `x[.., j] + bias[j]` with bias [n] broadcast over the rows of x [.., n].
    pub fn add_bias(&self, x: Var, bias: Var) -> Result<Var> {
        let y = ops::add_bias(&self.value(x), &self.value(bias))?;
        Ok(self.push(
            y,
            &[x, bias],
            Box::new(|dy, need| {
                let n = *dy.shape().last().unwrap_or(&1);
                let db = if need[1] {
                    Some(ops::sum_rows(&dy.reshape(&[dy.numel() / n.max(1), n])?)?)
                } else {
                    None
                };
                Ok(vec![Some(dy.clone()), db])
            }),
        ))
    }
}
