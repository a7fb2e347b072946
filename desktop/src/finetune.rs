//! The Fine-tune panel: images (a folder of class folders, or the bundled sample), the starting
//! model, the options; then a live loss plot, steps/s, time left, sample grids, Pause and
//! Resume (exact, from the checkpoint, also after the app restarts), and "Use this model".

use std::time::Instant;

use bitdance::studio::duration_text;
use bitdance::train::{step_seconds, FinetuneOptions, LoraSpec, Trains};
use eframe::egui;
use egui_plot::{Line, Plot};

use crate::app::{BitDanceApp, ACCENT, FAIL};
use crate::runs::{delete_run, new_run_dir, saved_runs, DataSource, RunPlan, SavedRun};
use crate::training::{FinetuneRequest, RunStarted, TrainEvent};
use crate::worker::Command;

/// Where the run on screen stands.
#[derive(Clone, Debug, PartialEq)]
pub enum RunStatus {
    /// Reading the starting model or the checkpoint.
    Opening,
    /// Encoding the images (done of total).
    Encoding(usize, usize),
    /// Taking steps.
    Training,
    /// Pause asked; the current step finishes and the checkpoint is written.
    Pausing,
    /// Paused after its checkpoint.
    Paused,
    /// Every step taken.
    Done,
    /// Failed (the reason).
    Failed(String),
}

/// The run shown in the panel.
pub struct RunView {
    /// What it was started with.
    pub request: FinetuneRequest,
    /// Where it stands.
    pub status: RunStatus,
    /// Steps taken.
    pub step: u64,
    /// (step, loss) of every step so far.
    pub losses: Vec<[f64; 2]>,
    /// Mean steps per second of this session's steps.
    pub steps_per_s: f64,
    /// Which class each folder trains, a line each.
    pub classes: Vec<String>,
    /// The warning when the run may make the model forget its classes.
    pub note: Option<String>,
    /// Images in the dataset.
    pub images: usize,
    /// The newest sample grid and its step.
    pub sample: Option<(egui::TextureHandle, u64)>,
    /// When this session's steps began.
    pub since: Option<Instant>,
}

impl RunView {
    fn total(&self) -> u64 {
        self.request.plan.options.steps
    }
}

/// The panel's state.
pub struct FinetuneState {
    /// The images of the next run.
    pub data: DataSource,
    /// The options of the next run.
    pub options: FinetuneOptions,
    /// Steps between sample grids.
    pub sample_every: u64,
    /// Steps between checkpoints.
    pub checkpoint_every: u64,
    /// The run on screen.
    pub view: Option<RunView>,
    /// Runs on disk, newest first.
    pub runs: Vec<SavedRun>,
    /// The class folders of `data` as last counted (the estimate reads them every frame).
    counted: Option<(DataSource, Option<usize>)>,
}

impl FinetuneState {
    /// How many class folders the chosen images have (`None` when the folder cannot be read:
    /// the estimate then counts every class row), counted once per choice.
    fn class_folders(&mut self) -> Option<usize> {
        match &self.counted {
            Some((data, count)) if *data == self.data => *count,
            _ => {
                let count = self.data.folders().ok().map(|f| f.len());
                self.counted = Some((self.data.clone(), count));
                count
            }
        }
    }
}

impl Default for FinetuneState {
    fn default() -> Self {
        Self {
            data: DataSource::Bundled,
            options: FinetuneOptions::default(),
            sample_every: 50,
            checkpoint_every: 50,
            view: None,
            runs: saved_runs(),
            counted: None,
        }
    }
}

impl FinetuneState {
    /// Whether a run holds the GPU (generation waits until it pauses or ends).
    pub fn busy(&self) -> bool {
        self.view.as_ref().is_some_and(|v| {
            matches!(
                v.status,
                RunStatus::Opening
                    | RunStatus::Encoding(..)
                    | RunStatus::Training
                    | RunStatus::Pausing
            )
        })
    }

    /// Sends `request` to the worker and shows its run.
    pub fn begin(&mut self, app_worker: &crate::worker::Worker, request: FinetuneRequest) {
        let losses = if request.resume {
            request
                .dir
                .losses()
                .into_iter()
                .map(|(s, l)| [s as f64, l as f64])
                .collect()
        } else {
            Vec::new()
        };
        self.view = Some(RunView {
            request: request.clone(),
            status: RunStatus::Opening,
            step: losses.last().map_or(0, |l| l[0] as u64),
            losses,
            steps_per_s: 0.0,
            classes: Vec::new(),
            note: None,
            images: 0,
            sample: None,
            since: None,
        });
        app_worker.send(Command::Finetune(Box::new(request)));
    }

    /// Applies one of the worker's reports.
    pub fn on_event(&mut self, ctx: &egui::Context, event: TrainEvent) {
        let Some(v) = &mut self.view else {
            return;
        };
        match event {
            TrainEvent::Encoding(done, total) => v.status = RunStatus::Encoding(done, total),
            TrainEvent::Started(started) => {
                let RunStarted {
                    step,
                    classes,
                    note,
                    images,
                    losses,
                } = *started;
                v.step = step;
                v.classes = classes;
                v.note = note;
                v.images = images;
                v.losses = losses
                    .into_iter()
                    .map(|(s, l)| [s as f64, l as f64])
                    .collect();
                v.status = RunStatus::Training;
                v.since = Some(Instant::now());
            }
            TrainEvent::Step(stats, rate) => {
                v.step = stats.step;
                v.losses.push([stats.step as f64, stats.loss as f64]);
                v.steps_per_s = rate;
            }
            TrainEvent::Sample(rgb, w, h, step) => {
                let image = egui::ColorImage::from_rgb([w, h], &rgb);
                let texture =
                    ctx.load_texture("finetune-samples", image, egui::TextureOptions::NEAREST);
                v.sample = Some((texture, step));
            }
            TrainEvent::Paused(step) => {
                v.step = step;
                v.status = RunStatus::Paused;
                self.runs = saved_runs();
            }
            TrainEvent::Done => {
                v.status = RunStatus::Done;
                self.runs = saved_runs();
            }
            TrainEvent::Failed(reason) => {
                v.status = RunStatus::Failed(reason);
                self.runs = saved_runs();
            }
        }
    }
}

/// The panel.
pub fn show(app: &mut BitDanceApp, ui: &mut egui::Ui) {
    egui::Panel::left("finetune-controls")
        .resizable(false)
        .exact_size(340.0)
        .show(ui, |ui| {
            // The memory need and Start stay in view below the options, which scroll.
            egui::Panel::bottom("finetune-start")
                .show_separator_line(false)
                .show(ui, |ui| start(app, ui));
            egui::CentralPanel::default_margins().show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| controls(app, ui));
            });
        });
    egui::CentralPanel::default_margins().show(ui, |ui| {
        egui::ScrollArea::vertical().show(ui, |ui| {
            run_view(app, ui);
            ui.add_space(12.0);
            earlier_runs(app, ui);
        });
    });
}

fn controls(app: &mut BitDanceApp, ui: &mut egui::Ui) {
    ui.heading("Fine-tuning");
    let f = &mut app.finetune;
    ui.label(egui::RichText::new("Images").strong());
    ui.radio_value(
        &mut f.data,
        DataSource::Bundled,
        "Bundled Fashion-MNIST sample (10 x 24)",
    );
    ui.horizontal(|ui| {
        let is_folder = matches!(f.data, DataSource::Folder(_));
        let radio = ui.radio(is_folder, "A folder of class folders");
        let choose = ui.button("Choose…");
        if radio.clicked() || choose.clicked() {
            if let Some(dir) = rfd::FileDialog::new()
                .set_title("A folder with one sub-folder of images per class")
                .pick_folder()
            {
                f.data = DataSource::Folder(dir);
            }
        }
    });
    if let DataSource::Folder(dir) = &f.data {
        ui.weak(dir.display().to_string());
    }
    ui.separator();
    ui.label(egui::RichText::new("Starting model").strong());
    match &app.model {
        Some(m) => {
            ui.label(crate::generate::model_title(m));
            ui.weak(format!(
                "{} · {} classes · {}×{}",
                m.card.config_name(),
                m.card.classes.len(),
                m.card.config.resolution,
                m.card.config.resolution
            ));
            ui.weak(
                "A folder named like a class of this model (its index or name) trains it; any \
                 other folder becomes a new class.",
            );
        }
        None => {
            ui.weak("Loading the model…");
        }
    }
    ui.separator();
    ui.label(egui::RichText::new("Training").strong());
    let o = &mut f.options;
    egui::Grid::new("finetune-options")
        .num_columns(2)
        .spacing([12.0, 6.0])
        .show(ui, |ui| {
            option_row(
                ui,
                "steps",
                egui::DragValue::new(&mut o.steps).range(1..=1_000_000),
            );
            option_row(
                ui,
                "images per step",
                egui::DragValue::new(&mut o.batch).range(1..=256),
            );
            option_row(
                ui,
                "learning rate",
                egui::DragValue::new(&mut o.lr)
                    .range(1e-6..=1e-2)
                    .speed(1e-5)
                    .max_decimals(6),
            )
            .on_hover_text(
                "the peak: it warms up over the warmup steps, then decays (cosine) to a tenth",
            );
            option_row(
                ui,
                "warmup steps",
                egui::DragValue::new(&mut o.warmup).range(0..=100_000),
            );
            option_row(
                ui,
                "EMA decay",
                egui::DragValue::new(&mut o.ema)
                    .range(0.0..=0.9999)
                    .speed(1e-3)
                    .max_decimals(4),
            );
            option_row(ui, "seed", egui::DragValue::new(&mut o.seed));
            option_row(
                ui,
                "samples every",
                egui::DragValue::new(&mut f.sample_every)
                    .range(0..=100_000)
                    .suffix(" steps"),
            );
            option_row(
                ui,
                "checkpoint every",
                egui::DragValue::new(&mut f.checkpoint_every)
                    .range(1..=100_000)
                    .suffix(" steps"),
            );
        });
    let lora = Trains::Lora(LoraSpec::default());
    egui::ComboBox::from_label("trains")
        .selected_text(match o.trains {
            Trains::Full => "every weight",
            Trains::Lora(_) => "low-rank adapters (LoRA)",
            Trains::Embeddings => "class rows only",
        })
        .show_ui(ui, |ui| {
            ui.selectable_value(&mut o.trains, Trains::Full, "every weight");
            if ui
                .selectable_label(o.trains.lora().is_some(), "low-rank adapters (LoRA)")
                .clicked()
                && o.trains.lora().is_none()
            {
                o.trains = lora;
            }
            ui.selectable_value(&mut o.trains, Trains::Embeddings, "class rows only");
        })
        .response
        .on_hover_text(
            "LoRA: small adapters on a frozen model, merged into it when saved; class rows \
             only: the cheapest way to add a class; the rest of the model stays",
        );
    if let Trains::Lora(spec) = &mut o.trains {
        ui.horizontal(|ui| {
            let rank = ui.label("rank");
            ui.add(egui::DragValue::new(&mut spec.rank).range(1..=256))
                .labelled_by(rank.id);
            let alpha = ui.label("alpha");
            ui.add(egui::DragValue::new(&mut spec.alpha).range(1.0..=1024.0))
                .labelled_by(alpha.id);
        });
        ui.horizontal(|ui| {
            ui.label("on");
            ui.checkbox(&mut spec.targets.attention, "attention");
            ui.checkbox(&mut spec.targets.mlp, "MLP");
            ui.checkbox(&mut spec.targets.head, "head");
        });
        if !(spec.targets.attention || spec.targets.mlp || spec.targets.head) {
            spec.targets.attention = true;
        }
    }
    ui.checkbox(&mut o.flips, "Mirror images at random")
        .on_hover_text("the official recipe mirrors half the images; off for digits and text");
    ui.checkbox(&mut o.checkpointing, "Recompute activations")
        .on_hover_text("gradient checkpointing: less GPU memory, about a third more time per step");
    if o.trains != Trains::Full {
        ui.checkbox(&mut o.half_base, "16-bit frozen base")
            .on_hover_text(
                "the weights that do not train held in half precision: half their memory; what \
             trains stays f32",
            );
    }
}

/// The memory the run needs, option problems, and Start.
fn start(app: &mut BitDanceApp, ui: &mut egui::Ui) {
    let busy = app.finetune.busy() || app.generate.busy();
    let f = &mut app.finetune;
    let folders = f.class_folders();
    let o = &f.options;
    if let Some(m) = &app.model {
        let need = o.memory(&m.card.config, folders);
        ui.weak(format!(
            "GPU memory: about {:.0} MiB, {:.1} M parameters held",
            need.bytes as f64 / (1u64 << 20) as f64,
            need.parameters as f64 / 1e6
        ))
        .on_hover_text(
            "weights (the frozen base in 16 bits when chosen), and for what trains (the class \
             rows of the images' classes) gradients, two moments and EMA in f32, and the \
             activations",
        );
        if let (Some(flops), Some((probe, secs))) = (o.step_flops(&m.card.config), m.probe) {
            let step = step_seconds(flops, probe, secs);
            ui.weak(format!(
                "Time: about {} per step, {} for {} steps",
                duration_text(step),
                duration_text(step * o.steps as f64),
                o.steps
            ))
            .on_hover_text(format!(
                "from the model's work per step and a matmul probe of this GPU ({:.1} GFLOP/s)",
                probe / secs / 1e9
            ));
        }
    }
    let problem = f.options.validate().err().map(|e| e.to_string());
    if let Some(p) = &problem {
        ui.colored_label(FAIL, p);
    }
    ui.add_space(6.0);
    let start = egui::Button::new(egui::RichText::new("Start fine-tuning").strong())
        .fill(ACCENT)
        .min_size(egui::vec2(180.0, 34.0));
    let can = !busy && problem.is_none() && app.model.is_some();
    let hint = if busy {
        "wait for the current run or image"
    } else {
        "train from the starting model"
    };
    if ui.add_enabled(can, start).on_hover_text(hint).clicked() {
        let Some(m) = &app.model else { return };
        let plan = RunPlan {
            data: f.data.clone(),
            base: m.path.clone(),
            base_vae: m.vae_path.clone(),
            base_name: crate::generate::model_title(m),
            options: f.options,
            sample_every: f.sample_every,
            checkpoint_every: f.checkpoint_every,
        };
        let request = FinetuneRequest {
            dir: new_run_dir(&plan.data),
            plan,
            resume: false,
        };
        app.finetune.begin(&app.worker, request);
    }
}

fn status_text(v: &RunView) -> String {
    match &v.status {
        RunStatus::Opening => "Opening the model…".into(),
        RunStatus::Encoding(done, total) => format!("Encoding the images: {done} of {total}"),
        RunStatus::Training | RunStatus::Pausing => {
            let left = v.total().saturating_sub(v.step);
            let eta = if v.steps_per_s > 0.0 {
                format!(
                    " · about {} left",
                    duration_text(left as f64 / v.steps_per_s)
                )
            } else {
                String::new()
            };
            let pausing = if v.status == RunStatus::Pausing {
                " · pausing after this step"
            } else {
                ""
            };
            format!(
                "Training: step {} of {} · {:.2} steps/s{eta}{pausing}",
                v.step,
                v.total(),
                v.steps_per_s
            )
        }
        RunStatus::Paused => format!("Paused at step {} of {}", v.step, v.total()),
        RunStatus::Done => format!("Done: {} step{}", v.total(), plural(v.total())),
        RunStatus::Failed(reason) => format!("Failed: {reason}"),
    }
}

fn run_view(app: &mut BitDanceApp, ui: &mut egui::Ui) {
    let Some(v) = &app.finetune.view else {
        ui.heading("No run yet");
        ui.label(
            "Choose the images and the options, then Start. The run's checkpoint, model, log and \
             sample grids go to a folder of its own, the same files `bitdance finetune --out` \
             writes: a run paused here can be continued here after a restart, or by \
             `bitdance finetune --resume`.",
        );
        return;
    };
    ui.heading(
        v.request
            .dir
            .path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().to_string()),
    );
    ui.weak(format!(
        "{} · from {} · {} images in {} classes",
        v.request.plan.data.describe(),
        v.request.plan.base_name,
        v.images,
        v.classes.len()
    ));
    if !v.classes.is_empty() {
        egui::CollapsingHeader::new(format!("Classes ({})", v.classes.len()))
            .id_salt("finetune-classes")
            .show(ui, |ui| {
                for line in &v.classes {
                    ui.weak(line);
                }
            });
    }
    if let Some(note) = &v.note {
        ui.colored_label(crate::app::WARN, note);
    }
    let failed = matches!(v.status, RunStatus::Failed(_));
    let text = status_text(v);
    if failed {
        ui.colored_label(FAIL, text);
    } else {
        ui.label(text);
    }
    let fraction = v.step as f32 / v.total().max(1) as f32;
    ui.add(egui::ProgressBar::new(fraction).desired_width(520.0));
    let mut action = None;
    ui.horizontal(|ui| {
        let training = v.status == RunStatus::Training;
        if ui
            .add_enabled(training, egui::Button::new("Pause"))
            .clicked()
        {
            action = Some("pause");
        }
        let resumable = matches!(v.status, RunStatus::Paused | RunStatus::Failed(_))
            && v.request.dir.checkpoint_path().exists();
        if ui
            .add_enabled(resumable, egui::Button::new("Resume"))
            .clicked()
        {
            action = Some("resume");
        }
        let usable = !app.finetune.busy() && v.request.dir.model_path().exists();
        if ui
            .add_enabled(usable, egui::Button::new("Use this model"))
            .on_hover_text("open the run's model (EMA weights) for generating")
            .clicked()
        {
            action = Some("use");
        }
    });
    ui.horizontal_top(|ui| {
        ui.vertical(|ui| {
            ui.label(egui::RichText::new("Loss").strong());
            let points: Vec<[f64; 2]> = v.losses.clone();
            Plot::new("finetune-loss")
                .width(520.0)
                .height(260.0)
                .x_axis_label("step")
                .allow_scroll(false)
                .show(ui, |plot| plot.line(Line::new("loss", points)));
        });
        ui.vertical(|ui| match &v.sample {
            Some((texture, step)) => {
                ui.label(egui::RichText::new(format!("Samples at step {step}")).strong());
                let size = texture.size_vec2();
                let scale = (300.0 / size.x.max(size.y)).max(1.0).floor();
                ui.image((texture.id(), size * scale));
            }
            None => {
                ui.label(egui::RichText::new("Samples").strong());
                ui.weak("one image per class, every few steps and at the end");
            }
        });
    });
    let (dir, request) = (v.request.dir.clone(), v.request.clone());
    match action {
        Some("pause") => {
            app.worker.pause_training();
            if let Some(v) = &mut app.finetune.view {
                v.status = RunStatus::Pausing;
            }
        }
        Some("resume") => {
            let request = FinetuneRequest {
                resume: true,
                ..request
            };
            app.finetune.begin(&app.worker, request);
        }
        Some("use") => app.open_files(vec![dir.model_path()]),
        _ => {}
    }
}

fn earlier_runs(app: &mut BitDanceApp, ui: &mut egui::Ui) {
    if app.finetune.runs.is_empty() {
        return;
    }
    ui.separator();
    ui.label(egui::RichText::new("Runs").strong());
    let busy = app.finetune.busy() || app.generate.busy();
    let shown = app.finetune.view.as_ref().map(|v| v.request.dir.clone());
    let mut chosen: Option<(SavedRun, RunAction)> = None;
    egui::Grid::new("finetune-runs")
        .num_columns(4)
        .striped(true)
        .spacing([14.0, 6.0])
        .show(ui, |ui| {
            for run in &app.finetune.runs {
                let here = shown.as_ref() == Some(&run.dir);
                ui.label(run.name());
                ui.weak(run.plan.data.describe());
                let state = if run.finished() {
                    format!("done, {} steps", run.plan.options.steps)
                } else {
                    format!("step {} of {}", run.logged_step, run.plan.options.steps)
                };
                ui.label(state);
                ui.horizontal(|ui| {
                    let can_resume = !busy && !here && !run.finished() && run.has_checkpoint;
                    let actions = [
                        ("Continue", can_resume, RunAction::Continue),
                        ("Use model", !busy && run.has_model, RunAction::Use),
                        ("Delete", !(busy && here), RunAction::Delete),
                    ];
                    for (label, enabled, action) in actions {
                        if ui.add_enabled(enabled, egui::Button::new(label)).clicked() {
                            chosen = Some((run.clone(), action));
                        }
                    }
                });
                ui.end_row();
            }
        });
    let Some((run, action)) = chosen else {
        return;
    };
    match action {
        RunAction::Continue => {
            let request = FinetuneRequest {
                dir: run.dir,
                plan: run.plan,
                resume: true,
            };
            app.finetune.begin(&app.worker, request);
        }
        RunAction::Use => app.open_files(vec![run.dir.model_path()]),
        RunAction::Delete => {
            if let Err(e) = delete_run(&run.dir) {
                app.tell(format!("{}: {e}", run.dir.path.display()), true);
            }
            if shown.as_ref() == Some(&run.dir) {
                app.finetune.view = None;
            }
            app.finetune.runs = saved_runs();
        }
    }
}

/// What a button of the runs list asks.
#[derive(Clone, Copy)]
enum RunAction {
    Continue,
    Use,
    Delete,
}

/// A row of the options grid: `label` and the value it names (its accessible name, so screen
/// readers and the UI tests find it by the label).
fn option_row(ui: &mut egui::Ui, label: &str, value: egui::DragValue<'_>) -> egui::Response {
    let name = ui.label(label);
    let response = ui.add(value).labelled_by(name.id);
    ui.end_row();
    response
}

/// "s" unless `n` is 1.
fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
