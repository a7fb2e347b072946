//! Gradient checkpointing: a block of ops recorded as one node that keeps only its output; its
//! backward runs the block again and passes the gradients to the values the block read.

use std::collections::HashMap;
use std::rc::Rc;

use super::{Adapter, Node, Tape, Var};
use crate::{Result, Tensor};

/// A block of ops over values already on the tape (read through the `Var`s it captured).
pub type Block = Rc<dyn Fn(&Tape) -> Result<Var>>;

/// What a block may read of the tape it was recorded on: every value (shared, with whether it
/// requires a gradient) and the weights' adapters.
struct Base {
    values: Vec<(Tensor, bool)>,
    adapters: HashMap<usize, Adapter>,
}

impl Tape {
    /// A tape on which `checkpoint` keeps no block activations: each block's backward
    /// recomputes them (the same values and gradients, less memory, one more forward).
    pub fn recomputing() -> Self {
        Self {
            recompute: true,
            ..Self::default()
        }
    }

    /// Whether `checkpoint` recomputes its blocks.
    pub fn is_recomputing(&self) -> bool {
        self.recompute
    }

    /// Runs `block` on this tape. On a recomputing tape it runs on a scratch copy instead and
    /// only its output is recorded, as one node whose inputs are the tape's values the block
    /// read and whose backward runs the block again on a scratch copy.
    pub fn checkpoint(&self, block: Block) -> Result<Var> {
        if !self.recompute {
            return block(self);
        }
        let base = Base {
            values: self
                .nodes
                .borrow()
                .iter()
                .map(|n| (n.value.clone(), n.requires_grad))
                .collect(),
            adapters: self.adapters.borrow().clone(),
        };
        let scratch = Tape::scratch(&base);
        let out = block(&scratch)?;
        let value = scratch.value(out);
        let read = scratch.read_below(base.values.len());
        drop(scratch);
        let inputs = read.clone();
        let backward = move |dy: &Tensor, needs: &[bool]| -> Result<Vec<Option<Tensor>>> {
            let scratch = Tape::scratch(&base);
            let out = block(&scratch)?;
            let mut grads = scratch.backward_with(out, dy.clone())?;
            Ok(read
                .iter()
                .zip(needs)
                .map(|(v, need)| if *need { grads.take(*v) } else { None })
                .collect())
        };
        Ok(self.push(value, &inputs, Box::new(backward)))
    }

    /// A plain tape whose first values are `base`'s as leaves, with its adapters, so the `Var`s
    /// of the tape `base` was taken from mean the same values on it.
    fn scratch(base: &Base) -> Tape {
        let tape = Tape::new();
        tape.nodes
            .borrow_mut()
            .extend(base.values.iter().map(|(value, requires_grad)| Node {
                value: value.clone(),
                inputs: Vec::new(),
                backward: None,
                requires_grad: *requires_grad,
            }));
        *tape.adapters.borrow_mut() = base.adapters.clone();
        tape
    }

    /// The values below `first` that the nodes from `first` on read, in order.
    fn read_below(&self, first: usize) -> Vec<Var> {
        let mut read: Vec<Var> = self.nodes.borrow()[first..]
            .iter()
            .flat_map(|n| n.inputs.iter().copied())
            .filter(|v| v.0 < first)
            .collect();
        read.sort_by_key(|v| v.0);
        read.dedup();
        read
    }
}
