//! A background thread that owns the app's own bitdance GPU (separate from eframe's renderer),
//! so opening it, loading models, generating and running checks never block the UI. Commands
//! run in the order sent (an Open followed by a Generate generates with the opened model).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::Instant;

use image::RgbImage;

use bitdance::conformance::{self, CheckResult};
use bitdance::gpu::{available_adapters, AdapterSummary, GpuOptions};
use bitdance::io::{read_state_dict, Select, WeightFile};
use bitdance::model::{
    LoadFile, ParamStore, Precision, TensorLoader, DEFAULT_MODEL_BYTES, DEFAULT_MODEL_LABEL,
    DEFAULT_MODEL_NAME,
};
use bitdance::studio::{
    file_role, sha256_hex, FileRole, FinishedImage, ImageRun, ModelCard, RecipeModel, SampleRequest,
};
use bitdance::train::time_throughput_probe;
use bitdance::Gpu;
use eframe::egui;

use crate::storage::AdapterChoice;
use crate::training::{self, FinetuneRequest, TrainEvent};

/// What the UI asks of the worker.
pub enum Command {
    /// Run every conformance family, reporting each as it finishes.
    RunChecks,
    /// Move to this adapter (one of `Event::Adapters`), load the model in use there, and
    /// start on it next time.
    UseAdapter(AdapterSummary),
    /// Load the embedded default model.
    OpenDefault,
    /// Load a model from files: one model, optionally with its separate autoencoder, each a
    /// `.safetensors` file or an official `.pt` checkpoint (converted in memory by the safe
    /// reader, nothing executed); which is which is read from their tensors.
    OpenFiles(Vec<PathBuf>),
    /// Hold the layer weights at this precision from now on, reloading the model in use.
    SetPrecision(Precision),
    /// Destroy the GPU device, as a driver reset would (tests of the recovery).
    #[cfg(test)]
    LoseDevice,
    /// Take the steps of a fine-tuning run (new, or continued from its checkpoint) until it
    /// ends or is paused.
    Finetune(Box<FinetuneRequest>),
    /// Sample the request's images with the loaded model.
    Generate(SampleRequest),
}

/// The adapter as the GPU panel shows it.
#[derive(Clone, Debug)]
pub struct AdapterInfo {
    /// Name, backend, type, driver.
    pub summary: AdapterSummary,
    /// Key limits, as (name, value) in bytes or counts.
    pub limits: Vec<(&'static str, u64)>,
    /// Enabled optional features.
    pub features: Vec<String>,
}

/// A loaded model as the UI knows it.
#[derive(Clone, Debug)]
pub struct LoadedModel {
    /// Its card (config, classes, recommended settings).
    pub card: ModelCard,
    /// SHA-256 of the model file.
    pub sha256: String,
    /// SHA-256 of a separate autoencoder file, when one was opened.
    pub vae_sha256: Option<String>,
    /// Where it came from (`None`: the embedded default).
    pub path: Option<PathBuf>,
    /// Its separate autoencoder file, if one was opened.
    pub vae_path: Option<PathBuf>,
    /// The precision of its layer weights.
    pub precision: Precision,
    /// Bytes the GPU holds for it after loading.
    pub held_bytes: u64,
    /// The adapter's matmul probe when it loaded (FLOPs, seconds), for step-time estimates.
    pub probe: Option<(f64, f64)>,
}

impl LoadedModel {
    /// The files it was opened from (model, then its separate autoencoder); none for the
    /// embedded default.
    pub fn files(&self) -> Vec<PathBuf> {
        self.path.iter().chain(&self.vae_path).cloned().collect()
    }
}

/// What the worker reports back.
pub enum Event {
    /// The GPU is open.
    Opened(AdapterInfo),
    /// Every adapter of this machine, the one picked by default first.
    Adapters(Vec<AdapterSummary>),
    /// Moving to another adapter failed, or its choice was not saved (the reason).
    AdapterFailed(String),
    /// No GPU could be opened; the reason.
    OpenFailed(String),
    /// One family's rows (empty when the family ran no check).
    Family(String, Vec<CheckResult>),
    /// Every family has run.
    ChecksDone,
    /// A model is being loaded: its name, then bytes done of total.
    Loading(String, u64, u64),
    /// A model is loaded and used from now on.
    ModelReady(Box<LoadedModel>),
    /// Loading a model failed (the previous one stays).
    ModelFailed(String),
    /// AR step `.0` of `.1` done.
    Progress(usize, usize),
    /// The pass so far (the tokens sampled up to AR step `.1`, the rest zero, decoded), its
    /// images side by side.
    Preview(RgbImage, usize),
    /// The generated images (one recipe, each with its PNG) and what they took.
    Images(Vec<FinishedImage>, ImageTiming),
    /// The run was stopped after AR step `.0`.
    Stopped(usize),
    /// Generating failed.
    GenerateFailed(String),
    /// The device was lost (the reason); the GPU was reopened and the model reloaded.
    Recovered(String),
    /// What a fine-tuning run reports.
    Train(TrainEvent),
}

/// What one image took: seconds in all and to its first preview, and the GPU memory held at
/// the peak of its run (weights included).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ImageTiming {
    /// Seconds from the start to the finished image.
    pub secs: f64,
    /// Seconds to the first preview (none for a run too short to show one).
    pub first_preview: Option<f64>,
    /// Bytes of GPU memory at the peak.
    pub peak_bytes: u64,
}

/// The UI's handle on the worker thread.
pub struct Worker {
    commands: Sender<Command>,
    /// Set by the UI to end the current generation at its next AR step.
    stop: Arc<AtomicBool>,
    /// Set by the UI to pause the fine-tuning run before its next step.
    pause: Arc<AtomicBool>,
    /// Tests: the training step after which the device is destroyed (0: never).
    #[cfg(test)]
    lose_at: Arc<std::sync::atomic::AtomicU64>,
    /// Events in the order they happened; drain once per frame.
    pub events: Receiver<Event>,
}

impl Worker {
    /// Starts the thread; it opens the GPU chosen by `WGPU_BACKEND` / `BITDANCE_ADAPTER` at once
    /// and loads the default model.
    pub fn spawn(ctx: egui::Context) -> Self {
        let (commands, command_rx) = channel();
        let (event_tx, events) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let pause = Arc::new(AtomicBool::new(false));
        #[cfg(test)]
        let lose_at = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let flags = Flags {
            stop: stop.clone(),
            pause: pause.clone(),
            #[cfg(test)]
            lose_at: lose_at.clone(),
        };
        std::thread::Builder::new()
            .name("bitdance-gpu".into())
            .spawn(move || run(ctx, command_rx, event_tx, flags))
            .expect("spawning the GPU thread");
        Self {
            commands,
            stop,
            pause,
            #[cfg(test)]
            lose_at,
            events,
        }
    }

    /// Ends the current generation at its next AR step (an `Event::Stopped` follows).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Pauses the fine-tuning run before its next step (its checkpoint is written, then an
    /// `Event::Train(TrainEvent::Paused)` follows).
    pub fn pause_training(&self) {
        self.pause.store(true, Ordering::Relaxed);
    }

    /// Tests: destroys the GPU device right after training step `step` (as a driver reset
    /// would, mid-run).
    #[cfg(test)]
    pub fn lose_device_after_step(&self, step: u64) {
        self.lose_at.store(step, Ordering::Relaxed);
    }

    /// Queues a command; ignored when the worker has stopped (its GPU failed to open).
    pub fn send(&self, command: Command) {
        match command {
            Command::Generate(_) => self.stop.store(false, Ordering::Relaxed),
            Command::Finetune(_) => self.pause.store(false, Ordering::Relaxed),
            _ => {}
        }
        let _ = self.commands.send(command);
    }
}

/// The UI's flags the worker reads between steps.
struct Flags {
    stop: Arc<AtomicBool>,
    pause: Arc<AtomicBool>,
    #[cfg(test)]
    lose_at: Arc<std::sync::atomic::AtomicU64>,
}

/// The model generation uses: what the UI knows of it, and its weights.
struct Model {
    info: LoadedModel,
    params: ParamStore,
}

fn run(ctx: egui::Context, commands: Receiver<Command>, events: Sender<Event>, flags: Flags) {
    let controls = training::Controls {
        pause: flags.pause,
        #[cfg(test)]
        lose_at: flags.lose_at,
    };
    let stop = flags.stop;
    let send = |event: Event| {
        let _ = events.send(event);
        ctx.request_repaint();
    };
    let mut gpu = match open_gpu() {
        Ok(gpu) => gpu,
        Err(e) => return send(Event::OpenFailed(e.to_string())),
    };
    send(Event::Opened(adapter_info(&gpu)));
    let everything = GpuOptions::from_env().map(|o| GpuOptions {
        backend: None,
        adapter: None,
        ..o
    });
    if let Ok(Ok(adapters)) = everything.map(|o| pollster::block_on(available_adapters(&o))) {
        send(Event::Adapters(adapters));
    }
    let mut model: Option<Model> = None;
    let mut precision = Precision::F16;
    let open = |model: &mut Option<Model>, what: Result<Model, String>| match what {
        Ok(m) => {
            send(Event::ModelReady(Box::new(m.info.clone())));
            *model = Some(m);
        }
        Err(e) => send(Event::ModelFailed(e)),
    };
    open(
        &mut model,
        load_default(&gpu, precision).map_err(|e| e.to_string()),
    );
    // Loads the model in use again (its files, or the default), its old buffers freed first:
    // after a precision change, or on another GPU (`fresh`, set before the load).
    let reload = |gpu: &mut Gpu, fresh: Option<Gpu>, model: &mut Option<Model>, p: Precision| {
        let paths = model.as_ref().map(|m| m.info.files()).unwrap_or_default();
        drop(model.take());
        if let Some(fresh) = fresh {
            *gpu = fresh;
            send(Event::Opened(adapter_info(gpu)));
        }
        let reloaded = match paths.is_empty() {
            false => load_files(gpu, &paths, p, &send),
            true => load_default(gpu, p).map_err(|e| e.to_string()),
        };
        open(model, reloaded);
    };
    // After a lost device: reopen the GPU; false when none opens (reported).
    let recover = |gpu: &mut Gpu, model: &mut Option<Model>, precision: Precision| -> bool {
        match open_gpu() {
            Ok(fresh) => {
                reload(gpu, Some(fresh), model, precision);
                true
            }
            Err(e) => {
                send(Event::OpenFailed(e.to_string()));
                false
            }
        }
    };
    for command in commands {
        match command {
            Command::UseAdapter(adapter) => {
                let options = GpuOptions::from_env().map(|o| o.choosing(&adapter));
                match options.and_then(|o| pollster::block_on(Gpu::new(&o))) {
                    Ok(fresh) => {
                        let choice = AdapterChoice {
                            backend: adapter.backend.to_ascii_lowercase(),
                            name: adapter.name.clone(),
                        };
                        if let Err(e) = crate::storage::choose_adapter(&choice) {
                            send(Event::AdapterFailed(format!(
                                "the adapter choice was not saved: {e}"
                            )));
                        }
                        reload(&mut gpu, Some(fresh), &mut model, precision);
                    }
                    Err(e) => {
                        send(Event::AdapterFailed(format!(
                            "{} ({}) did not open: {e}",
                            adapter.name, adapter.backend
                        )));
                        send(Event::Opened(adapter_info(&gpu))); // still on the old one
                    }
                }
            }
            Command::RunChecks => {
                for family in conformance::families() {
                    let rows = pollster::block_on(conformance::run(&gpu, &[family.name]));
                    send(Event::Family(family.name.to_string(), rows));
                }
                send(Event::ChecksDone);
            }
            Command::OpenDefault => open(
                &mut model,
                load_default(&gpu, precision).map_err(|e| e.to_string()),
            ),
            Command::SetPrecision(p) => {
                precision = p;
                reload(&mut gpu, None, &mut model, precision);
            }
            Command::OpenFiles(paths) => {
                drop(model.take()); // its buffers are freed before the next model loads
                let loaded = load_files(&gpu, &paths, precision, &send);
                let fallback = loaded.is_err();
                open(&mut model, loaded);
                if fallback {
                    let default = load_default(&gpu, precision).map_err(|e| e.to_string());
                    open(&mut model, default);
                }
            }
            Command::Generate(request) => {
                let Some(m) = &model else {
                    send(Event::GenerateFailed("no model is loaded".into()));
                    continue;
                };
                match generate(&gpu, m, &request, &stop, &send) {
                    Ok(()) => {}
                    Err(bitdance::Error::DeviceLost(reason)) => {
                        if !recover(&mut gpu, &mut model, precision) {
                            return;
                        }
                        send(Event::Recovered(reason));
                    }
                    Err(e) => send(Event::GenerateFailed(e.to_string())),
                }
            }
            Command::Finetune(request) => {
                let mut request = *request;
                let mut recoveries = 0;
                loop {
                    let Err(e) = training::finetune(&gpu, &request, &controls, &send) else {
                        break;
                    };
                    let Some(reason) = training::device_lost(&e) else {
                        send(Event::Train(TrainEvent::Failed(format!("{e:#}"))));
                        break;
                    };
                    if !recover(&mut gpu, &mut model, precision) {
                        return;
                    }
                    send(Event::Recovered(reason));
                    // The run continues from its last checkpoint (none yet: it starts over).
                    recoveries += 1;
                    if recoveries > 3 || !request.dir.checkpoint_path().exists() {
                        let why = "the GPU device was lost before the run's first checkpoint; start it again";
                        send(Event::Train(TrainEvent::Failed(why.into())));
                        break;
                    }
                    request.resume = true;
                }
            }
            #[cfg(test)]
            Command::LoseDevice => gpu.device().destroy(),
        }
    }
}

/// The GPU the app opens: the environment's choice when `WGPU_BACKEND` or `BITDANCE_ADAPTER`
/// is set, else the adapter chosen in the GPU panel (while it is still there), else the best.
fn open_gpu() -> bitdance::Result<Gpu> {
    let options = GpuOptions::from_env()?;
    let environment_chooses = options.backend.is_some() || options.adapter.is_some();
    if let (false, Some(choice)) = (environment_chooses, crate::storage::chosen_adapter()) {
        let chosen = GpuOptions {
            backend: Some(choice.backend),
            adapter: Some(choice.name),
            ..options.clone()
        };
        if let Ok(gpu) = pollster::block_on(Gpu::new(&chosen)) {
            return Ok(gpu);
        }
    }
    pollster::block_on(Gpu::new(&options))
}

fn adapter_info(gpu: &Gpu) -> AdapterInfo {
    let l = gpu.limits();
    AdapterInfo {
        summary: gpu.adapter(),
        limits: vec![
            ("max storage binding", l.max_storage_buffer_binding_size),
            ("max buffer", l.max_buffer_size),
            (
                "storage buffers per stage",
                l.max_storage_buffers_per_shader_stage as u64,
            ),
            (
                "invocations per workgroup",
                l.max_compute_invocations_per_workgroup as u64,
            ),
            (
                "workgroup memory",
                l.max_compute_workgroup_storage_size as u64,
            ),
        ],
        features: gpu
            .features()
            .iter()
            .filter_map(|f| f.as_str().map(str::to_string))
            .collect(),
    }
}

/// The embedded default model, its layer weights at `precision`.
fn load_default(gpu: &Gpu, precision: Precision) -> bitdance::Result<Model> {
    let file = WeightFile::parse_named(DEFAULT_MODEL_LABEL, DEFAULT_MODEL_BYTES)?;
    let card = ModelCard::of_file(DEFAULT_MODEL_NAME, &file)?;
    let precision = precision.on(gpu);
    let params =
        TensorLoader::generator(gpu, &card.config, &file, None, precision)?.load_in_memory()?;
    let probe = time_probe(gpu, card.config.dim);
    Ok(Model {
        info: LoadedModel {
            card,
            sha256: bitdance::model::default_model_sha256().to_string(),
            vae_sha256: None,
            path: None,
            vae_path: None,
            precision,
            held_bytes: gpu.stats().live_bytes,
            probe,
        },
        params,
    })
}

/// The core's matmul probe at a model's `width` timed on `gpu` (FLOPs, seconds); None when the
/// GPU fails it (the estimate is then left out).
fn time_probe(gpu: &Gpu, width: usize) -> Option<(f64, f64)> {
    let origin = Instant::now();
    let now = || origin.elapsed().as_secs_f64();
    pollster::block_on(time_throughput_probe(gpu, width, &now)).ok()
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| path.display().to_string())
}

/// The bytes of `path` as safetensors: read as they are, or an official `.pt` checkpoint
/// converted in memory (its `model` weights, under their official names).
pub fn safetensors_of(path: &Path, send: &dyn Fn(Event)) -> Result<Vec<u8>, String> {
    let name = file_name(path);
    send(Event::Loading(format!("reading {name}"), 0, 1));
    let bytes = read(path)?;
    if !path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("pt"))
    {
        return Ok(bytes);
    }
    send(Event::Loading(
        format!("converting {name} (.pt, nothing executed)"),
        0,
        1,
    ));
    let label = path.display().to_string();
    read_state_dict(&label, &bytes, Select::Model)
        .and_then(|sd| sd.to_safetensors(""))
        .map_err(|e| e.to_string())
}

/// A model opened from files (one model, optionally its autoencoder; `.safetensors` or `.pt`),
/// told apart by their tensors, loaded tensor by tensor with progress, its layer weights at
/// `precision`.
fn load_files(
    gpu: &Gpu,
    paths: &[PathBuf],
    precision: Precision,
    send: &dyn Fn(Event),
) -> Result<Model, String> {
    if paths.is_empty() || paths.len() > 2 {
        return Err("open one model, optionally with its autoencoder file".into());
    }
    let contents: Vec<Vec<u8>> = paths
        .iter()
        .map(|p| safetensors_of(p, send))
        .collect::<Result<_, _>>()?;
    let files: Vec<WeightFile<'_>> = paths
        .iter()
        .zip(&contents)
        .map(|(p, b)| WeightFile::parse_named(&p.display().to_string(), b))
        .collect::<bitdance::Result<_>>()
        .map_err(|e| e.to_string())?;
    let roles: Vec<FileRole> = files.iter().map(file_role).collect();
    let model_at = match roles.iter().filter(|r| **r == FileRole::Model).count() {
        1 => roles
            .iter()
            .position(|r| *r == FileRole::Model)
            .unwrap_or(0),
        0 => return Err("these files hold only an autoencoder: open its model too".into()),
        _ => return Err("open one model, optionally with its autoencoder file".into()),
    };
    let vae_at = (paths.len() == 2).then_some(1 - model_at);
    let name = file_name(&paths[model_at]);
    let file = &files[model_at];
    let vae_file = vae_at.map(|i| &files[i]);
    let card = ModelCard::of_file(&name, file).map_err(|e| e.to_string())?;
    let precision = precision.on(gpu);
    let mut loader = TensorLoader::generator(gpu, &card.config, file, vae_file, precision)
        .map_err(|e| e.to_string())?;
    while let Some(r) = loader.next_read().cloned() {
        let source = match (r.file, vae_file) {
            (LoadFile::Vae, Some(v)) => v,
            _ => file,
        };
        let piece = source.bytes(r.range).map_err(|e| e.to_string())?;
        loader.upload(piece).map_err(|e| e.to_string())?;
        let (done, total) = loader.progress();
        send(Event::Loading(format!("loading {name}"), done, total));
    }
    let params = loader.finish().map_err(|e| e.to_string())?;
    let probe = time_probe(gpu, card.config.dim);
    Ok(Model {
        info: LoadedModel {
            card,
            sha256: sha256_hex(&contents[model_at]),
            vae_sha256: vae_at.map(|i| sha256_hex(&contents[i])),
            path: Some(paths[model_at].clone()),
            vae_path: vae_at.map(|i| paths[i].clone()),
            precision,
            held_bytes: gpu.stats().live_bytes,
            probe,
        },
        params,
    })
}

/// One image per class of `classes`, `batch` per pass, a step at a time (the core's
/// `ImageRun`): progress after every AR step, a decoded preview when its pacer says one is due,
/// and an early end when `stop` is set. A batch the GPU cannot hold is refused before it starts.
fn generate(
    gpu: &Gpu,
    m: &Model,
    request: &SampleRequest,
    stop: &AtomicBool,
    send: &dyn Fn(Event),
) -> bitdance::Result<()> {
    let start = Instant::now();
    gpu.reset_peak();
    let mut first_preview = None;
    let card = &m.info.card;
    let recipe_model = RecipeModel::of(card, &m.info.sha256, m.info.vae_sha256.as_deref());
    let mut run = ImageRun::new(
        &card.config,
        &m.params,
        recipe_model,
        m.info.precision,
        request,
    )?;
    gpu.check_memory(&card.config.generation_memory(run.batch(), m.info.precision))?;
    send(Event::Progress(0, run.steps()));
    loop {
        let step_start = Instant::now();
        let more = run.step()?;
        // Waited for: the step's time is measured, and Stop takes effect within one step.
        gpu.synchronize()?;
        let due = run
            .pacer
            .stepped(step_start.elapsed().as_secs_f64(), run.steps());
        send(Event::Progress(run.done(), run.steps()));
        if !more {
            break;
        }
        if stop.load(Ordering::Relaxed) {
            send(Event::Stopped(run.done()));
            return Ok(());
        }
        if due {
            let decode_start = Instant::now();
            let grid = pollster::block_on(run.preview())?;
            send(Event::Preview(grid, run.done()));
            first_preview.get_or_insert(start.elapsed().as_secs_f64());
            run.pacer.decoded(decode_start.elapsed().as_secs_f64());
        }
    }
    let images = pollster::block_on(run.finish())?;
    let timing = ImageTiming {
        secs: start.elapsed().as_secs_f64(),
        first_preview,
        peak_bytes: gpu.stats().peak_bytes,
    };
    send(Event::Images(images, timing));
    Ok(())
}
