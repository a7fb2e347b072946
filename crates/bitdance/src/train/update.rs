//! One optimizer update from a tape: backward of the loss to the parameters it used, then AdamW.

use std::collections::BTreeMap;

use crate::autograd::{Tape, Var};
use crate::optim::{AdamW, Ema, ParamGrad};
use crate::{Error, Result, Tensor};

/// Backpropagates `loss` to the parameters `used` (name -> their tape leaf, which shares the
/// parameter's storage, so the update lands in its `ParamStore`) and applies one AdamW step at
/// learning rate `lr`, decaying the weights for which `decay(name, shape)` holds, and updating
/// `ema` in the same pass. Every used parameter must
/// receive a gradient. Returns the [2] GPU tensor [clip factor, global grad norm] of
/// `AdamW::step`.
pub fn adamw_update(
    optimizer: &mut AdamW,
    tape: &Tape,
    loss: Var,
    used: &BTreeMap<String, Var>,
    lr: f32,
    decay: impl Fn(&str, &[usize]) -> bool,
    ema: Option<&mut Ema>,
) -> Result<Tensor> {
    let mut grads = tape.backward(loss)?;
    let mut owned = Vec::with_capacity(used.len());
    for (name, v) in used {
        let grad = grads.take(*v).ok_or_else(|| {
            Error::Invalid(format!("training: parameter '{name}' received no gradient"))
        })?;
        owned.push((name.as_str(), tape.value(*v), grad));
    }
    let pg: Vec<ParamGrad> = owned
        .iter()
        .map(|(name, value, grad)| ParamGrad {
            name,
            value,
            grad,
            decay: decay(name, value.shape()),
        })
        .collect();
    optimizer.step(&pg, lr, ema)
}
