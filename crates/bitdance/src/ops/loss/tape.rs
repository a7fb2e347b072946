//! Reductions and losses on the autograd tape.

use crate::autograd::{Tape, Var};
use crate::ops;
use crate::Result;

impl Tape {
    /// mean((a - b)²) -> [1].
    pub fn mse_loss(&self, a: Var, b: Var) -> Result<Var> {
        let (av, bv) = (self.value(a), self.value(b));
        let out = ops::mse_loss(&av, &bv)?;
        Ok(self.push(
            out,
            &[a, b],
            Box::new(move |dy, _| {
                let (da, db) = ops::mse_loss_backward(&av, &bv, dy)?;
                Ok(vec![Some(da), Some(db)])
            }),
        ))
    }

    /// `mean(|a - b|)` -> [1].
    pub fn l1_loss(&self, a: Var, b: Var) -> Result<Var> {
        let (av, bv) = (self.value(a), self.value(b));
        let out = ops::l1_loss(&av, &bv)?;
        Ok(self.push(
            out,
            &[a, b],
            Box::new(move |dy, _| {
                let (da, db) = ops::l1_loss_backward(&av, &bv, dy)?;
                Ok(vec![Some(da), Some(db)])
            }),
        ))
    }

    /// Sum of all elements -> [1].
    pub fn sum_all(&self, x: Var) -> Result<Var> {
        let xv = self.value(x);
        let out = ops::sum_all(&xv)?;
        Ok(self.push(
            out,
            &[x],
            Box::new(move |dy, _| {
                Ok(vec![Some(ops::scale_by_scalar(
                    &crate::Tensor::full(xv.gpu(), xv.shape(), 1.0)?,
                    dy,
                    1.0,
                )?)])
            }),
        ))
    }

    /// Mean of all elements -> [1].
    pub fn mean_all(&self, x: Var) -> Result<Var> {
        let n = self.value(x).numel().max(1) as f32;
        let s = self.sum_all(x)?;
        self.scale(s, 1.0 / n)
    }
}
