//! The training state of either model (the AR model with its head, or the tokenizer):
//! parameters, AdamW moments, EMA, learning-rate schedule, step and RNG; one submit per step;
//! checkpoints that resume bit for bit.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{
    adamw_update, ar_loss, tokenizer_loss, ArBatch, ArDraws, ArRecipe, ClassRows, LoraSpec,
    MemoryPlan, TokenizerRecipe, Trains, CLASS_ROWS_KEY, CLASS_TABLE, LORA_KEY,
};
use crate::autograd::{Tape, Var};
use crate::io::{save_safetensors, save_safetensors_f16, WeightFile};
use crate::model::{
    ar_layer_weights, ar_parameters, decays, decoder_layer_weights, decoder_parameters,
    encoder_layer_weights, encoder_parameters, join_row_parts, HostTensor, MemoryEstimate,
    ModelConfig, ParamSpec, ParamStore, ParamVars,
};
use crate::optim::{AdamW, AdamWConfig, Ema, LrSchedule};
use crate::rng::Rng;
use crate::{ops, Error, Gpu, Result, Tensor};

pub use crate::model::CONFIG_KEY;
/// Metadata key of the training state (JSON) in checkpoints.
pub const TRAIN_KEY: &str = "bitdance.train";
/// Name prefix of the EMA weights in a checkpoint.
pub const EMA_PREFIX: &str = "ema.";
/// Name prefixes of the AdamW moments in a checkpoint.
pub const MOMENT_PREFIXES: [&str; 2] = ["optim.m.", "optim.v."];

mod resume;
mod saving;
pub use resume::ResumeLoad;
pub use saving::TensorStream;

/// The class table's spec.
fn class_table(c: &ModelConfig) -> Vec<ParamSpec> {
    ar_parameters(c)
        .into_iter()
        .filter(|s| s.name == CLASS_TABLE)
        .collect()
}

/// What is trained, with its loss recipe.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Task {
    /// The AR transformer and its diffusion head on cached tokens (the tokenizer frozen).
    Ar(ArRecipe),
    /// The tokenizer (encoder, quantizer, decoder) on images.
    Tokenizer(TokenizerRecipe),
}

impl Task {
    /// Which parameters of the AR model the task trains (a tokenizer run: every one).
    pub fn trains(&self) -> Trains {
        match self {
            Task::Ar(r) => r.trains,
            Task::Tokenizer(_) => Trains::Full,
        }
    }

    /// The parameters this task trains, by official name.
    pub fn parameters(&self, c: &ModelConfig) -> Vec<ParamSpec> {
        match self {
            Task::Ar(r) => match &r.trains {
                Trains::Full => ar_parameters(c),
                Trains::Embeddings => class_table(c),
                Trains::Lora(spec) => {
                    let mut specs = spec.parameters(c);
                    specs.extend(class_table(c));
                    specs
                }
            },
            Task::Tokenizer(_) => {
                let mut specs = encoder_parameters(&c.vae);
                specs.extend(decoder_parameters(&c.vae));
                specs
            }
        }
    }

    /// The frozen weights this task holds in 16 bits, for a LoRA or class-table run with
    /// `half_base` (none otherwise): the linear weights it does not train whose two sides are
    /// multiples of 4 (the 16-bit reads of x·Wᵀ and of the input gradient dy·W), and the
    /// autoencoder's convolution weights (it only encodes the dataset and decodes samples).
    pub fn half_weights(&self, c: &ModelConfig) -> BTreeSet<String> {
        let Task::Ar(r) = self else {
            return BTreeSet::new();
        };
        if !r.half_base || r.trains == Trains::Full {
            return BTreeSet::new();
        }
        let trained: BTreeSet<String> = self.parameters(c).into_iter().map(|s| s.name).collect();
        let layers: BTreeSet<String> = ar_layer_weights(c).into_iter().collect();
        ar_parameters(c)
            .into_iter()
            .filter(|s| layers.contains(&s.name) && !trained.contains(&s.name))
            .filter(|s| s.shape.len() == 2 && s.shape.iter().all(|d| d.is_multiple_of(4)))
            .map(|s| s.name)
            .chain(encoder_layer_weights(&c.vae))
            .chain(decoder_layer_weights(&c.vae))
            .collect()
    }

    /// The memory training `c` on batches of `batch` needs, with or without gradient
    /// `checkpointing` (the total of its `MemoryPlan`), counting every class row as trained.
    pub fn memory(&self, c: &ModelConfig, batch: usize, checkpointing: bool) -> MemoryEstimate {
        self.memory_with_class_rows(c, batch, checkpointing, None)
    }

    /// `memory` for a run that trains `class_rows` rows of the class table when it is a LoRA
    /// or class-table run (`MemoryPlan::with_class_rows`; `None`: every row).
    pub fn memory_with_class_rows(
        &self,
        c: &ModelConfig,
        batch: usize,
        checkpointing: bool,
        class_rows: Option<usize>,
    ) -> MemoryEstimate {
        let general = match self {
            Task::Ar(recipe) => c.ar_training_memory(batch, recipe.diff_batch_mul),
            Task::Tokenizer(_) => c.tokenizer_training_memory(batch),
        };
        let what = match self {
            Task::Ar(r) if r.trains != Trains::Full => {
                format!("{} ({})", general.what, r.trains.describe())
            }
            _ => general.what,
        };
        MemoryEstimate {
            what,
            parameters: general.parameters,
            bytes: MemoryPlan::with_class_rows(self, c, batch, checkpointing, class_rows).total(),
        }
    }

    /// The command that trains this task, for messages.
    pub fn command(&self) -> &'static str {
        match self {
            Task::Ar(_) => "bitdance train",
            Task::Tokenizer(_) => "bitdance train-tokenizer",
        }
    }
}

/// Training hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    /// What is trained and its loss recipe.
    pub task: Task,
    /// AdamW settings.
    pub adamw: AdamWConfig,
    /// Learning-rate schedule over optimizer steps.
    pub schedule: LrSchedule,
    /// EMA decay per step.
    pub ema_decay: f32,
    /// Seed of the host RNG (perturbation, dropout, t, noise).
    pub seed: u64,
}

/// What one step reports.
#[derive(Clone, Debug, PartialEq)]
pub struct StepStats {
    /// Optimizer steps taken so far (1 after the first).
    pub step: u64,
    /// The loss of this step's batch (before the update).
    pub loss: f32,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
    /// Learning rate used.
    pub lr: f32,
    /// Loss terms worth logging besides the total (e.g. the tokenizer's L1 and MSE).
    pub terms: Vec<(&'static str, f32)>,
}

/// Serialized scalar state of a run.
#[derive(Serialize, Deserialize)]
struct SavedState {
    settings: TrainSettings,
    step: u64,
    rng: [u64; 4],
}

/// Reads `tensors` back to the host, the row chunks of a parameter (see `ParamStore::iter`)
/// joined under its name.
async fn to_host<'a>(
    tensors: impl IntoIterator<Item = (Cow<'a, str>, &'a Tensor)>,
) -> Result<Vec<HostTensor>> {
    let mut host = Vec::new();
    for (name, t) in tensors {
        host.push((name.into_owned(), t.shape().to_vec(), t.to_vec_f32().await?));
    }
    join_row_parts(host)
}

/// Refuses a state holding NaN or infinity, naming the first such tensor, so that what is
/// written is always a state training can resume from (the previous file stays in place).
fn ensure_finite(step: u64, host: &[HostTensor]) -> Result<()> {
    for (name, _, values) in host {
        let bad = values.iter().filter(|v| !v.is_finite()).count();
        if bad > 0 {
            return Err(Error::Invalid(format!(
                "the training state at step {step} is not finite: '{name}' holds {bad} NaN or \
                 infinite value(s) of {}; nothing was written, so the checkpoint on disk is \
                 the last finite state",
                values.len()
            )));
        }
    }
    Ok(())
}

/// The scalar state of the run in a checkpoint, or an error naming the file and what is wrong.
fn saved_state(file: &WeightFile<'_>) -> Result<SavedState> {
    let json = file.metadata().get(TRAIN_KEY).cloned().ok_or_else(|| {
        Error::Invalid(format!(
            "{}: not a bitdance training checkpoint (no '{TRAIN_KEY}' metadata)",
            file.label()
        ))
    })?;
    serde_json::from_str(&json)
        .map_err(|e| Error::Invalid(format!("{}: training state: {e}", file.label())))
}

/// A model in training: the trainable store (the task's parameters), a frozen one (for the AR
/// task the autoencoder, saved with the model so a checkpoint is a complete state dict),
/// AdamW, EMA, schedule and RNG.
pub struct Trainer {
    /// Model config.
    pub config: ModelConfig,
    /// Trainable parameters by official name.
    pub params: ParamStore,
    /// Frozen parameters saved alongside (e.g. `vae.*`).
    pub frozen: ParamStore,
    /// Hyper-parameters.
    pub settings: TrainSettings,
    /// Extra string metadata written into checkpoints and exported models (e.g. class names).
    pub metadata: BTreeMap<String, String>,
    /// Gradient checkpointing: the AR steps keep no block activations and recompute them in
    /// the backward (the same gradients, less memory, about a third more compute). A choice of
    /// the run, not of its results: not saved, and free to change when a run resumes.
    pub checkpointing: bool,
    optimizer: AdamW,
    ema: Ema,
    rng: Rng,
    /// The class rows a LoRA or class-table run trains, once `train_class_rows` chose them:
    /// `params` then holds those rows alone under `CLASS_TABLE`.
    class_rows: Option<ClassRows>,
}

impl Trainer {
    /// Starts a run from `params` (every parameter the task trains); the EMA starts as a copy
    /// of them, as the official trainer does.
    pub fn new(
        config: ModelConfig,
        params: ParamStore,
        frozen: ParamStore,
        settings: TrainSettings,
    ) -> Result<Self> {
        let specs = settings.task.parameters(&config);
        let mut params = params;
        if let Task::Ar(ArRecipe {
            trains: Trains::Lora(lora),
            ..
        }) = &settings.task
        {
            lora.validate(&config)?;
            // A new LoRA run starts its adapters; a resumed one brings them.
            let adapters = lora.initial_adapters(&params.gpu()?, &config, settings.seed)?;
            for (name, t) in adapters.iter() {
                if !params.contains(&name) {
                    params.insert(&name, t.clone());
                }
            }
        }
        for spec in &specs {
            params.check_shape(&spec.name, &spec.shape)?;
        }
        // What the task does not train (the AR weights of an embeddings run) is held frozen.
        let (params, untrained) = params.partition(|name| specs.iter().any(|s| s.name == name));
        let mut frozen = frozen;
        frozen.extend(untrained);
        let mut ema = Ema::new(settings.ema_decay);
        for (name, t) in params.iter() {
            ema.shadows.insert(name.into_owned(), ops::duplicate(t)?);
        }
        Ok(Self {
            config,
            params,
            frozen,
            optimizer: AdamW::new(settings.adamw),
            ema,
            rng: Rng::new(settings.seed),
            settings,
            metadata: BTreeMap::new(),
            checkpointing: false,
            class_rows: None,
        })
    }

    /// Trains only the class-table rows of `classes` and the null row (a LoRA or class-table
    /// run; a run that trains every weight keeps the whole table): gradients, moments and EMA
    /// for those rows alone, the full table joined again in checkpoints, models and sampling.
    /// Chosen before the first step (a resumed run keeps its rows; other classes are refused).
    pub fn train_class_rows(&mut self, classes: &[u32]) -> Result<()> {
        let Task::Ar(recipe) = self.settings.task else {
            return Ok(());
        };
        if recipe.trains == Trains::Full {
            return Ok(());
        }
        if let Some(rows) = &self.class_rows {
            rows.positions(classes)?;
            return Ok(());
        }
        if self.optimizer.step > 0 {
            // A run from before the choice trains its whole table to the end.
            return Ok(());
        }
        let base = self.params.remove(CLASS_TABLE);
        let rows = ClassRows::new(classes, self.config.num_classes as u32, base)?;
        let table = rows.gather()?;
        self.ema.shadows.retain(|name, _| {
            crate::model::split_part_name(name).map_or(name.as_str(), |(base, _)| base)
                != CLASS_TABLE
        });
        self.ema
            .shadows
            .insert(CLASS_TABLE.to_string(), ops::duplicate(&table)?);
        self.params.insert(CLASS_TABLE, table);
        self.metadata.insert(
            CLASS_ROWS_KEY.to_string(),
            serde_json::to_string(&rows.ids).map_err(|e| Error::Invalid(e.to_string()))?,
        );
        self.class_rows = Some(rows);
        Ok(())
    }

    /// The class ids whose table rows train: those `train_class_rows` chose, or `None` when
    /// the whole table trains.
    pub fn class_rows(&self) -> Option<&[u32]> {
        self.class_rows.as_ref().map(|r| r.ids.as_slice())
    }

    /// Optimizer steps taken so far.
    pub fn step_count(&self) -> u64 {
        self.optimizer.step
    }

    /// The EMA weights by official name.
    pub fn ema_weights(&self) -> &BTreeMap<String, Tensor> {
        &self.ema.shadows
    }

    /// One AR training step on `batch`: loss, backward, clipped AdamW, EMA, all in one submit;
    /// the loss and grad norm are read back. A non-finite loss is an error naming the step.
    pub async fn step(&mut self, batch: &ArBatch<'_>) -> Result<StepStats> {
        let Task::Ar(recipe) = self.settings.task else {
            return Err(Error::Invalid(
                "this run trains the tokenizer, not the AR model".into(),
            ));
        };
        let mut draws = ArDraws::sample(&self.config, batch, &recipe, &mut self.rng);
        if let Some(rows) = &self.class_rows {
            // The small table's rows: the draws keep their class ids for anyone reading them.
            draws.classes = rows.positions(&draws.classes)?;
        }
        let tape = if self.checkpointing {
            Tape::recomputing()
        } else {
            Tape::new()
        };
        let vars = ParamVars::with_constants(&tape, &self.params, &self.frozen);
        if let Some(lora) = recipe.trains.lora() {
            lora.attach(&tape, &vars, &self.config)?;
        }
        let loss = ar_loss(&tape, &self.config, &vars, batch, &draws, &recipe)?;
        let used = vars.used();
        drop(vars);
        self.apply(&tape, used, loss, &[]).await
    }

    /// One tokenizer training step on `images` [B, 3, R, R] in [-1, 1] (host values).
    pub async fn step_tokenizer(&mut self, images: &[f32]) -> Result<StepStats> {
        let Task::Tokenizer(recipe) = self.settings.task else {
            return Err(Error::Invalid(
                "this run trains the AR model, not the tokenizer".into(),
            ));
        };
        let r = self.config.resolution;
        let b = images.len() / (3 * r * r);
        let gpu = self.params.gpu()?;
        let tape = Tape::new();
        let vars = ParamVars::new(&tape, &self.params, true);
        let x = tape.constant(Tensor::from_f32(&gpu, &[b, 3, r, r], images)?);
        let losses = tokenizer_loss(&tape, &self.config.vae, &vars, x, &recipe)?;
        let terms = [("l1", losses.l1), ("mse", losses.mse)];
        let used = vars.used();
        drop(vars);
        self.apply(&tape, used, losses.total, &terms).await
    }

    /// Backward of `loss` to the parameters `used` (name -> tape value), the AdamW update with
    /// the decay rule and the EMA update in one pass; one readback of the loss, the grad norm
    /// and `terms`.
    async fn apply(
        &mut self,
        tape: &Tape,
        used: BTreeMap<String, Var>,
        loss: Var,
        terms: &[(&'static str, Var)],
    ) -> Result<StepStats> {
        let lr = self.settings.schedule.at(self.optimizer.step);
        let clip = adamw_update(
            &mut self.optimizer,
            tape,
            loss,
            &used,
            lr,
            decays,
            Some(&mut self.ema),
        )?;
        // One readback: [loss, clip factor, grad norm, terms...].
        let mut parts = vec![tape.value(loss), clip];
        parts.extend(terms.iter().map(|(_, v)| tape.value(*v)));
        let refs: Vec<&Tensor> = parts.iter().collect();
        let report = ops::concat(&refs, 0)?.to_vec_f32().await?;
        let (loss_value, norm) = (report[0], report[2]);
        if !loss_value.is_finite() {
            return Err(Error::Invalid(format!(
                "training diverged: the loss is {loss_value} at step {} (grad norm {norm}); \
                 the last checkpoint written is the last good state",
                self.optimizer.step
            )));
        }
        Ok(StepStats {
            step: self.optimizer.step,
            loss: loss_value,
            grad_norm: norm,
            lr,
            terms: terms
                .iter()
                .zip(&report[3..])
                .map(|((n, _), v)| (*n, *v))
                .collect(),
        })
    }

    /// The checkpoint as safetensors bytes (`checkpoint_stream`, collected).
    pub async fn checkpoint(&self) -> Result<Vec<u8>> {
        self.checkpoint_stream()?.to_bytes().await
    }

    /// The model alone as safetensors bytes (`model_stream`, collected).
    pub async fn export_model(&self, ema: bool, half: bool) -> Result<Vec<u8>> {
        self.model_stream(ema, half)?.to_bytes().await
    }

    /// A LoRA run's adapters file: the adapters (EMA or raw) and the class table, with the
    /// spec, the config and the run's metadata (class names, the base model's SHA-256): a few
    /// MB where the merged model is the whole model. `None` for other runs.
    pub async fn export_adapters(&self, ema: bool) -> Result<Option<Vec<u8>>> {
        let Some(lora) = self.lora() else {
            return Ok(None);
        };
        let mut host = to_host(self.trained(ema)).await?;
        if let Some(rows) = &self.class_rows {
            rows.join_host(&mut host, &[CLASS_TABLE.to_string()])
                .await?;
        }
        let spec = serde_json::to_string(&lora).map_err(|e| Error::Invalid(e.to_string()))?;
        let extra = BTreeMap::from([(LORA_KEY.to_string(), spec)]);
        self.save_host(&host, extra, false).map(Some)
    }

    /// The trained weights by name (a chunked one by its parts): their EMA, or as trained.
    fn trained(&self, ema: bool) -> Vec<(Cow<'_, str>, &Tensor)> {
        if ema {
            self.ema
                .shadows
                .iter()
                .map(|(n, t)| (Cow::Borrowed(n.as_str()), t))
                .collect()
        } else {
            self.params.iter().collect()
        }
    }

    /// Safetensors bytes of `host` tensors (refused if one is not finite) with the run's
    /// metadata, its config and `extra`; in 16 bits with `half`.
    fn save_host(
        &self,
        host: &[HostTensor],
        extra: BTreeMap<String, String>,
        half: bool,
    ) -> Result<Vec<u8>> {
        ensure_finite(self.optimizer.step, host)?;
        let meta = self.model_metadata(extra);
        let views: Vec<(&str, &[usize], &[f32])> = host
            .iter()
            .map(|(n, s, d)| (n.as_str(), s.as_slice(), d.as_slice()))
            .collect();
        if half {
            save_safetensors_f16(&views, Some(&meta))
        } else {
            save_safetensors(&views, Some(&meta))
        }
    }

    /// A store of the EMA weights (or the raw ones) plus the frozen ones, for sampling; a LoRA
    /// run's adapters merged into the weights they adapt.
    pub fn sampling_store(&self, ema: bool) -> Result<ParamStore> {
        let mut store = self.frozen.clone();
        if ema {
            for (name, t) in &self.ema.shadows {
                store.insert(name, t.clone());
            }
        } else {
            store.extend(self.params.clone());
        }
        if let Some(rows) = &self.class_rows {
            let trained = store.remove(CLASS_TABLE);
            store.insert_chunks(CLASS_TABLE, rows.joined(trained.get(CLASS_TABLE)?)?);
        }
        match self.lora() {
            Some(lora) => lora.merged(&store, &self.config),
            None => Ok(store),
        }
    }

    /// The LoRA spec of a LoRA run.
    pub fn lora(&self) -> Option<LoraSpec> {
        match &self.settings.task {
            Task::Ar(recipe) => recipe.trains.lora().copied(),
            Task::Tokenizer(_) => None,
        }
    }

    /// Resumes a run from `checkpoint` (written by `checkpoint`) in memory: continuing gives
    /// exactly the steps an uninterrupted run would have taken. `config`, when given, must
    /// match the checkpoint's. (`ResumeLoad` reads it tensor by tensor.)
    pub fn resume(gpu: &Gpu, file: &WeightFile<'_>, config: Option<&ModelConfig>) -> Result<Self> {
        ResumeLoad::new(gpu, file, config)?.load_in_memory()
    }

    /// The settings a checkpoint's run was started with (to compare with the options of a
    /// resume before anything is loaded), or an error naming the file.
    pub fn stored_settings(file: &WeightFile<'_>) -> Result<TrainSettings> {
        Ok(saved_state(file)?.settings)
    }
}
