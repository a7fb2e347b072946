//! Writing a trainer's checkpoint or model a tensor at a time: the safetensors header first
//! (every name, shape and offset is known from the stores), then each tensor read back a run
//! of rows at a time, checked finite and encoded, so the host never holds a whole tensor. The native apps
//! collect the pieces into a file's bytes; the web worker appends them to a file in OPFS.

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::{Trainer, EMA_PREFIX, MOMENT_PREFIXES, TRAIN_KEY};
use crate::io::{encode_values, safetensors_header};
use crate::model::{split_part_name, CONFIG_KEY, PIECE_BYTES};
use crate::train::{ClassRows, CLASS_ROWS_KEY, CLASS_TABLE};
use crate::{Error, Result, Tensor};

/// Where one tensor's values come from.
enum Source<'t> {
    /// Its row chunks, in order (one for a whole tensor).
    Chunks(Vec<Tensor>),
    /// The trained class rows, joined into the full table.
    ClassRows(&'t ClassRows, Tensor),
}

/// One tensor of the file.
struct Entry<'t> {
    name: String,
    shape: Vec<usize>,
    source: Source<'t>,
}

/// Where the stream is: an entry, one of its chunks, a row of it.
#[derive(Clone, Copy, Default)]
struct Position {
    entry: usize,
    chunk: usize,
    row: usize,
}

/// A safetensors file written a piece at a time: `header`, then `next_piece` until `None`. A
/// piece is a run of rows of one tensor of at most `PIECE_BYTES` (as f32; one row at least),
/// so the host holds a few pieces, never a whole tensor.
pub struct TensorStream<'t> {
    header: Vec<u8>,
    entries: Vec<Entry<'t>>,
    at: Position,
    /// The trained class rows of the entry being written, read once.
    trained: Option<Vec<f32>>,
    piece_bytes: u64,
    half: bool,
    step: u64,
    data_bytes: u64,
}

impl<'t> TensorStream<'t> {
    /// The file's first bytes: its length prefix, JSON header and padding.
    pub fn header(&self) -> &[u8] {
        &self.header
    }

    /// The file's size in bytes (header and data).
    pub fn len(&self) -> u64 {
        self.header.len() as u64 + self.data_bytes
    }

    /// Whether the file holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The same stream cut into pieces of at most `piece_bytes` (f32) each.
    pub fn in_pieces(mut self, piece_bytes: u64) -> Self {
        self.piece_bytes = piece_bytes;
        self
    }

    /// Rows per piece of a tensor whose rows hold `row_values` values.
    fn rows_per_piece(&self, row_values: usize) -> usize {
        (self.piece_bytes / (4 * row_values.max(1) as u64)).max(1) as usize
    }

    /// The bytes of the next piece (read back, refused when not finite, encoded), `None` after
    /// the last.
    pub async fn next_piece(&mut self) -> Result<Option<Vec<u8>>> {
        let Some(entry) = self.entries.get(self.at.entry) else {
            return Ok(None);
        };
        let values = match &entry.source {
            Source::Chunks(chunks) => {
                let chunk = &chunks[self.at.chunk];
                let rows = chunk.shape().first().copied().unwrap_or(1);
                let row_values = chunk.numel() / rows.max(1);
                // Rows whose bytes do not end on 4-byte words are read with their chunk.
                let splits = !chunk.shape().is_empty()
                    && (row_values * chunk.dtype().size()).is_multiple_of(4);
                let count = match splits {
                    true => self.rows_per_piece(row_values).min(rows - self.at.row),
                    false => rows,
                };
                let values = match splits {
                    true => chunk.rows_to_vec_f32(self.at.row, count).await?,
                    false => chunk.to_vec_f32().await?,
                };
                self.at.row += count;
                if self.at.row == rows {
                    self.at = Position {
                        entry: self.at.entry,
                        chunk: self.at.chunk + 1,
                        row: 0,
                    };
                }
                if self.at.chunk == chunks.len() {
                    self.at = Position {
                        entry: self.at.entry + 1,
                        ..Position::default()
                    };
                }
                values
            }
            Source::ClassRows(class_rows, trained) => {
                if self.trained.is_none() {
                    let data = trained.to_vec_f32().await?;
                    class_rows.full_table_check(&entry.name, trained.shape(), &data)?;
                    self.trained = Some(data);
                }
                let (rows, width) = (entry.shape[0], entry.shape[1]);
                let count = self.rows_per_piece(width).min(rows - self.at.row);
                let trained = self.trained.as_deref().unwrap_or_default();
                let values = class_rows.full_rows(self.at.row, count, trained).await?;
                self.at.row += count;
                if self.at.row == rows {
                    self.trained = None;
                    self.at = Position {
                        entry: self.at.entry + 1,
                        ..Position::default()
                    };
                }
                values
            }
        };
        let bad = values.iter().filter(|v| !v.is_finite()).count();
        if bad > 0 {
            return Err(Error::Invalid(format!(
                "the training state at step {} is not finite: '{}' holds {bad} NaN or \
                 infinite value(s); nothing was written, so the checkpoint on disk is the last \
                 finite state",
                self.step, entry.name,
            )));
        }
        let mut out = Vec::new();
        encode_values(&values, self.half, &mut out);
        Ok(Some(out))
    }

    /// The whole file's bytes (the native apps write them atomically).
    pub async fn to_bytes(mut self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.len() as usize);
        out.extend_from_slice(&self.header);
        while let Some(bytes) = self.next_piece().await? {
            out.extend_from_slice(&bytes);
        }
        Ok(out)
    }
}

/// `tensors` (named, a parameter held in row chunks by its parts) grouped by parameter, in
/// chunk order.
fn grouped<'a>(
    tensors: impl IntoIterator<Item = (Cow<'a, str>, &'a Tensor)>,
) -> BTreeMap<String, BTreeMap<usize, Tensor>> {
    let mut out: BTreeMap<String, BTreeMap<usize, Tensor>> = BTreeMap::new();
    for (name, t) in tensors {
        let (base, index) = split_part_name(&name).unwrap_or((&name, 0));
        out.entry(base.to_string())
            .or_default()
            .insert(index, t.clone());
    }
    out
}

impl Trainer {
    /// The stream of `tensors` (a parameter in row chunks joined under its name; those named in
    /// `joined_rows` are trained class rows, written as the full table) with `metadata`, every
    /// tensor F16 when `half`.
    fn stream<'t>(
        &'t self,
        tensors: BTreeMap<String, BTreeMap<usize, Tensor>>,
        joined_rows: &[String],
        metadata: &BTreeMap<String, String>,
        half: bool,
    ) -> Result<TensorStream<'t>> {
        let mut entries = Vec::with_capacity(tensors.len());
        for (name, chunks) in tensors {
            let chunks: Vec<Tensor> = chunks.into_values().collect();
            let mut shape = chunks[0].shape().to_vec();
            if let Some(rows) = shape.first_mut() {
                *rows = chunks.iter().map(|c| c.shape()[0]).sum();
            }
            let source = match (&self.class_rows, joined_rows.contains(&name)) {
                (Some(rows), true) => {
                    shape = rows.full_shape()?;
                    Source::ClassRows(rows, chunks[0].clone())
                }
                _ => Source::Chunks(chunks),
            };
            entries.push(Entry {
                name,
                shape,
                source,
            });
        }
        let views: Vec<(&str, &[usize])> = entries
            .iter()
            .map(|e| (e.name.as_str(), e.shape.as_slice()))
            .collect();
        let header = safetensors_header(&views, Some(metadata), half)?;
        let size = if half { 2 } else { 4 };
        let data_bytes = entries
            .iter()
            .map(|e| (e.shape.iter().product::<usize>() * size) as u64)
            .sum();
        Ok(TensorStream {
            header,
            entries,
            at: Position::default(),
            trained: None,
            piece_bytes: PIECE_BYTES,
            half,
            step: self.optimizer.step,
            data_bytes,
        })
    }

    /// The checkpoint, a run of rows at a time: the model (trainable and frozen) under official
    /// names, the EMA under `ema.`, the AdamW moments under `optim.m.`/`optim.v.`, and the
    /// config and scalar state (step, RNG, settings) as metadata.
    pub fn checkpoint_stream(&self) -> Result<TensorStream<'_>> {
        let moments = self.optimizer.moments.iter().flat_map(|(name, (m, v))| {
            [
                (Cow::Owned(format!("{}{name}", MOMENT_PREFIXES[0])), m),
                (Cow::Owned(format!("{}{name}", MOMENT_PREFIXES[1])), v),
            ]
        });
        let ema = self
            .ema
            .shadows
            .iter()
            .map(|(name, t)| (Cow::Owned(format!("{EMA_PREFIX}{name}")), t));
        let tensors = grouped(
            self.params
                .iter()
                .chain(self.frozen.iter())
                .chain(ema)
                .chain(moments),
        );
        let state = super::SavedState {
            settings: self.settings,
            step: self.optimizer.step,
            rng: self.rng.state(),
        };
        let mut meta = self.metadata.clone();
        meta.insert(CONFIG_KEY.to_string(), self.config.to_json());
        meta.insert(
            TRAIN_KEY.to_string(),
            serde_json::to_string(&state).map_err(|e| Error::Invalid(e.to_string()))?,
        );
        // The model and its EMA as full tables; the moments of the trained rows alone.
        let joined = [
            CLASS_TABLE.to_string(),
            format!("{EMA_PREFIX}{CLASS_TABLE}"),
        ];
        self.stream(tensors, &joined, &meta, false)
    }

    /// The model alone, a run of rows at a time, under official names, ready for `generate` or
    /// the official `load_state_dict`: the EMA weights (or the raw ones) and the frozen ones,
    /// with the config and metadata; stored as F16 when `half`.
    pub fn model_stream(&self, ema: bool, half: bool) -> Result<TensorStream<'_>> {
        let tensors = if self.lora().is_some() || self.class_rows.is_some() {
            grouped(self.sampling_store(ema)?.iter())
        } else {
            grouped(self.trained(ema).into_iter().chain(self.frozen.iter()))
        };
        self.stream(tensors, &[], &self.model_metadata(BTreeMap::new()), half)
    }

    /// The metadata of an exported model or adapters file: the run's, less which rows trained
    /// (the run's business, not the model's), with its config and `extra`.
    pub(super) fn model_metadata(
        &self,
        extra: BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let mut meta = self.metadata.clone();
        meta.remove(CLASS_ROWS_KEY);
        meta.insert(CONFIG_KEY.to_string(), self.config.to_json());
        meta.extend(extra);
        meta
    }
}
