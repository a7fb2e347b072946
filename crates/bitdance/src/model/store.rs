//! Named parameter tensors on the GPU, keyed by official names.

use std::collections::BTreeMap;

use super::ParamSpec;
use crate::rng::Rng;
use crate::{Error, Gpu, Result, Tensor};

/// The parameters of a model, by official name. A parameter larger than one storage binding
/// (the decoder's last upsampling conv, the B class table) is held as row chunks along its
/// first dimension.
#[derive(Clone, Default)]
pub struct ParamStore {
    tensors: BTreeMap<String, Tensor>,
    chunked: BTreeMap<String, Vec<Tensor>>,
}

impl ParamStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Random normal parameters of the given specs scaled by `std` (tests and benchmarks;
    /// every tensor non-zero, unlike the official init which zeroes some layers).
    pub fn random(gpu: &Gpu, specs: &[ParamSpec], rng: &mut Rng, std: f32) -> Result<Self> {
        let limit = gpu.limits().max_storage_buffer_binding_size;
        Self::random_chunked(gpu, specs, rng, std, limit)
    }

    /// `random`, holding every parameter over `max_bytes` as row chunks of at most half that size.
    pub fn random_chunked(
        gpu: &Gpu,
        specs: &[ParamSpec],
        rng: &mut Rng,
        std: f32,
        max_bytes: u64,
    ) -> Result<Self> {
        let mut store = Self::new();
        let limit = max_bytes as usize;
        for spec in specs {
            let n: usize = spec.shape.iter().product();
            let data: Vec<f32> = rng.normal_vec(n).into_iter().map(|v| v * std).collect();
            if n * 4 <= limit {
                store.insert(&spec.name, Tensor::from_f32(gpu, &spec.shape, &data)?);
                continue;
            }
            let rows = spec.shape[0];
            let row = n / rows.max(1);
            // Half a binding per chunk leaves room for the kernels' padded, packed copies.
            let per_chunk = (limit / 2 / (4 * row)).max(1);
            let mut chunks = Vec::new();
            for start in (0..rows).step_by(per_chunk) {
                let len = per_chunk.min(rows - start);
                let mut shape = spec.shape.clone();
                shape[0] = len;
                chunks.push(Tensor::from_f32(
                    gpu,
                    &shape,
                    &data[start * row..(start + len) * row],
                )?);
            }
            store.insert_chunks(&spec.name, chunks);
        }
        Ok(store)
    }

    /// Adds or replaces a parameter.
    pub fn insert(&mut self, name: &str, tensor: Tensor) {
        self.tensors.insert(name.to_string(), tensor);
    }

    /// Adds a parameter held as row chunks along its first dimension (in order).
    pub fn insert_chunks(&mut self, name: &str, chunks: Vec<Tensor>) {
        self.chunked.insert(name.to_string(), chunks);
    }

    /// The parameter `name`, or an error naming it (also when it is only held in chunks).
    pub fn get(&self, name: &str) -> Result<&Tensor> {
        self.tensors.get(name).ok_or_else(|| {
            if self.chunked.contains_key(name) {
                Error::Invalid(format!(
                    "parameter '{name}' is larger than one storage binding and held in row chunks"
                ))
            } else {
                Error::Invalid(format!("missing parameter '{name}'"))
            }
        })
    }

    /// The parameter `name` as row chunks along its first dimension (one chunk when whole).
    pub fn get_chunks(&self, name: &str) -> Result<Vec<&Tensor>> {
        match self.chunked.get(name) {
            Some(chunks) => Ok(chunks.iter().collect()),
            None => Ok(vec![self.get(name)?]),
        }
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

    /// Number of parameters (a chunked one counts once).
    pub fn len(&self) -> usize {
        self.tensors.len() + self.chunked.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
