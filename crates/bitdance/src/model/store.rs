//! Named parameter tensors on the GPU, keyed by official names.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use super::ParamSpec;
use crate::io::WeightFile;
use crate::rng::Rng;
use crate::{DType, Error, Gpu, Result, Tensor};

/// The parameters of a model, by official name. A parameter larger than one storage binding
/// (the decoder's last upsampling conv, the B class table) is held as row chunks along its
/// first dimension; `iter` names each chunk as a part (`part_name`), which `insert` files
/// back in its place, so that whatever walks a store (the optimizer's moments, the EMA, a
/// checkpoint) holds every chunk under a name of its own.
#[derive(Clone, Default)]
pub struct ParamStore {
    tensors: BTreeMap<String, Tensor>,
    /// Row chunks by parameter name, by chunk index.
    chunked: BTreeMap<String, BTreeMap<usize, Tensor>>,
}

/// Separates a parameter's name from the index of one of its row chunks.
const PART_MARK: &str = "#rows";

/// The name of row chunk `index` of parameter `name` (`cls_embedding.weight#rows1`): how the
/// optimizer's moments and the EMA key a parameter held in chunks. Never an official name.
pub fn part_name(name: &str, index: usize) -> String {
    format!("{name}{PART_MARK}{index}")
}

/// The parameter and chunk index of a `part_name`; `None` for a whole parameter's name.
pub fn split_part_name(name: &str) -> Option<(&str, usize)> {
    let (base, index) = name.rsplit_once(PART_MARK)?;
    let index = index.parse().ok()?;
    Some((base, index))
}

/// A tensor read back to the host: name, shape, values.
pub type HostTensor = (String, Vec<usize>, Vec<f32>);

/// `host` with the row chunks of each parameter (named by `part_name`, with any prefix, e.g.
/// `ema.`) joined along their first dimension under the parameter's own name, in chunk order;
/// whole tensors pass unchanged. A file written from it is the same whatever chunks the
/// adapter that wrote it needed.
pub fn join_row_parts(host: Vec<HostTensor>) -> Result<Vec<HostTensor>> {
    let mut whole = Vec::new();
    // Parameter name -> chunk index -> (shape, values).
    type Chunks = BTreeMap<usize, (Vec<usize>, Vec<f32>)>;
    let mut parts: BTreeMap<String, Chunks> = BTreeMap::new();
    for (name, shape, data) in host {
        match split_part_name(&name) {
            Some((base, index)) => {
                parts
                    .entry(base.to_string())
                    .or_default()
                    .insert(index, (shape, data));
            }
            None => whole.push((name, shape, data)),
        }
    }
    for (name, chunks) in parts {
        let mut shape: Option<Vec<usize>> = None;
        let mut data = Vec::new();
        for (position, (index, (s, d))) in chunks.into_iter().enumerate() {
            match &mut shape {
                None if index == 0 => shape = Some(s),
                Some(joined) if index == position && joined[1..] == s[1..] => joined[0] += s[0],
                _ => {
                    return Err(Error::Invalid(format!(
                        "'{name}': row chunk {index} of shape {s:?} does not continue the \
                         chunks before it ({shape:?}), or one before it is missing"
                    )))
                }
            }
            data.extend(d);
        }
        if let Some(shape) = shape {
            whole.push((name, shape, data));
        }
    }
    whole.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(whole)
}

/// Every missing or misshaped tensor of `specs` in `file`, listed in one error.
pub(crate) fn check_specs(file: &WeightFile<'_>, specs: &[ParamSpec]) -> Result<()> {
    let mut problems = Vec::new();
    for spec in specs {
        match file.shape(&spec.name) {
            Err(_) => problems.push(format!("  missing: '{}' {:?}", spec.name, spec.shape)),
            Ok(found) if found != spec.shape.as_slice() => problems.push(format!(
                "  misshaped: '{}': expected {:?}, found {found:?}",
                spec.name, spec.shape
            )),
            Ok(_) => {}
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "{}: {} problem(s) with the weights:\n{}",
        file.label(),
        problems.len(),
        problems.join("\n")
    )))
}

/// One tensor of `shape` from f32 `data`: rounded to 16 bits when `half` and its kernels can
/// read it so (a convolution weight, or a linear weight whose rows are a multiple of 4 values
/// for matmul's vec4 loads), else f32.
fn upload(gpu: &Gpu, shape: &[usize], data: &[f32], half: bool) -> Result<Tensor> {
    Tensor::weight_from_f32(gpu, shape, data, weight_dtype(shape, half))
}

/// The dtype a weight of `shape` is held in: 16-bit when `half` and its kernels can read it so
/// (a convolution weight, or a linear weight whose rows are a multiple of 4 values for matmul's
/// vec4 loads), else f32.
fn weight_dtype(shape: &[usize], half: bool) -> DType {
    let row = shape.last().copied().unwrap_or(0);
    match half && (shape.len() == 4 || (shape.len() == 2 && row.is_multiple_of(4))) {
        true => DType::F16,
        false => DType::F32,
    }
}

impl ParamStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Random normal parameters of the given specs scaled by `std` (tests and benchmarks;
    /// every tensor non-zero, unlike the official init which zeroes some layers).
    pub fn random(gpu: &Gpu, specs: &[ParamSpec], rng: &mut Rng, std: f32) -> Result<Self> {
        Self::random_in(gpu, specs, rng, std, &BTreeSet::new())
    }

    /// `random`, holding the parameters named in `half` in 16 bits (see `upload`).
    pub fn random_in(
        gpu: &Gpu,
        specs: &[ParamSpec],
        rng: &mut Rng,
        std: f32,
        half: &BTreeSet<String>,
    ) -> Result<Self> {
        let limit = gpu.limits().max_storage_buffer_binding_size;
        Self::build(gpu, specs, limit, half, |spec| {
            let n: usize = spec.shape.iter().product();
            Ok(rng.normal_vec(n).into_iter().map(|v| v * std).collect())
        })
    }

    /// `random`, holding every parameter over `max_bytes` as row chunks of at most half that size.
    pub fn random_chunked(
        gpu: &Gpu,
        specs: &[ParamSpec],
        rng: &mut Rng,
        std: f32,
        max_bytes: u64,
    ) -> Result<Self> {
        Self::build(gpu, specs, max_bytes, &BTreeSet::new(), |spec| {
            let n: usize = spec.shape.iter().product();
            Ok(rng.normal_vec(n).into_iter().map(|v| v * std).collect())
        })
    }

    /// Uploads the parameters `specs` from `file` (f32, f16 or bf16, converted to f32),
    /// holding each one over half a storage binding as row chunks. Every missing or misshaped
    /// tensor is listed in one error; tensors of the file not in `specs` are not loaded.
    pub fn from_weights(gpu: &Gpu, file: &WeightFile<'_>, specs: &[ParamSpec]) -> Result<Self> {
        let limit = gpu.limits().max_storage_buffer_binding_size;
        check_specs(file, specs)?;
        Self::build(gpu, specs, limit, &BTreeSet::new(), |spec| {
            file.to_f32(&spec.name)
        })
    }

    /// `from_weights`, holding the parameters named in `half` in 16 bits where their kernels
    /// read them so (see `upload`): a frozen base.
    pub fn from_weights_in(
        gpu: &Gpu,
        file: &WeightFile<'_>,
        specs: &[ParamSpec],
        half: &BTreeSet<String>,
    ) -> Result<Self> {
        let limit = gpu.limits().max_storage_buffer_binding_size;
        check_specs(file, specs)?;
        Self::build(gpu, specs, limit, half, |spec| file.to_f32(&spec.name))
    }

    /// Uploads every spec's values (from `values`, one tensor at a time: the host never holds
    /// more than one widened), as row chunks when over half of `max_bytes`.
    fn build(
        gpu: &Gpu,
        specs: &[ParamSpec],
        max_bytes: u64,
        half: &BTreeSet<String>,
        mut values: impl FnMut(&ParamSpec) -> Result<Vec<f32>>,
    ) -> Result<Self> {
        let mut store = Self::new();
        for spec in specs {
            let data = values(spec)?;
            store.upload(gpu, spec, &data, max_bytes, half.contains(&spec.name))?;
        }
        Ok(store)
    }

    /// Uploads one parameter `spec` from its f32 `data` (16-bit when `half`, see `upload`), as
    /// row chunks when over half of `max_bytes`.
    pub fn upload(
        &mut self,
        gpu: &Gpu,
        spec: &ParamSpec,
        data: &[f32],
        max_bytes: u64,
        half: bool,
    ) -> Result<()> {
        let n = data.len();
        if (n as u64) * 4 <= max_bytes {
            self.insert(&spec.name, upload(gpu, &spec.shape, data, half)?);
            return Ok(());
        }
        let row = n / spec.shape[0].max(1);
        let mut chunks = Vec::new();
        for rows in chunk_ranges(&spec.shape, max_bytes) {
            let mut shape = spec.shape.clone();
            shape[0] = rows.len();
            let part = &data[rows.start * row..rows.end * row];
            chunks.push(upload(gpu, &shape, part, half)?);
        }
        self.insert_chunks(&spec.name, chunks);
        Ok(())
    }

    /// `from_weights`, holding every parameter over `max_bytes` as row chunks of at most half
    /// that size.
    pub fn from_weights_chunked(
        gpu: &Gpu,
        file: &WeightFile<'_>,
        specs: &[ParamSpec],
        max_bytes: u64,
    ) -> Result<Self> {
        check_specs(file, specs)?;
        Self::build(gpu, specs, max_bytes, &BTreeSet::new(), |spec| {
            file.to_f32(&spec.name)
        })
    }

    /// Allocates parameter `spec` (as `upload` would hold it: 16-bit when `half` allows, row
    /// chunks when over half of `max_bytes`) for its values to be written with `write_rows`.
    pub fn allocate(
        &mut self,
        gpu: &Gpu,
        spec: &ParamSpec,
        max_bytes: u64,
        half: bool,
    ) -> Result<()> {
        let n: u64 = spec.shape.iter().map(|&d| d as u64).product();
        let dtype = weight_dtype(&spec.shape, half);
        if n * 4 <= max_bytes {
            self.insert(&spec.name, Tensor::weight_uninit(gpu, &spec.shape, dtype)?);
            return Ok(());
        }
        let chunks = chunk_ranges(&spec.shape, max_bytes)
            .into_iter()
            .map(|rows| {
                let mut shape = spec.shape.clone();
                shape[0] = rows.len();
                Tensor::weight_uninit(gpu, &shape, dtype)
            })
            .collect::<Result<Vec<_>>>()?;
        self.insert_chunks(&spec.name, chunks);
        Ok(())
    }

    /// Writes rows `first_row..` (along the first dimension) of parameter `name` from f32
    /// `data`, across its row chunks, converted to the dtype it is held in.
    pub fn write_rows(&self, name: &str, first_row: usize, data: &[f32]) -> Result<()> {
        let chunks = self.get_chunks(name)?;
        let row = chunks[0].shape().iter().skip(1).product::<usize>().max(1);
        let mut at = 0; // first row of the current chunk
        let mut data = data;
        let mut row_now = first_row;
        for chunk in chunks {
            let rows = chunk.shape().first().copied().unwrap_or(1);
            if row_now < at + rows && !data.is_empty() {
                let take = (at + rows - row_now).min(data.len() / row);
                chunk.write_rows_f32(row_now - at, &data[..take * row])?;
                data = &data[take * row..];
                row_now += take;
            }
            at += rows;
        }
        if !data.is_empty() {
            return Err(Error::Shape {
                op: "ParamStore::write_rows",
                detail: format!("'{name}': rows past its {at} rows written from row {first_row}"),
            });
        }
        Ok(())
    }

    /// Moves every parameter of `other` into this store (replacing same-named ones, whole or
    /// in chunks).
    pub fn extend(&mut self, other: ParamStore) {
        for (name, t) in other.tensors {
            self.insert(&name, t);
        }
        for (name, chunks) in other.chunked {
            self.tensors.remove(&name);
            self.chunked.insert(name, chunks);
        }
    }

    /// The parameters whose names `keep` accepts, and the others.
    pub fn partition(self, keep: impl Fn(&str) -> bool) -> (Self, Self) {
        let (mut kept, mut rest) = (Self::new(), Self::new());
        for (name, t) in self.tensors {
            let side = if keep(&name) { &mut kept } else { &mut rest };
            side.tensors.insert(name, t);
        }
        for (name, chunks) in self.chunked {
            let side = if keep(&name) { &mut kept } else { &mut rest };
            side.chunked.insert(name, chunks);
        }
        (kept, rest)
    }

    /// Whether parameter `name` is held (whole or in chunks).
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name) || self.chunked.contains_key(name)
    }

    /// The same parameters under the names `rename(name)`.
    pub fn renamed(self, rename: impl Fn(&str) -> String) -> Self {
        Self {
            tensors: self
                .tensors
                .into_iter()
                .map(|(k, v)| (rename(&k), v))
                .collect(),
            chunked: self
                .chunked
                .into_iter()
                .map(|(k, v)| (rename(&k), v))
                .collect(),
        }
    }

    /// Every parameter (chunks joined) as safetensors bytes under its name, in name order,
    /// with optional string metadata.
    pub async fn to_safetensors(
        &self,
        metadata: Option<&BTreeMap<String, String>>,
    ) -> Result<Vec<u8>> {
        let mut host: Vec<HostTensor> = Vec::new();
        for (name, t) in self.iter() {
            host.push((name.into_owned(), t.shape().to_vec(), t.to_vec_f32().await?));
        }
        let host = join_row_parts(host)?;
        let views: Vec<(&str, &[usize], &[f32])> = host
            .iter()
            .map(|(n, s, d)| (n.as_str(), s.as_slice(), d.as_slice()))
            .collect();
        crate::io::save_safetensors(&views, metadata)
    }

    /// Adds or replaces a parameter, or one row chunk of one when `name` is a `part_name`
    /// (what `iter` yields, so that a store copied part by part keeps its chunks). A parameter
    /// is held one way: whole, or in chunks, never both.
    pub fn insert(&mut self, name: &str, tensor: Tensor) {
        match split_part_name(name) {
            Some((base, index)) => {
                self.tensors.remove(base);
                self.chunked
                    .entry(base.to_string())
                    .or_default()
                    .insert(index, tensor);
            }
            None => {
                self.chunked.remove(name);
                self.tensors.insert(name.to_string(), tensor);
            }
        }
    }

    /// Removes parameter `name` (whole or in chunks) and returns it as a store of its own.
    pub fn remove(&mut self, name: &str) -> ParamStore {
        let mut out = ParamStore::new();
        if let Some(t) = self.tensors.remove(name) {
            out.tensors.insert(name.to_string(), t);
        }
        if let Some(chunks) = self.chunked.remove(name) {
            out.chunked.insert(name.to_string(), chunks);
        }
        out
    }

    /// Adds a parameter held as row chunks along its first dimension (in order), replacing
    /// one of that name.
    pub fn insert_chunks(&mut self, name: &str, chunks: Vec<Tensor>) {
        self.tensors.remove(name);
        self.chunked
            .insert(name.to_string(), chunks.into_iter().enumerate().collect());
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
            Some(chunks) => Ok(chunks.values().collect()),
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

    /// The shape of parameter `name` (its chunks' rows added up), or an error naming it.
    pub fn shape(&self, name: &str) -> Result<Vec<usize>> {
        let chunks = self.get_chunks(name)?;
        let mut shape = chunks[0].shape().to_vec();
        if chunks.len() > 1 {
            shape[0] = chunks.iter().map(|c| c.shape()[0]).sum();
        }
        Ok(shape)
    }

    /// Checks that parameter `name` (whole or in chunks) has `shape`.
    pub fn check_shape(&self, name: &str, shape: &[usize]) -> Result<()> {
        let found = self.shape(name)?;
        if found != shape {
            return Err(Error::Shape {
                op: "parameter",
                detail: format!("'{name}' is {found:?}, expected {shape:?}"),
            });
        }
        Ok(())
    }

    /// Every tensor: the whole parameters in name order under their names, then each row chunk
    /// of a chunked one under its `part_name`.
    pub fn iter(&self) -> impl Iterator<Item = (Cow<'_, str>, &Tensor)> {
        let whole = self
            .tensors
            .iter()
            .map(|(k, v)| (Cow::Borrowed(k.as_str()), v));
        let parts = self.chunked.iter().flat_map(|(name, chunks)| {
            chunks
                .iter()
                .map(move |(i, t)| (Cow::Owned(part_name(name, *i)), t))
        });
        whole.chain(parts)
    }

    /// The GPU holding the parameters, or an error for an empty store.
    pub fn gpu(&self) -> Result<Gpu> {
        self.tensors
            .values()
            .chain(self.chunked.values().flat_map(|c| c.values()))
            .next()
            .map(|t| t.gpu().clone())
            .ok_or_else(|| Error::Invalid("the parameter store is empty".into()))
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

/// Row ranges along the first dimension of `shape` whose f32 chunks hold at most half of
/// `max_bytes` (room for the kernels' padded, packed copies); at least one row each.
fn chunk_ranges(shape: &[usize], max_bytes: u64) -> Vec<std::ops::Range<usize>> {
    let rows = shape.first().copied().unwrap_or(1);
    let row_bytes = 4 * shape.iter().skip(1).product::<usize>().max(1);
    let per_chunk = ((max_bytes as usize) / 2 / row_bytes).max(1);
    (0..rows)
        .step_by(per_chunk)
        .map(|start| start..(start + per_chunk).min(rows))
        .collect()
}

/// Parameters of a store recorded on a tape on first use (trainable or constant), so one
/// model function serves inference and training.
pub struct ParamVars<'a> {
    tape: &'a crate::autograd::Tape,
    store: &'a ParamStore,
    trainable: bool,
    /// Parameters looked up when `store` lacks them, recorded as constants (no gradient).
    constants: Option<&'a ParamStore>,
    vars: std::cell::RefCell<BTreeMap<String, crate::autograd::Var>>,
    constant_vars: std::cell::RefCell<BTreeMap<String, crate::autograd::Var>>,
}

impl<'a> ParamVars<'a> {
    /// Parameters of `store` on `tape`; with `trainable` they receive gradients.
    pub fn new(tape: &'a crate::autograd::Tape, store: &'a ParamStore, trainable: bool) -> Self {
        Self {
            tape,
            store,
            trainable,
            constants: None,
            vars: Default::default(),
            constant_vars: Default::default(),
        }
    }

    /// Trainable parameters of `store`, and those only `constants` holds as constants (a run
    /// that trains part of a model).
    pub fn with_constants(
        tape: &'a crate::autograd::Tape,
        store: &'a ParamStore,
        constants: &'a ParamStore,
    ) -> Self {
        Self {
            constants: Some(constants),
            ..Self::new(tape, store, true)
        }
    }

    /// The tape value of parameter `name` (recorded once).
    pub fn get(&self, name: &str) -> Result<crate::autograd::Var> {
        if let Some(v) = self.vars.borrow().get(name) {
            return Ok(*v);
        }
        if let Some(v) = self.constant_vars.borrow().get(name) {
            return Ok(*v);
        }
        if let Some(constants) = self.constants.filter(|_| !self.store.contains(name)) {
            let v = self.tape.leaf(constants.get(name)?.clone(), false);
            self.constant_vars.borrow_mut().insert(name.to_string(), v);
            return Ok(v);
        }
        let v = self
            .tape
            .leaf(self.store.get(name)?.clone(), self.trainable);
        self.vars.borrow_mut().insert(name.to_string(), v);
        Ok(v)
    }

    /// The tape values of parameter `name`'s row chunks (one when it is whole), each recorded
    /// once under its `part_name`, so that each chunk gets its own gradient.
    pub fn get_chunks(&self, name: &str) -> Result<Vec<crate::autograd::Var>> {
        let store = match self.constants.filter(|_| !self.store.contains(name)) {
            Some(constants) => constants,
            None => self.store,
        };
        let chunks = store.get_chunks(name)?;
        if chunks.len() == 1 {
            return Ok(vec![self.get(name)?]);
        }
        let constant = !std::ptr::eq(store, self.store);
        let mut vars = Vec::with_capacity(chunks.len());
        for (i, chunk) in chunks.into_iter().enumerate() {
            let part = part_name(name, i);
            let known = match constant {
                true => &self.constant_vars,
                false => &self.vars,
            };
            if let Some(v) = known.borrow().get(&part) {
                vars.push(*v);
                continue;
            }
            let v = self.tape.leaf(chunk.clone(), self.trainable && !constant);
            known.borrow_mut().insert(part, v);
            vars.push(v);
        }
        Ok(vars)
    }

    /// The GPU holding the parameters.
    pub fn gpu(&self) -> Result<Gpu> {
        self.store.gpu()
    }

    /// The parameters of `store` used so far, by name (not the constants).
    pub fn used(&self) -> BTreeMap<String, crate::autograd::Var> {
        self.vars.borrow().clone()
    }
}
