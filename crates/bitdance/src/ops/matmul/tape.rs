//! Matmul and linear layers on the autograd tape.

use crate::autograd::{Tape, Var};
use crate::ops;
use crate::{Error, Result};

impl Tape {
    /// `op(a) @ op(b) (+ bias)`; see `ops::matmul` for the shapes. A 2-D `b` is shared by
    /// every batch of `a` and its gradient sums over them.
    pub fn matmul(
        &self,
        a: Var,
        b: Var,
        bias: Option<Var>,
        trans_a: bool,
        trans_b: bool,
    ) -> Result<Var> {
        let (av, bv) = (self.value(a), self.value(b));
        let biasv = bias.map(|v| self.value(v));
        let out = ops::matmul(&av, &bv, biasv.as_ref(), trans_a, trans_b)?;
        let broadcast = bv.shape().len() == 2 && av.shape().len() > 2;
        if broadcast && trans_a {
            return Err(Error::Invalid(
                "matmul: the gradient of a transposed batched A against a shared 2-D B is not supported".into(),
            ));
        }
        let mut inputs = vec![a, b];
        inputs.extend(bias);
        Ok(self.push(
            out,
            &inputs,
            Box::new(move |dy, need| {
                // A shared 2-D weight: fold a's batch into rows so dB sums over it.
                let (a2, dy2) = if broadcast {
                    let k = *av.shape().last().unwrap_or(&1);
                    let n = *dy.shape().last().unwrap_or(&1);
                    (
                        av.reshape(&[av.numel() / k, k])?,
                        dy.reshape(&[dy.numel() / n, n])?,
                    )
                } else {
                    (av.clone(), dy.clone())
                };
                let da = if need[0] {
                    Some(match (trans_a, trans_b) {
                        (false, false) => ops::matmul(dy, &bv, None, false, true)?,
                        (false, true) => ops::matmul(dy, &bv, None, false, false)?,
                        (true, false) => ops::matmul(&bv, dy, None, false, true)?,
                        (true, true) => ops::matmul(&bv, dy, None, true, true)?,
                    })
                } else {
                    None
                };
                let db = if need[1] {
                    Some(match (trans_a, trans_b) {
                        (false, false) => ops::matmul(&a2, &dy2, None, true, false)?,
                        (false, true) => ops::matmul(&dy2, &a2, None, true, false)?,
                        (true, false) => ops::matmul(&a2, &dy2, None, false, false)?,
                        (true, true) => ops::matmul(&dy2, &a2, None, true, true)?,
                    })
                } else {
                    None
                };
                let mut grads = vec![da, db];
                if need.len() > 2 {
                    let n = *dy.shape().last().unwrap_or(&1);
                    grads.push(Some(ops::sum_rows(&dy.reshape(&[dy.numel() / n, n])?)?));
                }
                Ok(grads)
            }),
        ))
    }
}
