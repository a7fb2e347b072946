//! The lookup-free quantizer on the autograd tape: the sign quantizer's straight-through
//! estimator and the entropy loss.

use crate::autograd::{Tape, Var};
use crate::ops;
use crate::Result;

impl Tape {
    /// Sign quantization with the straight-through estimator: forward ±1, backward identity.
    pub fn sign_ste(&self, x: Var) -> Result<Var> {
        let q = ops::sign_quantize(&self.value(x))?;
        Ok(self.push(q, &[x], Box::new(|dy, _| Ok(vec![Some(dy.clone())]))))
    }

    /// The GFQ group-wise entropy loss of x [.., C] in `groups` groups at `temperature` -> [1].
    pub fn lfq_entropy_loss(&self, x: Var, groups: usize, temperature: f32) -> Result<Var> {
        let xv = self.value(x);
        let (loss, saved) = ops::lfq_entropy_loss(&xv, groups, temperature)?;
        Ok(self.push(
            loss,
            &[x],
            Box::new(move |dy, _| Ok(vec![Some(ops::lfq_entropy_loss_backward(&xv, &saved, dy)?)])),
        ))
    }
}
