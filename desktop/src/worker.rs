//! A background thread that owns the app's own bitdance GPU (separate from eframe's renderer),
//! so opening it and running checks never blocks the UI.

use std::sync::mpsc::{channel, Receiver, Sender};

use bitdance::conformance::{self, CheckResult};
use bitdance::gpu::AdapterSummary;
use bitdance::Gpu;
use eframe::egui;

/// What the UI asks of the worker.
pub enum Command {
    /// Run every conformance family, reporting each as it finishes.
    RunChecks,
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
    for command in commands {
        match command {
            Command::RunChecks => {
                for family in conformance::families() {
                    let rows = pollster::block_on(conformance::run(&gpu, &[family.name]));
                    send(Event::Family(family.name.to_string(), rows));
                }
                send(Event::ChecksDone);
            }
        }
    }
}
