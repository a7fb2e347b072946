//! Named parameter tensors on the GPU, keyed by official names.

use std::collections::BTreeMap;

use super::ParamSpec;
use crate::rng::Rng;
use crate::{Error, Gpu, Result, Tensor};

/// The parameters of a model, by official name.
#[derive(Clone, Default)]
pub struct ParamStore {
    tensors: BTreeMap<String, Tensor>,
}

impl ParamStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Random normal parameters of the given specs scaled by `std` (tests and benchmarks;
    /// every tensor non-zero, unlike the official init which zeroes some layers).
    pub fn random(gpu: &Gpu, specs: &[ParamSpec], rng: &mut Rng, std: f32) -> Result<Self> {
        let mut store = Self::new();
        for spec in specs {
            let n = spec.shape.iter().product();
            let data: Vec<f32> = rng.normal_vec(n).into_iter().map(|v| v * std).collect();
            store.insert(&spec.name, Tensor::from_f32(gpu, &spec.shape, &data)?);
        }
        Ok(store)
    }

    /// Adds or replaces a parameter.
    pub fn insert(&mut self, name: &str, tensor: Tensor) {
        self.tensors.insert(name.to_string(), tensor);
    }

    /// The parameter `name`, or an error naming it.
    pub fn get(&self, name: &str) -> Result<&Tensor> {
        self.tensors
            .get(name)
            .ok_or_else(|| Error::Invalid(format!("missing parameter '{name}'")))
    }

    /// The parameter `name`, checked to have `shape`.
    pub fn get_shaped(&self, name: &str, shape: &[usize]) -> Result<&Tensor> {
        let t = self.get(name)?;
        if t.shape() != shape {
            return Err(Error::Shape {
                op: "parameter",
                detail: format!("'{name}' is {:?}, expected {shape:?}", t.shape()),
            });
        }
        Ok(t)
    }

    /// Names and tensors in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.tensors.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of parameters tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }
}

/// Parameters of a store recorded on a tape on first use (trainable or constant), so one
/// model function serves inference and training.
pub struct ParamVars<'a> {
    tape: &'a crate::autograd::Tape,
    store: &'a ParamStore,
    trainable: bool,
    vars: std::cell::RefCell<BTreeMap<String, crate::autograd::Var>>,
}

impl<'a> ParamVars<'a> {
    /// Parameters of `store` on `tape`; with `trainable` they receive gradients.
    pub fn new(tape: &'a crate::autograd::Tape, store: &'a ParamStore, trainable: bool) -> Self {
        Self {
            tape,
            store,
            trainable,
            vars: Default::default(),
        }
    }

    /// The tape value of parameter `name` (recorded once).
    pub fn get(&self, name: &str) -> Result<crate::autograd::Var> {
        if let Some(v) = self.vars.borrow().get(name) {
            return Ok(*v);
        }
        let v = self
            .tape
            .leaf(self.store.get(name)?.clone(), self.trainable);
        self.vars.borrow_mut().insert(name.to_string(), v);
        Ok(v)
    }

    /// The parameters used so far, by name.
    pub fn used(&self) -> BTreeMap<String, crate::autograd::Var> {
        self.vars.borrow().clone()
    }
}
