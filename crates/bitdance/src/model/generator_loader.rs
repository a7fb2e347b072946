//! Loading a generator tensor by tensor from files the caller reads by range: the checks first
//! (names, shapes, memory, the adapter's limits), then one read and one upload per tensor. The
//! native path reads ranges of bytes in memory; the web page reads them from a Blob, so a
//! multi-GB model never sits whole in the wasm heap. One code path for both.

use std::collections::BTreeSet;
use std::ops::Range;

use super::{
    ar_parameters, decoder_parameters, encoder_parameters, half_weights, ModelConfig, ParamSpec,
    ParamStore, Precision, VAE_PREFIX,
};
use crate::io::{check_expected, WeightFile};
use crate::{Error, Gpu, Result};

/// Most bytes of a file read at once: a larger tensor (the B models' class table is 98 MB at
/// f16) is read, widened and uploaded a run of rows at a time, so the host holds a few times
/// this, not a few times the tensor.
pub const PIECE_BYTES: u64 = 8 << 20;

/// Which file a tensor is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadFile {
    /// The model file (AR model and head, and the autoencoder when it holds one).
    Model,
    /// The separate autoencoder file.
    Vae,
}

/// What the loader needs next: its file, the tensor's name there, and the byte range in the
/// file (the whole tensor, or a run of its rows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorRead {
    /// The file to read from.
    pub file: LoadFile,
    /// The tensor's name in that file.
    pub name: String,
    /// Its bytes in the file (offsets from the file's start).
    pub range: Range<u64>,
}

/// One upload of the plan: where the rows are, what they become, whether it is 16-bit, and
/// which rows of the tensor (all of them, or a piece).
struct Step {
    read: TensorRead,
    spec: ParamSpec,
    half: bool,
    rows: Range<usize>,
    /// Whether the tensor is read in pieces (then the first allocates it).
    pieced: bool,
}

/// A generator being loaded: `next_read` names the bytes to fetch, `upload` takes them.
pub struct GeneratorLoader<'f> {
    gpu: Gpu,
    model: &'f WeightFile<'f>,
    vae: Option<&'f WeightFile<'f>>,
    steps: Vec<Step>,
    next: usize,
    store: ParamStore,
    bytes_done: u64,
    bytes_total: u64,
}

impl<'f> GeneratorLoader<'f> {
    /// Checks `model` (and the optional separate autoencoder `vae`, its names with or without
    /// the `vae.` prefix) against config `c` in full, one error listing every missing,
    /// unexpected or misshaped tensor, then the memory estimate at `precision` and the
    /// adapter's binding limit; plans one read per tensor generation needs.
    pub fn new(
        gpu: &Gpu,
        c: &ModelConfig,
        model: &'f WeightFile<'f>,
        vae: Option<&'f WeightFile<'f>>,
        precision: Precision,
    ) -> Result<Self> {
        Self::with_pieces(gpu, c, model, vae, precision, PIECE_BYTES)
    }

    /// `new`, reading tensors over `piece_bytes` a run of rows at a time.
    pub fn with_pieces(
        gpu: &Gpu,
        c: &ModelConfig,
        model: &'f WeightFile<'f>,
        vae: Option<&'f WeightFile<'f>>,
        precision: Precision,
        piece_bytes: u64,
    ) -> Result<Self> {
        let precision = precision.on(gpu);
        gpu.check_memory(&c.generation_memory(1, precision))?;
        check_bindings(gpu, c)?;
        let ar = ar_parameters(c);
        let decoder = decoder_parameters(&c.vae);
        let model_has_vae = model.names().iter().any(|n| n.starts_with(VAE_PREFIX));
        let mut expected: Vec<(String, Vec<usize>)> = ar
            .iter()
            .map(|s| (s.name.clone(), s.shape.clone()))
            .collect();
        if model_has_vae || vae.is_none() {
            expected.extend(autoencoder_shapes(c, true));
        }
        check_expected(model, &expected, &[])?;
        let half = half_weights(c, precision);
        let same = |n: &str| n.to_string();
        let mut steps = plan(model, LoadFile::Model, &ar, &half, &same, piece_bytes)?;
        match vae {
            None => steps.extend(plan(
                model,
                LoadFile::Model,
                &decoder,
                &half,
                &same,
                piece_bytes,
            )?),
            Some(file) => {
                let prefixed = file.names().iter().any(|n| n.starts_with(VAE_PREFIX));
                check_expected(file, &autoencoder_shapes(c, prefixed), &[])?;
                let in_file = |name: &str| match prefixed {
                    true => name.to_string(),
                    false => name.trim_start_matches(VAE_PREFIX).to_string(),
                };
                steps.extend(plan(
                    file,
                    LoadFile::Vae,
                    &decoder,
                    &half,
                    &in_file,
                    piece_bytes,
                )?);
            }
        }
        let bytes_total = steps
            .iter()
            .map(|s| s.read.range.end - s.read.range.start)
            .sum();
        Ok(GeneratorLoader {
            gpu: gpu.clone(),
            model,
            vae,
            steps,
            next: 0,
            store: ParamStore::new(),
            bytes_done: 0,
            bytes_total,
        })
    }

    /// The bytes to read next (a tensor, or a run of its rows), `None` when all are uploaded.
    pub fn next_read(&self) -> Option<&TensorRead> {
        self.steps.get(self.next).map(|s| &s.read)
    }

    /// Uploads the bytes `next_read` named (widened, checked for non-finite values, then held
    /// at its precision) and moves to the next read.
    pub fn upload(&mut self, bytes: &[u8]) -> Result<()> {
        let step = self
            .steps
            .get(self.next)
            .ok_or_else(|| Error::Invalid("every tensor is already loaded".into()))?;
        let file = match step.read.file {
            LoadFile::Model => self.model,
            LoadFile::Vae => self.vae.unwrap_or(self.model),
        };
        let data = file.decode_rows_f32(&step.read.name, step.rows.clone(), bytes)?;
        let limit = self.gpu.limits().max_storage_buffer_binding_size;
        if !step.pieced {
            self.store
                .upload(&self.gpu, &step.spec, &data, limit, step.half)?;
        } else {
            if step.rows.start == 0 {
                self.store
                    .allocate(&self.gpu, &step.spec, limit, step.half)?;
            }
            self.store
                .write_rows(&step.spec.name, step.rows.start, &data)?;
        }
        self.bytes_done += step.read.range.end - step.read.range.start;
        self.next += 1;
        Ok(())
    }

    /// Bytes uploaded so far and in all, for a progress bar.
    pub fn progress(&self) -> (u64, u64) {
        (self.bytes_done, self.bytes_total)
    }

    /// The loaded parameters, under official names; an error when tensors are still to read.
    pub fn finish(self) -> Result<ParamStore> {
        if let Some(step) = self.steps.get(self.next) {
            return Err(Error::Invalid(format!(
                "the model is not loaded: {} of {} tensors remain, next '{}'",
                self.steps.len() - self.next,
                self.steps.len(),
                step.read.name
            )));
        }
        Ok(self.store)
    }

    /// Loads every tensor from files whose bytes are in memory (the native path).
    pub fn load_in_memory(mut self) -> Result<ParamStore> {
        while let Some(read) = self.next_read() {
            let file = match read.file {
                LoadFile::Model => self.model,
                LoadFile::Vae => self.vae.unwrap_or(self.model),
            };
            let bytes = file.bytes(read.range.clone())?;
            self.upload(bytes)?;
        }
        self.finish()
    }
}

/// The steps of every spec: the tensor `in_file(spec.name)` of `file`, uploaded under
/// `spec.name`, whole, or in runs of rows of at most `piece_bytes` (tensors whose rows hold an
/// even number of values, so that 16-bit rows end on 4-byte boundaries).
fn plan(
    file: &WeightFile<'_>,
    which: LoadFile,
    specs: &[ParamSpec],
    half: &BTreeSet<String>,
    in_file: &dyn Fn(&str) -> String,
    piece_bytes: u64,
) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    for spec in specs {
        let name = in_file(&spec.name);
        let whole = file.data_range(&name)?;
        let rows = spec.shape.first().copied().unwrap_or(1);
        let row_values: usize = spec.shape.iter().skip(1).product();
        let row_bytes = (whole.end - whole.start) / rows.max(1) as u64;
        let per_piece = (piece_bytes / row_bytes.max(1)).max(1) as usize;
        let pieced = spec.shape.len() >= 2 && row_values.is_multiple_of(2) && per_piece < rows;
        let pieces: Vec<Range<usize>> = match pieced {
            true => (0..rows)
                .step_by(per_piece)
                .map(|r| r..(r + per_piece).min(rows))
                .collect(),
            false => std::iter::once(0..rows).collect(),
        };
        for part in pieces {
            steps.push(Step {
                read: TensorRead {
                    file: which,
                    range: match pieced {
                        true => file.row_range(&name, part.clone())?,
                        false => whole.clone(),
                    },
                    name: name.clone(),
                },
                spec: spec.clone(),
                half: half.contains(&spec.name),
                rows: part,
                pieced,
            });
        }
    }
    Ok(steps)
}

/// Every autoencoder tensor's name (with the `vae.` prefix or not) and shape.
fn autoencoder_shapes(c: &ModelConfig, prefixed: bool) -> Vec<(String, Vec<usize>)> {
    encoder_parameters(&c.vae)
        .into_iter()
        .chain(decoder_parameters(&c.vae))
        .map(|s| match prefixed {
            true => (s.name, s.shape),
            false => (s.name.trim_start_matches(VAE_PREFIX).to_string(), s.shape),
        })
        .collect()
}

/// Refuses a model whose largest storage binding cannot fit the adapter's limit, naming it:
/// a weight row (a weight is split into row chunks, but never within a row) or the decoder's
/// largest feature map of one image (f32).
fn check_bindings(gpu: &Gpu, c: &ModelConfig) -> Result<()> {
    let limit = gpu.limits().max_storage_buffer_binding_size;
    let mut needs: Vec<(String, u64)> = ar_parameters(c)
        .into_iter()
        .chain(decoder_parameters(&c.vae))
        .map(|s| {
            let row: u64 = s.shape.iter().skip(1).map(|&d| d as u64).product();
            (format!("a row of weight '{}'", s.name), 4 * row)
        })
        .collect();
    needs.push(decoder_feature_map(c));
    match needs.into_iter().max_by_key(|(_, bytes)| *bytes) {
        Some((what, bytes)) if bytes > limit => Err(Error::Limit {
            what,
            requested: bytes,
            limit_name: "max_storage_buffer_binding_size",
            limit,
        }),
        _ => Ok(()),
    }
}

/// The decoder's largest feature map of one image, in f32 bytes, named.
pub fn decoder_feature_map(c: &ModelConfig) -> (String, u64) {
    super::memory::level_maps(c)
        .map(|(s, channels)| {
            (
                format!("the decoder's feature map at {s}x{s} ({channels} channels)"),
                4 * s * s * channels,
            )
        })
        .max_by_key(|(_, bytes)| *bytes)
        .unwrap_or_default()
}
