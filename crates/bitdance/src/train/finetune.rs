//! A fine-tuning run as every front end drives it (`bitdance finetune`, the web worker, the
//! desktop worker): the dataset's tokens encoded once by the frozen tokenizer, batches drawn
//! from (seed, step) so a resumed run takes exactly the steps an uninterrupted one would, the
//! class names and batch options recorded in the checkpoint, one log line format, one sample
//! grid. Where the bytes go (files, OPFS) is the front end's business.

use image::RgbImage;

use crate::io::WeightFile;
use crate::model::{
    decode_tokens, generate_tokens, to_rgb8, CfgSchedule, SampleSettings, CLASSES_KEY,
};
use crate::rng::Rng;
use crate::studio::{tile_grid, ClassNames, ModelCard};
use crate::train::{
    ArBatch, ClassPlan, ClassPolicy, DataOptions, FinetuneLoad, LatentCache, StepStats,
    TrainSettings, Trainer, TrainingImages,
};
use crate::{Error, Gpu, Result};

/// The checkpoint of a run directory (weights, moments, EMA, step, RNG, settings).
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
/// The model of a run directory (EMA weights and autoencoder, official names).
pub const MODEL_FILE: &str = "model.safetensors";

/// The adapters file a LoRA run writes beside its model (`Trainer::export_adapters`).
pub const ADAPTERS_FILE: &str = "adapters.safetensors";
/// The step log of a run directory: one JSON object per step (`log_entry`).
pub const LOG_FILE: &str = "log.jsonl";
/// The folder of a run directory's sample grids (`step-0000100.png`).
pub const SAMPLES_DIR: &str = "samples";
/// Most classes a sample grid shows.
pub const MAX_SAMPLE_CLASSES: usize = 16;

/// The classes of a model or checkpoint file: its stored names, ImageNet's for 1000 classes,
/// else the indices.
pub fn classes_of(file: &WeightFile<'_>) -> Result<ClassNames> {
    Ok(ModelCard::of_file(file.label(), file)?.classes)
}

/// A new run from a model file (SHA-256 `base_sha256`, recorded as `bitdance.base_sha256` in
/// its checkpoints, adapters and model, as `bitdance finetune --init` records it) whose dataset
/// has the class folders `folders`: the plan that maps them onto its classes by `policy` (new
/// classes grow the table), and the trainer. The file's bytes are in memory; `FinetuneLoad`
/// reads them tensor by tensor.
pub fn start_finetune(
    gpu: &Gpu,
    file: &WeightFile<'_>,
    base_sha256: &str,
    folders: &[String],
    policy: ClassPolicy,
    settings: TrainSettings,
) -> Result<(ClassPlan, Trainer)> {
    FinetuneLoad::new(gpu, file, None, base_sha256, folders, policy, settings)?.load_in_memory()
}

/// The plan of a resumed run (`Trainer::resume` keeps the class names): its folders mapped
/// onto the run's classes (the names its start added included), which must add none (other
/// folders than the run started with are refused by name).
pub fn resumed_plan(
    trainer: &Trainer,
    folders: &[String],
    policy: ClassPolicy,
) -> Result<ClassPlan> {
    let stored = trainer
        .metadata
        .get(CLASSES_KEY)
        .and_then(|names| serde_json::from_str(names).ok());
    let names = ClassNames::for_model(trainer.config.num_classes, stored);
    let plan = ClassPlan::new(&names, folders, policy)?;
    if plan.added() > 0 {
        let new: Vec<&str> = plan
            .folders
            .iter()
            .filter(|f| f.new)
            .map(|f| f.folder.as_str())
            .collect();
        return Err(Error::Invalid(format!(
            "the folders {new:?} are not classes of the run; resume it with the images it \
             started with"
        )));
    }
    Ok(plan)
}

/// One log line of a step (`LOG_FILE`): step, loss, rate, gradient norm, the loss terms and
/// the throughput (`steps_per_s` over the session, `batch` images per step).
pub fn log_entry(stats: &StepStats, steps_per_s: f64, batch: usize) -> serde_json::Value {
    let mut entry = serde_json::json!({"step": stats.step, "loss": stats.loss,
        "lr": stats.lr, "grad_norm": stats.grad_norm, "steps_per_s": steps_per_s,
        "images_per_s": steps_per_s * batch as f64});
    for (name, v) in &stats.terms {
        entry[*name] = serde_json::json!(v);
    }
    entry
}

/// One image of each class of `classes` (the first `MAX_SAMPLE_CLASSES`; class 0 when empty)
/// from the trainer's EMA weights, seed 0, tiled into a grid.
pub async fn sample_grid(
    trainer: &Trainer,
    classes: &[u32],
    settings: &SampleSettings,
) -> Result<RgbImage> {
    let c = &trainer.config;
    let mut ids: Vec<u32> = classes.iter().copied().take(MAX_SAMPLE_CLASSES).collect();
    if ids.is_empty() {
        ids.push(0);
    }
    let store = trainer.sampling_store(true)?;
    let tokens = generate_tokens(c, &store, &ids, settings, &mut Rng::new(0), &mut |_, _| {})?;
    let out = decode_tokens(c, &store, &tokens).await?;
    let r = c.resolution;
    Ok(tile_grid(
        &to_rgb8(&out.image, out.count, r, r),
        out.count,
        r,
    ))
}

/// The sampling settings of the grids: `head_steps` at guidance `cfg`, linear schedule.
pub fn sample_settings(head_steps: usize, cfg: f32) -> SampleSettings {
    SampleSettings {
        cfg,
        schedule: CfgSchedule::Linear,
        head_steps,
    }
}

/// A run in progress: the trainer, the dataset's tokens and how batches are drawn.
pub struct FinetuneRun {
    /// The training state.
    pub trainer: Trainer,
    /// Which class each of the dataset's folders trains.
    pub plan: ClassPlan,
    cache: LatentCache,
    data: DataOptions,
    tokens: Vec<f32>,
}

impl FinetuneRun {
    /// The warning the apps show before the first step when this run may make the model
    /// forget its classes (`ClassPlan::forgetting_note`).
    pub fn forgetting_note(&self) -> Option<String> {
        (self.plan).forgetting_note(&self.trainer.settings.task.trains())
    }

    /// The run of `trainer` over a dataset already encoded (`cache`, labels indexing the
    /// plan's folders): the labels become the plan's class ids, the class names and the batch
    /// options are recorded (a `resumed` run's recorded options must match).
    pub fn new(
        mut trainer: Trainer,
        mut cache: LatentCache,
        plan: ClassPlan,
        data: DataOptions,
        resumed: bool,
    ) -> Result<Self> {
        let c = &trainer.config;
        if plan.names.len() != c.num_classes {
            return Err(Error::Invalid(format!(
                "the class plan names {} classes; the model has {}",
                plan.names.len(),
                c.num_classes
            )));
        }
        if cache.is_empty() {
            return Err(Error::Invalid("the dataset holds no image".into()));
        }
        plan.relabel(&mut cache)?;
        plan.record(&mut trainer)?;
        trainer.train_class_rows(&plan.trained())?;
        data.record(&mut trainer, resumed, "the fine-tuning run")?;
        Ok(Self {
            trainer,
            plan,
            cache,
            data,
            tokens: Vec::new(),
        })
    }

    /// Encodes `images` with the trainer's frozen tokenizer (`progress(done, total)` after each
    /// pass), then makes the run as `new` does.
    pub async fn encode(
        trainer: Trainer,
        images: &TrainingImages,
        plan: ClassPlan,
        data: DataOptions,
        resumed: bool,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Self> {
        let c = &trainer.config;
        if images.is_empty() {
            return Err(Error::Invalid("the dataset holds no image".into()));
        }
        if images.resolution != c.resolution {
            return Err(Error::Invalid(format!(
                "the dataset was read at {0}x{0}; the model makes {1}x{1} images",
                images.resolution, c.resolution
            )));
        }
        let planned: Vec<&str> = plan.folders.iter().map(|f| f.folder.as_str()).collect();
        if planned != images.classes {
            return Err(Error::Invalid(format!(
                "the class plan's folders {planned:?} are not the dataset's {:?}",
                images.classes
            )));
        }
        let cache = LatentCache::encode(c, &trainer.frozen, images, progress).await?;
        Self::new(trainer, cache, plan, data, resumed)
    }

    /// Optimizer steps taken so far.
    pub fn step_count(&self) -> u64 {
        self.trainer.step_count()
    }

    /// Steps of the whole run.
    pub fn total_steps(&self) -> u64 {
        self.trainer.settings.schedule.total
    }

    /// Whether every step of the schedule has been taken.
    pub fn is_done(&self) -> bool {
        self.step_count() >= self.total_steps()
    }

    /// One optimizer step on the batch of the current step.
    pub async fn step(&mut self) -> Result<StepStats> {
        let step = self.trainer.step_count();
        let seed = self.trainer.settings.seed;
        let labels = self.cache.sample_batch(
            self.data.batch,
            seed,
            step,
            self.data.flips,
            &mut self.tokens,
        );
        let batch = ArBatch {
            tokens: &self.tokens,
            classes: &labels,
        };
        self.trainer.step(&batch).await
    }

    /// One image per trained class (up to `MAX_SAMPLE_CLASSES`) from the EMA weights, tiled.
    pub async fn samples(&self, settings: &SampleSettings) -> Result<RgbImage> {
        sample_grid(&self.trainer, &self.plan.trained(), settings).await
    }
}
