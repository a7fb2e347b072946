//! Reverse-mode automatic differentiation: a tape of GPU ops, each with its backward.
//!
//! Build a graph with the op methods of [`Tape`] (each kernel family adds its own, in
//! `ops/<family>/tape.rs`), then call
//! [`Tape::backward`] on a scalar loss (or [`Tape::backward_with`] for any output and
//! cotangent). Every recorded op runs on the GPU; nothing is read back.

use std::cell::RefCell;

use crate::{Error, Result, Tensor};

mod checkpoint;
mod lora;

pub use checkpoint::Block;
pub use lora::Adapter;

/// Gradients of an op's inputs in input order, every one present.
pub(crate) fn wrap(g: Vec<Tensor>) -> Vec<Option<Tensor>> {
    g.into_iter().map(Some).collect()
}

/// A value recorded on a tape (an index; cheap to copy).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Var(usize);

/// Computes the gradients of an op's inputs from its output gradient; `needs[i]` says
/// whether input i wants one (others may be `None`).
pub(crate) type BackwardFn = Box<dyn Fn(&Tensor, &[bool]) -> Result<Vec<Option<Tensor>>>>;

/// Computes the gradients of a multi-output op's inputs from its outputs' gradients (zeros
/// for an output that received none).
pub(crate) type MultiBackwardFn = Box<dyn Fn(&[Tensor], &[bool]) -> Result<Vec<Option<Tensor>>>>;

/// How a node passes its gradient back.
enum Backward {
    /// A single-output op.
    One(BackwardFn),
    /// The hidden node of a multi-output op (its outputs follow it): runs once, after all of
    /// its outputs, on their collected gradients.
    Many(MultiBackwardFn),
    /// Output `index` of the `outputs` of the multi-output op recorded at node `group`: hands
    /// its gradient to it.
    Part {
        group: usize,
        index: usize,
        outputs: usize,
    },
}

struct Node {
    value: Tensor,
    inputs: Vec<Var>,
    backward: Option<Backward>,
    requires_grad: bool,
}

/// The tape: values in creation order with their backward functions.
#[derive(Default)]
pub struct Tape {
    nodes: RefCell<Vec<Node>>,
    /// `checkpoint` keeps no block activations: each block runs again in the backward.
    recompute: bool,
    /// Low-rank adapters of weights, by the weight's index: `linear` adds their product.
    adapters: RefCell<std::collections::HashMap<usize, Adapter>>,
}

/// Gradients from one backward pass, indexed by the `Var`s of the tape.
pub struct Grads {
    grads: Vec<Option<Tensor>>,
}

impl Grads {
    /// The gradient of `v` (same shape as its value), if it requires one and was reached.
    pub fn get(&self, v: Var) -> Option<&Tensor> {
        self.grads.get(v.0).and_then(Option::as_ref)
    }

    /// Takes the gradient of `v` out.
    pub fn take(&mut self, v: Var) -> Option<Tensor> {
        self.grads.get_mut(v.0).and_then(Option::take)
    }
}

impl Tape {
    /// An empty tape.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a leaf value: a trainable parameter when `requires_grad`, else a constant.
    pub fn leaf(&self, value: Tensor, requires_grad: bool) -> Var {
        self.push_node(Node {
            value,
            inputs: Vec::new(),
            backward: None,
            requires_grad,
        })
    }

    /// A leaf that receives a gradient.
    pub fn param(&self, value: Tensor) -> Var {
        self.leaf(value, true)
    }

    /// A leaf that receives no gradient (data, labels, noise).
    pub fn constant(&self, value: Tensor) -> Var {
        self.leaf(value, false)
    }

    /// The value of `v` (shares storage).
    pub fn value(&self, v: Var) -> Tensor {
        self.nodes.borrow()[v.0].value.clone()
    }

    /// The shape of `v`.
    pub fn shape(&self, v: Var) -> Vec<usize> {
        self.nodes.borrow()[v.0].value.shape().to_vec()
    }

    /// Whether `v` depends on a parameter.
    pub fn requires_grad(&self, v: Var) -> bool {
        self.nodes.borrow()[v.0].requires_grad
    }

    /// Number of values recorded.
    pub fn len(&self) -> usize {
        self.nodes.borrow().len()
    }

    /// Elements of the op outputs the tape keeps for its backward (leaves and the
    /// placeholders of multi-output ops not counted): what gradient checkpointing saves.
    pub fn activation_elements(&self) -> usize {
        self.nodes
            .borrow()
            .iter()
            .filter(|n| !n.inputs.is_empty() && !matches!(n.backward, Some(Backward::Many(_))))
            .map(|n| n.value.numel())
            .sum::<usize>()
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records an op output computed from `inputs`, with its backward.
    pub(crate) fn push(&self, value: Tensor, inputs: &[Var], backward: BackwardFn) -> Var {
        let requires_grad = inputs.iter().any(|&v| self.requires_grad(v));
        self.push_node(Node {
            value,
            inputs: inputs.to_vec(),
            backward: requires_grad.then_some(Backward::One(backward)),
            requires_grad,
        })
    }

    /// Records an op with several outputs computed from `inputs`: one backward receives all
    /// the outputs' gradients at once (no zero-padded partial gradients to add up).
    pub(crate) fn push_multi(
        &self,
        values: Vec<Tensor>,
        inputs: &[Var],
        backward: MultiBackwardFn,
    ) -> Vec<Var> {
        let requires_grad = inputs.iter().any(|&v| self.requires_grad(v));
        let outputs = values.len();
        // The hidden group node holds the first value only as a placeholder; it is never
        // handed out, and the outputs that follow it carry the real values.
        let group = self.push_node(Node {
            value: values[0].clone(),
            inputs: inputs.to_vec(),
            backward: requires_grad.then_some(Backward::Many(backward)),
            requires_grad,
        });
        values
            .into_iter()
            .enumerate()
            .map(|(index, value)| {
                self.push_node(Node {
                    value,
                    inputs: Vec::new(),
                    backward: requires_grad.then_some(Backward::Part {
                        group: group.0,
                        index,
                        outputs,
                    }),
                    requires_grad,
                })
            })
            .collect()
    }

    fn push_node(&self, node: Node) -> Var {
        let mut nodes = self.nodes.borrow_mut();
        nodes.push(node);
        Var(nodes.len() - 1)
    }

    /// Gradients of the scalar `loss` ([1] or []) w.r.t. every value that requires one.
    pub fn backward(&self, loss: Var) -> Result<Grads> {
        let value = self.value(loss);
        if value.numel() != 1 {
            return Err(Error::Shape {
                op: "backward",
                detail: format!("loss must hold one element, found {:?}", value.shape()),
            });
        }
        let seed = Tensor::full(value.gpu(), value.shape(), 1.0)?;
        self.backward_with(loss, seed)
    }

    /// Vector-Jacobian products: gradients of `<output, cotangent>` w.r.t. every value.
    pub fn backward_with(&self, output: Var, cotangent: Tensor) -> Result<Grads> {
        let nodes = self.nodes.borrow();
        if cotangent.shape() != nodes[output.0].value.shape() {
            return Err(Error::Shape {
                op: "backward_with",
                detail: format!(
                    "cotangent {:?} differs from output {:?}",
                    cotangent.shape(),
                    nodes[output.0].value.shape()
                ),
            });
        }
        let mut grads: Vec<Option<Tensor>> = vec![None; output.0 + 1];
        grads[output.0] = Some(cotangent);
        // Gradients collected from the outputs of multi-output ops, by group node.
        let mut parts: std::collections::HashMap<usize, Vec<Option<Tensor>>> = Default::default();
        for i in (0..=output.0).rev() {
            let node = &nodes[i];
            let Some(backward) = &node.backward else {
                continue;
            };
            let needs: Vec<bool> = node
                .inputs
                .iter()
                .map(|v| nodes[v.0].requires_grad)
                .collect();
            let input_grads = match backward {
                Backward::Part {
                    group,
                    index,
                    outputs,
                } => {
                    if let Some(dy) = grads[i].take() {
                        parts.entry(*group).or_insert_with(|| vec![None; *outputs])[*index] =
                            Some(dy);
                    }
                    continue;
                }
                Backward::Many(backward) => match parts.remove(&i) {
                    Some(dys) => {
                        // Outputs without a gradient contribute zeros of their own shape.
                        let dys = dys
                            .into_iter()
                            .enumerate()
                            .map(|(k, dy)| match dy {
                                Some(dy) => Ok(dy),
                                None => {
                                    let out = &nodes[i + 1 + k].value;
                                    Tensor::zeros(out.gpu(), out.shape())
                                }
                            })
                            .collect::<Result<Vec<_>>>()?;
                        backward(&dys, &needs)?
                    }
                    None => continue,
                },
                Backward::One(backward) => match grads[i].take() {
                    Some(dy) => backward(&dy, &needs)?,
                    None => continue,
                },
            };
            for ((input, grad), need) in node.inputs.iter().zip(input_grads).zip(&needs) {
                let Some(grad) = grad else { continue };
                if !need {
                    continue;
                }
                if grad.shape() != nodes[input.0].value.shape() {
                    return Err(Error::Shape {
                        op: "backward",
                        detail: format!(
                            "gradient {:?} for value {:?} of node {}",
                            grad.shape(),
                            nodes[input.0].value.shape(),
                            input.0
                        ),
                    });
                }
                grads[input.0] = Some(match grads[input.0].take() {
                    Some(acc) => crate::ops::add(&acc, &grad)?,
                    None => grad,
                });
            }
        }
        Ok(Grads { grads })
    }
}
