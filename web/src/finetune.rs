//! Fine-tuning in the browser with the core's trainer, as `bitdance finetune` runs it: the
//! dataset's tokens encoded once by the frozen tokenizer, batches drawn from (seed, step) so a
//! run resumed from its checkpoint takes exactly the steps an uninterrupted one would, the
//! official AR recipe, AdamW with its schedule, EMA. The worker drives it a step at a time and
//! keeps the checkpoints (atomically, in OPFS).

use std::cell::RefCell;

use bitdance::io::WeightFile;
use bitdance::model::{
    ar_parameters, generate_images, load_autoencoder, stored_config, to_rgb8, CfgSchedule,
    ParamStore, SampleSettings, CLASSES_KEY, DEFAULT_MODEL_BYTES, DEFAULT_MODEL_LABEL,
};
use bitdance::optim::{AdamWConfig, LrSchedule};
use bitdance::rng::Rng;
use bitdance::studio::tile_grid;
use bitdance::train::{
    class_display_name, ArBatch, ArRecipe, LatentCache, Task, TrainSettings, Trainer,
    TrainingImages,
};
use serde::Deserialize;
use wasm_bindgen::prelude::*;
use web_sys::Blob;

use crate::blob::{read_range, size};
use crate::js;

/// Most bytes of a starting model read into memory: fine-tuning holds the whole model (f32
/// weights, gradients, two moments, EMA) anyway, and a larger file would not fit a tab.
const MAX_BASE_BYTES: u64 = 512 << 20;

/// What the page chose for a run (JSON from the worker).
#[derive(Clone, Copy, Debug, Deserialize)]
pub struct RunOptions {
    /// Total optimizer steps.
    pub steps: u64,
    /// Images per step.
    pub batch: usize,
    /// Peak learning rate.
    pub lr: f32,
    /// Linear warmup steps.
    pub warmup: u64,
    /// EMA decay per step.
    pub ema: f32,
    /// Seed of every draw.
    pub seed: u64,
    /// Mirror half the images at random (off for digits and text).
    pub flips: bool,
}

impl RunOptions {
    /// The options in `json` (from the worker), checked.
    fn parse(json: &str) -> Result<Self, JsError> {
        let o: RunOptions =
            serde_json::from_str(json).map_err(|e| js(format!("fine-tuning options: {e}")))?;
        let valid =
            o.steps >= 1 && o.batch >= 1 && o.lr > 0.0 && o.lr < 1.0 && (0.0..1.0).contains(&o.ema);
        if !valid {
            return Err(js(format!(
                "fine-tuning options: steps and batch must be at least 1, the learning rate in (0, 1), the EMA decay in [0, 1) (got {o:?})"
            )));
        }
        Ok(o)
    }
}

/// A run in progress: the trainer, the dataset's tokens and how batches are drawn.
struct Run {
    trainer: Trainer,
    cache: LatentCache,
    batch: usize,
    flips: bool,
    classes: usize,
    tokens: Vec<f32>,
}

thread_local! {
    static DATA: RefCell<Option<TrainingImages>> = const { RefCell::new(None) };
    static RUN: RefCell<Option<Run>> = const { RefCell::new(None) };
}

/// Starts a new dataset of images at `resolution` (the model's), replacing any other.
#[wasm_bindgen]
pub fn finetune_new_dataset(resolution: u32) {
    DATA.with(|d| *d.borrow_mut() = Some(TrainingImages::new(resolution as usize)));
}

/// Adds a PNG or JPEG (`name`, for errors) of class folder `class` to the dataset; returns the
/// number of images so far.
#[wasm_bindgen]
pub fn finetune_add_image(class: &str, name: &str, bytes: &[u8]) -> Result<u32, JsError> {
    DATA.with(|d| {
        let mut d = d.borrow_mut();
        let data = d
            .as_mut()
            .ok_or_else(|| js("no dataset: call finetune_new_dataset first"))?;
        let id = data.class_id(class);
        data.push_encoded(&format!("{class}/{name}"), bytes, id)
            .map_err(js)?;
        Ok(data.len() as u32)
    })
}

fn settings(o: &RunOptions) -> TrainSettings {
    TrainSettings {
        task: Task::Ar(ArRecipe::default()),
        adamw: AdamWConfig::default(),
        schedule: LrSchedule {
            peak: o.lr,
            min_lr: o.lr / 10.0,
            warmup: o.warmup,
            decay_start: o.warmup,
            total: o.steps,
        },
        ema_decay: o.ema,
        seed: o.seed,
    }
}

/// The bytes of a starting model: the embedded default when `base` is absent.
async fn base_bytes(base: Option<Blob>) -> Result<Vec<u8>, JsError> {
    match base {
        None => Ok(DEFAULT_MODEL_BYTES.to_vec()),
        Some(blob) if size(&blob) > MAX_BASE_BYTES => Err(js(format!(
            "the starting model has {} MiB; fine-tuning in the browser takes models up to {} MiB",
            size(&blob) >> 20,
            MAX_BASE_BYTES >> 20
        ))),
        Some(blob) => read_range(&blob, 0, size(&blob)).await,
    }
}

/// Memory the run needs, as JSON `{bytes, parameters}` for the page's estimate, for a model of
/// the base's config (read from its header) trained on batches of `batch`.
#[wasm_bindgen]
pub async fn finetune_estimate(
    base: Option<Blob>,
    name: String,
    batch: u32,
) -> Result<String, JsError> {
    let card = match base {
        Some(blob) => {
            let file = crate::models::header_of(&name, &blob).await?;
            bitdance::studio::ModelCard::of_file(&name, &file).map_err(js)?
        }
        None => {
            let file =
                WeightFile::parse_named(DEFAULT_MODEL_LABEL, DEFAULT_MODEL_BYTES).map_err(js)?;
            bitdance::studio::ModelCard::of_file(DEFAULT_MODEL_LABEL, &file).map_err(js)?
        }
    };
    let m = Task::Ar(ArRecipe::default()).memory(&card.config, batch as usize);
    Ok(serde_json::json!({"bytes": m.bytes, "parameters": m.parameters}).to_string())
}

/// Encodes the dataset and makes the run current; returns JSON `{images, classes, step, steps}`.
async fn begin(
    trainer: Trainer,
    o: &RunOptions,
    progress: &js_sys::Function,
) -> Result<String, JsError> {
    // Moved out, not copied: once encoded, the pixels are not needed again.
    let data = DATA
        .with(|d| d.borrow_mut().take())
        .ok_or_else(|| js("no dataset: add the images first"))?;
    if data.is_empty() {
        return Err(js("the dataset holds no image"));
    }
    let c = &trainer.config;
    if data.classes.len() > c.num_classes {
        return Err(js(format!(
            "the folder has {} class folders; the model has {} classes",
            data.classes.len(),
            c.num_classes
        )));
    }
    if data.resolution != c.resolution {
        return Err(js(format!(
            "the dataset was read at {0}x{0}; the model makes {1}x{1} images",
            data.resolution, c.resolution
        )));
    }
    let cache = LatentCache::encode(c, &trainer.frozen, &data, &mut |done, total| {
        let _ = progress.call2(
            &JsValue::NULL,
            &(done as f64).into(),
            &(total as f64).into(),
        );
    })
    .await
    .map_err(js)?;
    let info = serde_json::json!({
        "images": data.len(),
        "classes": data.classes,
        "step": trainer.step_count(),
        "steps": trainer.settings.schedule.total,
    });
    let run = Run {
        trainer,
        cache,
        batch: o.batch,
        flips: o.flips,
        classes: data.classes.len(),
        tokens: Vec::new(),
    };
    RUN.with(|r| *r.borrow_mut() = Some(run));
    Ok(info.to_string())
}

/// Starts a run from `base` (a model file; the embedded default when absent) on the dataset,
/// with `options` (JSON `RunOptions`); `progress(done, total)` while the dataset is encoded.
#[wasm_bindgen]
pub async fn finetune_start(
    base: Option<Blob>,
    name: String,
    options: &str,
    progress: js_sys::Function,
) -> Result<String, JsError> {
    let o = RunOptions::parse(options)?;
    let gpu = crate::gpu().await.map_err(js)?;
    let label = if name.is_empty() {
        DEFAULT_MODEL_LABEL.to_string()
    } else {
        name
    };
    let bytes = base_bytes(base).await?;
    let file = WeightFile::parse_named(&label, &bytes).map_err(js)?;
    let c = match stored_config(&file).map_err(js)? {
        Some(c) => c,
        None => {
            bitdance::studio::ModelCard::of_file(&label, &file)
                .map_err(js)?
                .config
        }
    };
    let params = ParamStore::from_weights(&gpu, &file, &ar_parameters(&c)).map_err(js)?;
    let frozen = load_autoencoder(&gpu, &c.vae, &file).map_err(js)?;
    let mut trainer = Trainer::new(c, params, frozen, settings(&o)).map_err(js)?;
    let names: Vec<String> = DATA.with(|d| {
        d.borrow()
            .as_ref()
            .map(|d| d.classes.iter().map(|n| class_display_name(n)).collect())
            .unwrap_or_default()
    });
    trainer.metadata.insert(
        CLASSES_KEY.to_string(),
        serde_json::to_string(&names).map_err(js)?,
    );
    begin(trainer, &o, &progress).await
}

/// Resumes the run a checkpoint (`bitdance finetune`'s format) holds, on the same dataset and
/// options it started with: the steps that follow are those an uninterrupted run takes.
#[wasm_bindgen]
pub async fn finetune_resume(
    checkpoint: Blob,
    options: &str,
    progress: js_sys::Function,
) -> Result<String, JsError> {
    let o = RunOptions::parse(options)?;
    let gpu = crate::gpu().await.map_err(js)?;
    let bytes = read_range(&checkpoint, 0, size(&checkpoint)).await?;
    let file = WeightFile::parse_named("the fine-tuning checkpoint", &bytes).map_err(js)?;
    let stored = Trainer::stored_settings(&file).map_err(js)?;
    if stored != settings(&o) {
        return Err(js(
            "the checkpoint was written by a run with other settings; start a new run",
        ));
    }
    let mut trainer = Trainer::resume(&gpu, &file, None).map_err(js)?;
    if let Some(names) = file.metadata().get(CLASSES_KEY) {
        trainer
            .metadata
            .insert(CLASSES_KEY.to_string(), names.clone());
    }
    begin(trainer, &o, &progress).await
}

/// One optimizer step; returns JSON `{step, loss, grad_norm, lr}`.
#[wasm_bindgen]
pub async fn finetune_step() -> Result<String, JsError> {
    let mut run = RUN
        .with(|r| r.borrow_mut().take())
        .ok_or_else(|| js("no fine-tuning run"))?;
    let step = run.trainer.step_count();
    let seed = run.trainer.settings.seed;
    let labels = run
        .cache
        .sample_batch(run.batch, seed, step, run.flips, &mut run.tokens);
    let batch = ArBatch {
        tokens: &run.tokens,
        classes: &labels,
    };
    let stats = run.trainer.step(&batch).await;
    RUN.with(|r| *r.borrow_mut() = Some(run));
    let s = stats.map_err(js)?;
    Ok(
        serde_json::json!({"step": s.step, "loss": s.loss, "grad_norm": s.grad_norm, "lr": s.lr})
            .to_string(),
    )
}

async fn with_run<T>(f: impl AsyncFnOnce(&Run) -> Result<T, JsError>) -> Result<T, JsError> {
    let run = RUN
        .with(|r| r.borrow_mut().take())
        .ok_or_else(|| js("no fine-tuning run"))?;
    let out = f(&run).await;
    RUN.with(|r| *r.borrow_mut() = Some(run));
    out
}

/// The run's checkpoint (weights, moments, EMA, step, RNG, settings) as safetensors bytes.
#[wasm_bindgen]
pub async fn finetune_checkpoint() -> Result<Vec<u8>, JsError> {
    with_run(async |run| run.trainer.checkpoint().await.map_err(js)).await
}

/// The fine-tuned model (EMA weights and the autoencoder, official names, its config and class
/// names) as safetensors bytes, loadable by the studio, the CLI and the official code.
#[wasm_bindgen]
pub async fn finetune_export() -> Result<Vec<u8>, JsError> {
    with_run(async |run| run.trainer.export_model(true, false).await.map_err(js)).await
}

/// One image per trained class (up to 16) from the EMA weights, tiled: RGBA bytes and the
/// grid's width (the height follows).
#[wasm_bindgen]
pub async fn finetune_samples(steps: u32, cfg: f32) -> Result<js_sys::Array, JsError> {
    with_run(async |run| {
        let c = &run.trainer.config;
        let ids: Vec<u32> = (0..run.classes.min(16) as u32).collect();
        let settings = SampleSettings {
            cfg,
            schedule: CfgSchedule::Linear,
            head_steps: steps as usize,
        };
        let store = run.trainer.sampling_store(true);
        let out = generate_images(c, &store, &ids, &settings, &mut Rng::new(0), &mut |_, _| {})
            .await
            .map_err(js)?;
        let r = c.resolution;
        let grid = tile_grid(&to_rgb8(&out.image, out.count, r, r), out.count, r);
        let width = grid.width();
        let rgba: Vec<u8> = grid
            .pixels()
            .flat_map(|p| [p.0[0], p.0[1], p.0[2], 255])
            .collect();
        let result = js_sys::Array::new();
        result.push(&js_sys::Uint8Array::from(&rgba[..]).into());
        result.push(&width.into());
        Ok(result)
    })
    .await
}

/// Ends the run (its buffers are freed).
#[wasm_bindgen]
pub fn finetune_stop() {
    RUN.with(|r| *r.borrow_mut() = None);
}
