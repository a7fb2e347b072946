//! A background thread that owns the app's own bitdance GPU (separate from eframe's renderer),
//! so opening it and running checks never blocks the UI.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::Instant;

use bitdance::conformance::{self, CheckResult};
use bitdance::gpu::AdapterSummary;
use bitdance::io::WeightFile;
use bitdance::model::{
    builtin_name, load_generator, recommended_settings, stored_class_names, stored_config,
    ModelConfig, ParamStore, Precision, DEFAULT_MODEL_BYTES, DEFAULT_MODEL_LABEL,
    DEFAULT_MODEL_NAME,
};
use bitdance::studio::{sha256_hex, ImageRun, RecipeModel};
use bitdance::Gpu;
use eframe::egui;

/// What the UI asks of the worker.
pub enum Command {
    /// Run every conformance family, reporting each as it finishes.
    RunChecks,
    /// Sample one image of `class` with the default model.
    Generate {
        /// Class id.
        class: u32,
        /// Seed of the sampler.
        seed: u64,
    },
}

/// What the worker reports back.
pub enum Event {
    /// The GPU is open.
    Opened(AdapterSummary),
    /// No GPU could be opened; the reason.
    OpenFailed(String),
    /// One family's rows (empty when the family ran no check).
    Family(String, Vec<CheckResult>),
    /// Every family has run.
    ChecksDone,
    /// The default model is loaded: its class names.
    ModelReady(Vec<String>),
    /// AR step `.0` of `.1` done.
    Progress(usize, usize),
    /// The image so far (the tokens sampled up to AR step `.2`, the rest zero, decoded): RGB
    /// bytes, side in pixels.
    Preview(Vec<u8>, usize, usize),
    /// A generated image: RGB bytes, side in pixels, seconds taken.
    Image(Vec<u8>, usize, f64),
    /// The run was stopped after AR step `.0`.
    Stopped(usize),
    /// Loading the model or generating failed.
    GenerateFailed(String),
}

/// The UI's handle on the worker thread.
pub struct Worker {
    commands: Sender<Command>,
    /// Set by the UI to end the current generation at its next AR step.
    stop: Arc<AtomicBool>,
    /// Events in the order they happened; drain once per frame.
    pub events: Receiver<Event>,
}

impl Worker {
    /// Starts the thread; it opens the GPU chosen by `WGPU_BACKEND` / `BITDANCE_ADAPTER` at once.
    pub fn spawn(ctx: egui::Context) -> Self {
        let (commands, command_rx) = channel();
        let (event_tx, events) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("bitdance-gpu".into())
            .spawn(move || run(ctx, command_rx, event_tx, flag))
            .expect("spawning the GPU thread");
        Self {
            commands,
            stop,
            events,
        }
    }

    /// Ends the current generation at its next AR step (an `Event::Stopped` follows).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Queues a command; ignored when the worker has stopped (its GPU failed to open).
    pub fn send(&self, command: Command) {
        if matches!(command, Command::Generate { .. }) {
            self.stop.store(false, Ordering::Relaxed);
        }
        let _ = self.commands.send(command);
    }
}

fn run(
    ctx: egui::Context,
    commands: Receiver<Command>,
    events: Sender<Event>,
    stop: Arc<AtomicBool>,
) {
    let send = |event: Event| {
        let _ = events.send(event);
        ctx.request_repaint();
    };
    let gpu = match pollster::block_on(Gpu::from_env()) {
        Ok(gpu) => gpu,
        Err(e) => return send(Event::OpenFailed(e.to_string())),
    };
    send(Event::Opened(gpu.adapter()));
    let model = match load_model(&gpu) {
        Ok((config, params, names)) => {
            send(Event::ModelReady(names));
            Some((config, params))
        }
        Err(e) => {
            send(Event::GenerateFailed(e.to_string()));
            None
        }
    };
    for command in commands {
        match command {
            Command::RunChecks => {
                for family in conformance::families() {
                    let rows = pollster::block_on(conformance::run(&gpu, &[family.name]));
                    send(Event::Family(family.name.to_string(), rows));
                }
                send(Event::ChecksDone);
            }
            Command::Generate { class, seed } => {
                let Some((c, params)) = &model else { continue };
                if let Err(e) = generate(&gpu, c, params, (class, seed), &stop, &send) {
                    send(Event::GenerateFailed(e.to_string()));
                }
            }
        }
    }
}

/// One image of `class`, a step at a time (the core's `ImageRun`): progress after every AR
/// step, a decoded preview when its pacer says one is due, and an early end when `stop` is set.
fn generate(
    gpu: &Gpu,
    c: &ModelConfig,
    params: &ParamStore,
    (class, seed): (u32, u64),
    stop: &AtomicBool,
    send: &dyn Fn(Event),
) -> bitdance::Result<()> {
    let start = Instant::now();
    let settings = recommended_settings(Some(DEFAULT_MODEL_NAME));
    let model = RecipeModel {
        name: DEFAULT_MODEL_NAME.into(),
        sha256: sha256_hex(DEFAULT_MODEL_BYTES),
        vae_sha256: None,
        config: builtin_name(c).unwrap_or("custom").into(),
    };
    let precision = Precision::F16.on(gpu);
    let mut run = ImageRun::new(c, params, model, precision, class, &settings, seed)?;
    loop {
        let step_start = Instant::now();
        let more = run.step()?;
        // Waited for: the step's time is measured, and Stop takes effect within one step.
        gpu.synchronize()?;
        let due = run.pacer.stepped(step_start.elapsed().as_secs_f64());
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
            let rgb = pollster::block_on(run.preview())?;
            send(Event::Preview(rgb, run.side(), run.done()));
            run.pacer.decoded(decode_start.elapsed().as_secs_f64());
        }
    }
    let image = pollster::block_on(run.finish())?;
    send(Event::Image(
        image.rgb,
        image.side,
        start.elapsed().as_secs_f64(),
    ));
    Ok(())
}

/// The embedded default model on `gpu`, its config and class names.
fn load_model(gpu: &Gpu) -> bitdance::Result<(ModelConfig, ParamStore, Vec<String>)> {
    let file = WeightFile::parse_named(DEFAULT_MODEL_LABEL, DEFAULT_MODEL_BYTES)?;
    let config = stored_config(&file)?
        .ok_or_else(|| bitdance::Error::Invalid("the default model has no config".into()))?;
    let names = stored_class_names(&file)
        .unwrap_or_else(|| (0..config.num_classes).map(|k| k.to_string()).collect());
    let params = load_generator(gpu, &config, &file, None, bitdance::model::Precision::F16)?;
    Ok((config, params, names))
}
