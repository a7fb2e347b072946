//! Resuming a run from its checkpoint tensor by tensor: the checks and the plan from the
//! header (config, training state, which tensors are weights, frozen weights, EMA and moments),
//! the reads through a `TensorLoader` (in memory natively, from a Blob on the web), then the
//! trainer assembled as it stood when the checkpoint was written.

use std::collections::BTreeMap;

use super::{saved_state, SavedState, Trainer, EMA_PREFIX, MOMENT_PREFIXES, TRAIN_KEY};
use crate::io::WeightFile;
use crate::model::{
    check_specs, LoadFile, LoadItem, ModelConfig, ParamSpec, ParamStore, TensorLoader, CONFIG_KEY,
    PIECE_BYTES,
};
use crate::optim::{AdamW, Ema};
use crate::rng::Rng;
use crate::train::{ClassRows, CLASS_ROWS_KEY, CLASS_TABLE};
use crate::{Error, Gpu, Result};

/// A run being resumed: drive `tensors` (`next_read`/`upload`), then `finish`.
pub struct ResumeLoad<'f> {
    /// The checkpoint's reads.
    pub tensors: TensorLoader<'f>,
    label: String,
    metadata: BTreeMap<String, String>,
    config: ModelConfig,
    state: SavedState,
    specs: Vec<ParamSpec>,
    row_ids: Option<Vec<u32>>,
}

impl<'f> ResumeLoad<'f> {
    /// Checks checkpoint `file` (its header is enough: a config, a training state, every
    /// tensor the run needs, listed in one error when missing or misshaped) and the memory it
    /// needs; plans its reads. `config`, when given, must match the checkpoint's.
    pub fn new(gpu: &Gpu, file: &'f WeightFile<'f>, config: Option<&ModelConfig>) -> Result<Self> {
        Self::in_pieces(gpu, file, config, PIECE_BYTES)
    }

    /// `new`, reading tensors over `piece_bytes` a run of rows at a time.
    pub fn in_pieces(
        gpu: &Gpu,
        file: &'f WeightFile<'f>,
        config: Option<&ModelConfig>,
        piece_bytes: u64,
    ) -> Result<Self> {
        let c = crate::model::stored_config(file)?.ok_or_else(|| {
            Error::Invalid(format!(
                "{}: not a bitdance training checkpoint (no '{CONFIG_KEY}' metadata)",
                file.label()
            ))
        })?;
        if let Some(want) = config {
            if *want != c {
                return Err(Error::Invalid(format!(
                    "{}: the checkpoint is of another config ({}) than the one given ({})",
                    file.label(),
                    c.to_json(),
                    want.to_json()
                )));
            }
        }
        let state = saved_state(file)?;
        gpu.check_memory(&state.settings.task.memory(&c, 1, true))?;
        let specs = state.settings.task.parameters(&c);
        let metadata = file.metadata();
        // A run that trains some class rows: its model and EMA hold the full table, its
        // moments those rows alone.
        let row_ids: Option<Vec<u32>> = match metadata.get(CLASS_ROWS_KEY) {
            None => None,
            Some(json) => Some(serde_json::from_str(json).map_err(|e| {
                Error::Invalid(format!("{}: '{CLASS_ROWS_KEY}': {e}", file.label()))
            })?),
        };
        let prefixed = |prefix: &str, rows: Option<usize>| -> Vec<ParamSpec> {
            specs
                .iter()
                .map(|s| {
                    let mut shape = s.shape.clone();
                    if let (Some(k), true) = (rows, s.name == CLASS_TABLE) {
                        shape[0] = k;
                    }
                    ParamSpec {
                        name: format!("{prefix}{}", s.name),
                        shape,
                    }
                })
                .collect()
        };
        let mut wanted = specs.clone();
        wanted.extend(prefixed(EMA_PREFIX, None));
        if state.step > 0 {
            let moment_rows = row_ids.as_ref().map(Vec::len);
            for prefix in MOMENT_PREFIXES {
                wanted.extend(prefixed(prefix, moment_rows));
            }
        }
        check_specs(file, &wanted)?;
        let mut items: Vec<LoadItem> = wanted
            .into_iter()
            .map(|spec| LoadItem::named(LoadFile::Model, spec))
            .collect();
        // Every other tensor is a frozen weight (the autoencoder, or what the task does not
        // train), held as the run held it.
        let half = state.settings.task.half_weights(&c);
        for name in file.names() {
            let known = name.starts_with(EMA_PREFIX)
                || MOMENT_PREFIXES.iter().any(|p| name.starts_with(p))
                || specs.iter().any(|s| s.name == name);
            if !known {
                let shape = file.shape(&name)?.to_vec();
                let half = half.contains(&name);
                items.push(LoadItem {
                    half,
                    ..LoadItem::named(LoadFile::Model, ParamSpec { name, shape })
                });
            }
        }
        Ok(ResumeLoad {
            tensors: TensorLoader::new(gpu, file, None, items, piece_bytes)?,
            label: file.label().to_string(),
            metadata,
            config: c,
            state,
            specs,
            row_ids,
        })
    }

    /// Reads every tensor from a checkpoint in memory and assembles the trainer.
    pub fn load_in_memory(mut self) -> Result<Trainer> {
        self.tensors.read_all_in_memory()?;
        self.finish()
    }

    /// The trainer, once every tensor is uploaded: continuing it gives exactly the steps an
    /// uninterrupted run would have taken.
    pub fn finish(self) -> Result<Trainer> {
        let ResumeLoad {
            tensors,
            label,
            metadata,
            config: c,
            state,
            specs,
            row_ids,
        } = self;
        let store = tensors.finish()?;
        let take = |store: ParamStore, prefix: &str| {
            let (kept, rest) = store.partition(|n| n.starts_with(prefix));
            (
                kept.renamed(|n| n.trim_start_matches(prefix).to_string()),
                rest,
            )
        };
        let (mut ema_store, store) = take(store, EMA_PREFIX);
        let (m_store, store) = take(store, MOMENT_PREFIXES[0]);
        let (v_store, store) = take(store, MOMENT_PREFIXES[1]);
        let (mut params, frozen) = store.partition(|n| specs.iter().any(|s| s.name == n));
        let null = c.num_classes as u32;
        // The store's full table replaced by the rows `ids` train.
        let rows_of = |store: &mut ParamStore, ids: &[u32]| -> Result<ClassRows> {
            let classes: Vec<u32> = ids.iter().copied().filter(|&k| k != null).collect();
            let rows = ClassRows::new(&classes, null, store.remove(CLASS_TABLE))?;
            store.insert(CLASS_TABLE, rows.gather()?);
            Ok(rows)
        };
        let class_rows = match &row_ids {
            Some(ids) => Some(rows_of(&mut params, ids)?),
            None => None,
        };
        if let Some(ids) = &row_ids {
            rows_of(&mut ema_store, ids)?;
        }
        let mut optimizer = AdamW::new(state.settings.adamw);
        optimizer.step = state.step;
        if state.step > 0 {
            // Keyed as the params are (a chunked one by its parts): both were chunked alike.
            let v: BTreeMap<_, _> = v_store
                .iter()
                .map(|(name, t)| (name.into_owned(), t.clone()))
                .collect();
            for (name, mt) in m_store.iter() {
                let vt = v.get(name.as_ref()).ok_or_else(|| {
                    Error::Invalid(format!(
                        "{label}: '{}{name}' has no second moment",
                        MOMENT_PREFIXES[0]
                    ))
                })?;
                optimizer
                    .moments
                    .insert(name.into_owned(), (mt.clone(), vt.clone()));
            }
        }
        let mut ema = Ema::new(state.settings.ema_decay);
        for (name, t) in ema_store.iter() {
            ema.shadows.insert(name.into_owned(), t.clone());
        }
        let metadata = metadata
            .into_iter()
            .filter(|(k, _)| k != CONFIG_KEY && k != TRAIN_KEY)
            .collect();
        Ok(Trainer {
            config: c,
            params,
            frozen,
            metadata,
            settings: state.settings,
            optimizer,
            ema,
            rng: Rng::from_state(state.rng),
            checkpointing: false,
            class_rows,
        })
    }
}
