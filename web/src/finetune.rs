//! Fine-tuning in the browser with the core's trainer, as `bitdance finetune` runs it: the
//! dataset's tokens encoded once by the frozen tokenizer, batches drawn from (seed, step) so a
//! run resumed from its checkpoint takes exactly the steps an uninterrupted one would, the
//! official AR recipe, AdamW with its schedule, EMA. The worker drives it a step at a time and
//! keeps the checkpoints (atomically, in OPFS).

use std::cell::RefCell;

use bitdance::io::WeightFile;
use bitdance::model::{DEFAULT_MODEL_BYTES, DEFAULT_MODEL_LABEL};
use bitdance::train::{
    resumed_plan, sample_settings, step_seconds, time_throughput_probe, ClassPlan, ClassPolicy,
    FinetuneLoad, FinetuneOptions, FinetuneRun, LoraSpec, ResumeLoad, TensorStream, Trainer,
    TrainingImages, Trains,
};
use wasm_bindgen::prelude::*;
use web_sys::Blob;

use crate::js;
use crate::models::read_tensors;

/// The dataset's class folders (a folder named like a class of the model trains it; any other
/// becomes a new class).
fn dataset_folders() -> Result<Vec<String>, JsError> {
    DATA.with(|d| d.borrow().as_ref().map(|d| d.classes.clone()))
        .ok_or_else(|| js("no dataset: add the images first"))
}

/// The options in `json` (from the worker), checked.
fn parse_options(json: &str) -> Result<FinetuneOptions, JsError> {
    let mut o: serde_json::Value =
        serde_json::from_str(json).map_err(|e| js(format!("fine-tuning options: {e}")))?;
    let trains = trains_of(o.get("trains").cloned().unwrap_or_default())?;
    if let Some(map) = o.as_object_mut() {
        map.remove("trains");
    }
    let o = FinetuneOptions {
        trains,
        ..serde_json::from_value(o).map_err(|e| js(format!("fine-tuning options: {e}")))?
    };
    o.validate().map_err(js)?;
    Ok(o)
}

/// The page's "What trains" choice: "Full", "Embeddings", or "Lora" (the core's default
/// spec); none is every weight.
fn trains_of(choice: serde_json::Value) -> Result<Trains, JsError> {
    match choice.as_str() {
        None if choice.is_null() => Ok(Trains::Full),
        Some("Lora") => Ok(Trains::Lora(LoraSpec::default())),
        _ => serde_json::from_value(choice).map_err(|e| js(format!("what trains: {e}"))),
    }
}

thread_local! {
    static DATA: RefCell<Option<TrainingImages>> = const { RefCell::new(None) };
    static RUN: RefCell<Option<FinetuneRun>> = const { RefCell::new(None) };
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

thread_local! {
    /// The adapter's matmul probe (model width, FLOPs, seconds), timed once per page and width:
    /// the estimate follows every change of the options without timing it again.
    static PROBE: std::cell::RefCell<Option<(usize, f64, f64)>> =
        const { std::cell::RefCell::new(None) };
}

/// Memory and time the run needs, as JSON `{bytes, parameters, plan, step_s, probe_gflops}`
/// for the page's estimate, for a model of the base's config (read from its header) trained on
/// batches of `batch`, training `trains` (the page's choice: "Full", "Embeddings" or "Lora"),
/// with or without gradient checkpointing, the frozen base in 16 bits with `half_base`, on a
/// dataset of `folders` class folders when chosen. The step time comes from the model's work
/// and a short matmul probe timed on this adapter.
#[wasm_bindgen]
pub async fn finetune_estimate(
    base: Option<Blob>,
    name: String,
    batch: u32,
    trains: String,
    checkpointing: bool,
    half_base: bool,
    folders: Option<u32>,
) -> Result<String, JsError> {
    let trains = trains_of(serde_json::Value::String(trains))?;
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
    let o = FinetuneOptions {
        batch: batch as usize,
        trains,
        checkpointing,
        half_base,
        ..FinetuneOptions::default()
    };
    // A LoRA or class-table run trains the rows of the dataset's classes (before a dataset
    // is chosen, every row: an upper bound).
    let folders = folders.map(|f| f as usize);
    let m = o.memory(&card.config, folders);
    let plan = o.memory_plan(&card.config, folders).describe();
    let (step_s, gflops) = match o.step_flops(&card.config) {
        Some(flops) => {
            let width = card.config.dim;
            let (probe, secs) = match PROBE.with(|p| *p.borrow()) {
                Some((w, flops, secs)) if w == width => (flops, secs),
                _ => {
                    let gpu = crate::gpu().await.map_err(js)?;
                    let now = || js_sys::Date::now() / 1000.0;
                    let timed = time_throughput_probe(&gpu, width, &now).await.map_err(js)?;
                    PROBE.with(|p| *p.borrow_mut() = Some((width, timed.0, timed.1)));
                    timed
                }
            };
            // Date.now() counts whole milliseconds.
            let secs = secs.max(1e-3);
            (
                Some(step_seconds(flops, probe, secs)),
                Some(probe / secs / 1e9),
            )
        }
        None => (None, None),
    };
    Ok(
        serde_json::json!({"bytes": m.bytes, "parameters": m.parameters, "plan": plan,
        "step_s": step_s, "probe_gflops": gflops})
        .to_string(),
    )
}

/// Encodes the dataset and makes the run current; returns JSON `{images, classes, step, steps}`.
async fn begin(
    mut trainer: Trainer,
    plan: ClassPlan,
    o: &FinetuneOptions,
    resumed: bool,
    progress: &js_sys::Function,
) -> Result<String, JsError> {
    o.apply(&mut trainer);
    // Moved out, not copied: once encoded, the pixels are not needed again.
    let data = DATA
        .with(|d| d.borrow_mut().take())
        .ok_or_else(|| js("no dataset: add the images first"))?;
    let run = FinetuneRun::encode(
        trainer,
        &data,
        plan,
        o.data(),
        resumed,
        &mut |done, total| {
            let _ = progress.call2(
                &JsValue::NULL,
                &(done as f64).into(),
                &(total as f64).into(),
            );
        },
    )
    .await
    .map_err(js)?;
    let info = serde_json::json!({
        "images": data.len(),
        "classes": data.classes,
        "mapping": run.plan.describe(),
        "note": run.forgetting_note(),
        "step": run.step_count(),
        "steps": run.total_steps(),
    });
    RUN.with(|r| *r.borrow_mut() = Some(run));
    Ok(info.to_string())
}

/// Starts a run from `base` (a model file called `name`, of SHA-256 `base_sha256`, with its
/// autoencoder inside or in `vae`; the embedded default when absent) on the dataset, with
/// `options` (JSON `FinetuneOptions`). The model is read tensor by tensor from its Blobs
/// (`loading(done, total)` in bytes), never whole; `progress(done, total)` while the dataset is
/// encoded.
#[wasm_bindgen]
#[allow(clippy::too_many_arguments)]
pub async fn finetune_start(
    base: Option<Blob>,
    vae: Option<Blob>,
    name: String,
    base_sha256: Option<String>,
    options: &str,
    loading: js_sys::Function,
    progress: js_sys::Function,
) -> Result<String, JsError> {
    let o = parse_options(options)?;
    let gpu = crate::gpu().await.map_err(js)?;
    let folders = dataset_folders()?;
    let (plan, trainer) = match base {
        None => {
            let file =
                WeightFile::parse_named(DEFAULT_MODEL_LABEL, DEFAULT_MODEL_BYTES).map_err(js)?;
            let sha = bitdance::model::default_model_sha256();
            FinetuneLoad::new(
                &gpu,
                &file,
                None,
                sha,
                &folders,
                ClassPolicy::ByName,
                o.settings(),
            )
            .and_then(FinetuneLoad::load_in_memory)
            .map_err(js)?
        }
        Some(blob) => {
            let sha = base_sha256.ok_or_else(|| js("a starting model needs its SHA-256"))?;
            let file = crate::models::header_of(&name, &blob).await?;
            let vae_file = match &vae {
                Some(v) => {
                    Some(crate::models::header_of(&format!("{name} (autoencoder)"), v).await?)
                }
                None => None,
            };
            let mut load = FinetuneLoad::new(
                &gpu,
                &file,
                vae_file.as_ref(),
                &sha,
                &folders,
                ClassPolicy::ByName,
                o.settings(),
            )
            .map_err(js)?;
            read_tensors(&mut load.tensors, &blob, vae.as_ref(), &loading).await?;
            load.finish().map_err(js)?
        }
    };
    begin(trainer, plan, &o, false, &progress).await
}

/// Resumes the run a checkpoint (`bitdance finetune`'s format) holds, on the same dataset and
/// options it started with: the steps that follow are those an uninterrupted run takes. The
/// checkpoint is read tensor by tensor (`loading(done, total)` in bytes).
#[wasm_bindgen]
pub async fn finetune_resume(
    checkpoint: Blob,
    options: &str,
    loading: js_sys::Function,
    progress: js_sys::Function,
) -> Result<String, JsError> {
    let o = parse_options(options)?;
    let gpu = crate::gpu().await.map_err(js)?;
    let file = crate::models::header_of("the fine-tuning checkpoint", &checkpoint).await?;
    let stored = Trainer::stored_settings(&file).map_err(js)?;
    if stored != o.settings() {
        return Err(js(
            "the checkpoint was written by a run with other settings; start a new run",
        ));
    }
    let mut load = ResumeLoad::new(&gpu, &file, None).map_err(js)?;
    read_tensors(&mut load.tensors, &checkpoint, None, &loading).await?;
    let trainer = load.finish().map_err(js)?;
    let plan = resumed_plan(&trainer, &dataset_folders()?, ClassPolicy::ByName).map_err(js)?;
    begin(trainer, plan, &o, true, &progress).await
}

/// One optimizer step; returns JSON `{step, loss, grad_norm, lr}`.
#[wasm_bindgen]
pub async fn finetune_step() -> Result<String, JsError> {
    let mut run = RUN
        .with(|r| r.borrow_mut().take())
        .ok_or_else(|| js("no fine-tuning run"))?;
    let stats = run.step().await;
    RUN.with(|r| *r.borrow_mut() = Some(run));
    let s = stats.map_err(js)?;
    Ok(
        serde_json::json!({"step": s.step, "loss": s.loss, "grad_norm": s.grad_norm, "lr": s.lr})
            .to_string(),
    )
}

async fn with_run<T>(
    f: impl AsyncFnOnce(&FinetuneRun) -> Result<T, JsError>,
) -> Result<T, JsError> {
    let run = RUN
        .with(|r| r.borrow_mut().take())
        .ok_or_else(|| js("no fine-tuning run"))?;
    let out = f(&run).await;
    RUN.with(|r| *r.borrow_mut() = Some(run));
    out
}

/// Hands `stream`'s file to `write(bytes)` a piece at a time (the header, then each tensor;
/// a returned Promise is awaited); returns the file's size in bytes.
async fn write_stream(
    mut stream: TensorStream<'_>,
    write: &js_sys::Function,
) -> Result<f64, JsError> {
    let size = stream.len() as f64;
    let mut piece = stream.header().to_vec();
    loop {
        let out = write
            .call1(&JsValue::NULL, &js_sys::Uint8Array::from(&piece[..]).into())
            .map_err(|e| js(format!("writing a file: {e:?}")))?;
        if let Ok(promise) = out.dyn_into::<js_sys::Promise>() {
            wasm_bindgen_futures::JsFuture::from(promise)
                .await
                .map_err(|e| js(format!("writing a file: {e:?}")))?;
        }
        match stream.next_piece().await.map_err(js)? {
            Some(bytes) => piece = bytes,
            None => return Ok(size),
        }
    }
}

/// Writes the run's checkpoint (weights, moments, EMA, step, RNG, settings; safetensors) a
/// tensor at a time through `write(bytes)`; returns its size in bytes.
#[wasm_bindgen]
pub async fn finetune_checkpoint(write: js_sys::Function) -> Result<f64, JsError> {
    with_run(async |run| write_stream(run.trainer.checkpoint_stream().map_err(js)?, &write).await)
        .await
}

/// Writes the fine-tuned model (EMA weights and the autoencoder, official names, its config
/// and class names; loadable by the studio, the CLI and the official code) a tensor at a time
/// through `write(bytes)`; returns its size in bytes.
#[wasm_bindgen]
pub async fn finetune_export(write: js_sys::Function) -> Result<f64, JsError> {
    with_run(async |run| {
        write_stream(run.trainer.model_stream(true, false).map_err(js)?, &write).await
    })
    .await
}

/// One image per trained class (up to 16) from the EMA weights, tiled: RGBA bytes and the
/// grid's width (the height follows).
#[wasm_bindgen]
pub async fn finetune_samples(steps: u32, cfg: f32) -> Result<js_sys::Array, JsError> {
    with_run(async |run| {
        let settings = sample_settings(steps as usize, cfg);
        let grid = run.samples(&settings).await.map_err(js)?;
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
