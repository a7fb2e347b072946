//! A background thread that owns the app's own bitdance GPU (separate from eframe's renderer),
//! so opening it and running checks never blocks the UI.

use std::sync::mpsc::{channel, Receiver, Sender};

use bitdance::conformance::{self, CheckResult};
use bitdance::gpu::AdapterSummary;
use bitdance::io::WeightFile;
use bitdance::model::{
    generate_images, load_generator, recommended_settings, stored_class_names, stored_config,
    to_rgb8, ModelConfig, ParamStore, DEFAULT_MODEL_BYTES, DEFAULT_MODEL_LABEL, DEFAULT_MODEL_NAME,
};
use bitdance::rng::Rng;
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
    /// A generated image: RGB bytes, side in pixels, seconds taken.
    Image(Vec<u8>, usize, f64),
    /// Loading the model or generating failed.
    GenerateFailed(String),
}

/// The UI's handle on the worker thread.
pub struct Worker {
    commands: Sender<Command>,
    /// Events in the order they happened; drain once per frame.
    pub events: Receiver<Event>,
}

impl Worker {
    /// Starts the thread; it opens the GPU chosen by `WGPU_BACKEND` / `BITDANCE_ADAPTER` at once.
    pub fn spawn(ctx: egui::Context) -> Self {
        let (commands, command_rx) = channel();
        let (event_tx, events) = channel();
        std::thread::Builder::new()
            .name("bitdance-gpu".into())
            .spawn(move || run(ctx, command_rx, event_tx))
            .expect("spawning the GPU thread");
        Self { commands, events }
    }

    /// Queues a command; ignored when the worker has stopped (its GPU failed to open).
    pub fn send(&self, command: Command) {
        let _ = self.commands.send(command);
    }
}

fn run(ctx: egui::Context, commands: Receiver<Command>, events: Sender<Event>) {
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
                let start = std::time::Instant::now();
                let settings = recommended_settings(Some(DEFAULT_MODEL_NAME));
                let result = pollster::block_on(generate_images(
                    c,
                    params,
                    &[class],
                    &settings,
                    &mut Rng::new(seed),
                    &mut |step, steps| send(Event::Progress(step, steps)),
                ));
                match result {
                    Ok(out) => {
                        let r = c.resolution;
                        let rgb = to_rgb8(&out.image, 1, r, r);
                        send(Event::Image(rgb, r, start.elapsed().as_secs_f64()));
                    }
                    Err(e) => send(Event::GenerateFailed(e.to_string())),
                }
            }
        }
    }
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
