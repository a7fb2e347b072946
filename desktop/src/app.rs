//! The window: a top bar with the panels (Create, Models, Gallery, Fine-tune, GPU), the worker's events
//! turned into state, and files dropped on the window (a model opens, a PNG restores its recipe).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bitdance::conformance::CheckResult;
use bitdance::studio::{tile_grid, Recipe};
use eframe::egui::{self, Color32};

use crate::finetune::FinetuneState;
use crate::gallery::Gallery;
use crate::generate::GenerateState;
use crate::models::ModelsState;
use crate::storage;
use crate::worker::{AdapterInfo, Command, Event, LoadedModel, Worker};

pub const OK: Color32 = Color32::from_rgb(60, 180, 90);
pub const FAIL: Color32 = Color32::from_rgb(230, 80, 80);
/// The colour of a warning that does not stop anything.
pub const WARN: Color32 = Color32::from_rgb(230, 170, 60);

/// The GPU as the app knows it.
pub enum GpuState {
    Opening,
    Ready(AdapterInfo),
    Failed(String),
}

/// Conformance rows so far, tagged with their family, and the run's timing.
#[derive(Default)]
pub struct Checks {
    pub rows: Vec<(String, CheckResult)>,
    pub started: Option<Instant>,
    pub elapsed: Option<Duration>,
}

impl Checks {
    pub fn running(&self) -> bool {
        self.started.is_some() && self.elapsed.is_none()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Panel {
    Generate,
    Models,
    Gallery,
    Finetune,
    Gpu,
}

/// The app's state; the GPU itself lives on the worker thread.
pub struct BitDanceApp {
    pub worker: Worker,
    pub gpu: GpuState,
    pub checks: Checks,
    /// Every adapter of this machine (the GPU panel's chooser).
    pub adapters: Vec<bitdance::gpu::AdapterSummary>,
    pub model: Option<LoadedModel>,
    pub panel: Panel,
    pub generate: GenerateState,
    pub models: ModelsState,
    pub gallery: Gallery,
    pub finetune: FinetuneState,
    /// A message for the user at the top of the window (an error, a restored recipe).
    pub notice: Option<(String, bool)>,
}

impl BitDanceApp {
    /// Starts the GPU worker; the window shows while the GPU opens.
    pub fn new(cc: &eframe::CreationContext<'_>) -> Self {
        Self::with_context(cc.egui_ctx.clone())
    }

    /// The app on egui context `ctx` (repainted when the worker reports).
    pub fn with_context(ctx: egui::Context) -> Self {
        style(&ctx);
        Self {
            worker: Worker::spawn(ctx),
            gpu: GpuState::Opening,
            checks: Checks::default(),
            adapters: Vec::new(),
            model: None,
            panel: Panel::Generate,
            generate: GenerateState::default(),
            models: ModelsState::load(),
            gallery: Gallery::load(),
            finetune: FinetuneState::default(),
            notice: None,
        }
    }

    /// Sets the message at the top (`error` colours it).
    pub fn tell(&mut self, text: impl Into<String>, error: bool) {
        self.notice = Some((text.into(), error));
    }

    fn poll_worker(&mut self, ctx: &egui::Context) {
        while let Ok(event) = self.worker.events.try_recv() {
            match event {
                Event::Opened(adapter) => self.gpu = GpuState::Ready(adapter),
                Event::Adapters(list) => self.adapters = list,
                Event::AdapterFailed(reason) => self.tell(reason, true),
                Event::OpenFailed(reason) => self.gpu = GpuState::Failed(reason),
                Event::Family(family, rows) if rows.is_empty() => {
                    self.checks
                        .rows
                        .push((family, crate::gpu_panel::no_check()));
                }
                Event::Family(family, rows) => {
                    let tagged = rows.into_iter().map(|r| (family.clone(), r));
                    self.checks.rows.extend(tagged);
                }
                Event::ChecksDone => {
                    self.checks.elapsed = self.checks.started.map(|t| t.elapsed());
                }
                Event::Loading(name, done, total) => {
                    self.models.loading = Some((name, done, total))
                }
                Event::ModelReady(m) => {
                    self.models.loading = None;
                    if m.path.is_some() {
                        self.models.remember(&m);
                    }
                    self.generate.model_changed(&m);
                    self.model = Some(*m);
                    self.generate.after_model_ready(&self.worker);
                }
                Event::ModelFailed(e) => {
                    self.models.loading = None;
                    self.tell(e, true);
                }
                Event::Progress(step, steps) => self.generate.progress = Some((step, steps)),
                Event::Preview(grid, step) => {
                    let size = [grid.width() as usize, grid.height() as usize];
                    let image = egui::ColorImage::from_rgb(size, grid.as_raw());
                    let texture = ctx.load_texture("preview", image, egui::TextureOptions::NEAREST);
                    self.generate.preview = Some((texture, step));
                }
                Event::Images(images, timing) => {
                    let Some(first) = images.first() else {
                        continue;
                    };
                    let recipe = first.recipe.clone();
                    let side = first.side;
                    let rgb: Vec<u8> = images.iter().flat_map(|i| i.rgb.iter().copied()).collect();
                    let grid = tile_grid(&rgb, images.len(), side);
                    let size = [grid.width() as usize, grid.height() as usize];
                    let shown = egui::ColorImage::from_rgb(size, grid.as_raw());
                    let texture = ctx.load_texture("sample", shown, egui::TextureOptions::NEAREST);
                    for image in &images {
                        match storage::keep_image(&image.png, &image.recipe, image.index) {
                            Ok(item) => self.gallery.add(item),
                            Err(e) => self.tell(format!("the image could not be kept: {e}"), true),
                        }
                    }
                    let reproduced = self.generate.finished(texture, timing, &recipe);
                    if let Some(report) = reproduced {
                        let matched = report.0;
                        self.tell(report.1, !matched);
                    }
                    self.generate.run_next(&self.worker);
                }
                Event::Stopped(step) => {
                    self.generate.stopped(step);
                }
                Event::GenerateFailed(e) => {
                    self.generate.failed(e);
                }
                Event::Train(event) => self.finetune.on_event(ctx, event),
                Event::Recovered(reason) if self.finetune.busy() => {
                    self.tell(
                        format!(
                            "The GPU device was lost ({reason}): it was reopened and the run \
                             continues from its last checkpoint."
                        ),
                        true,
                    );
                }
                Event::Recovered(reason) => {
                    self.generate
                        .failed(format!("the GPU device was lost ({reason})"));
                    self.tell(
                        "The GPU device was lost: it was reopened and the model loaded again. \
                         Generate to continue.",
                        true,
                    );
                }
            }
        }
    }

    /// Files dropped on the window: a `.safetensors` model (with its autoencoder) opens, a PNG
    /// made by BitDance restores its recipe.
    fn take_dropped(&mut self, ctx: &egui::Context) {
        let paths: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        if paths.is_empty() {
            return;
        }
        let (pngs, models): (Vec<PathBuf>, Vec<PathBuf>) = paths
            .into_iter()
            .partition(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")));
        if let Some(png) = pngs.first() {
            self.restore_recipe_from(png);
        } else if !models.is_empty() {
            self.open_files(models);
        }
    }

    /// Reads the recipe of a PNG and restores its settings in the Generate panel.
    pub fn restore_recipe_from(&mut self, png: &std::path::Path) {
        let read = std::fs::read(png)
            .map_err(|e| format!("{}: {e}", png.display()))
            .and_then(|b| {
                Recipe::from_png(&png.display().to_string(), &b).map_err(|e| e.to_string())
            });
        match read {
            Ok(recipe) => self.restore_recipe(recipe),
            Err(e) => self.tell(e, true),
        }
    }

    /// Restores `recipe`'s settings in the Generate panel (Reproduce re-runs it).
    pub fn restore_recipe(&mut self, recipe: Recipe) {
        self.tell(
            format!(
                "Restored the recipe: {} · {} · seed {} · cfg {} · {} head steps",
                recipe.model,
                recipe.images_text(),
                recipe.seed,
                recipe.cfg,
                recipe.head_steps
            ),
            false,
        );
        self.generate.restore(recipe, self.model.as_ref());
        self.panel = Panel::Generate;
    }

    /// Opens model files (one model, optionally with its autoencoder file; `.safetensors` or
    /// official `.pt` checkpoints).
    pub fn open_files(&mut self, files: Vec<PathBuf>) {
        self.worker.send(Command::OpenFiles(files));
        self.panel = Panel::Models;
    }

    fn top_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.heading(egui::RichText::new("BitDance").strong());
            ui.add_space(16.0);
            for (panel, label) in [
                (Panel::Generate, "Create"),
                (Panel::Models, "Models"),
                (Panel::Gallery, "Gallery"),
                (Panel::Finetune, "Fine-tune"),
                (Panel::Gpu, "GPU"),
            ] {
                if ui.selectable_label(self.panel == panel, label).clicked() {
                    self.panel = panel;
                }
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                let text = match &self.gpu {
                    GpuState::Opening => "opening the GPU…".to_string(),
                    GpuState::Ready(a) => format!("{} · {}", a.summary.name, a.summary.backend),
                    GpuState::Failed(_) => "no GPU".to_string(),
                };
                ui.weak(text);
            });
        });
        if let Some((text, error)) = self.notice.clone() {
            ui.horizontal(|ui| {
                let color = if error { FAIL } else { OK };
                ui.colored_label(color, text);
                if ui.small_button("Dismiss").clicked() {
                    self.notice = None;
                }
            });
        }
    }

    /// One frame of the window's contents.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        self.poll_worker(&ctx);
        self.take_dropped(&ctx);
        egui::Panel::top("bar").show(ui, |ui| self.top_bar(ui));
        egui::CentralPanel::default_margins().show(ui, |ui| match self.panel {
            Panel::Generate => crate::generate::show(self, ui),
            Panel::Models => crate::models::show(self, ui),
            Panel::Gallery => crate::gallery::show(self, ui),
            Panel::Finetune => crate::finetune::show(self, ui),
            Panel::Gpu => crate::gpu_panel::show(self, ui),
        });
        if self.generate.progress.is_some() || self.models.loading.is_some() || self.finetune.busy()
        {
            ctx.request_repaint_after(Duration::from_millis(100));
        }
    }
}

/// Roomier spacing, larger text and the studio's accent colour.
pub fn style(ctx: &egui::Context) {
    ctx.global_style_mut(|s| {
        s.spacing.item_spacing = egui::vec2(8.0, 8.0);
        s.spacing.button_padding = egui::vec2(10.0, 5.0);
        s.spacing.slider_width = 140.0;
        s.spacing.interact_size.y = 26.0;
        for (text, size) in [
            (egui::TextStyle::Body, 15.0),
            (egui::TextStyle::Button, 15.0),
            (egui::TextStyle::Heading, 22.0),
            (egui::TextStyle::Small, 12.0),
        ] {
            if let Some(font) = s.text_styles.get_mut(&text) {
                font.size = size;
            }
        }
        s.visuals.selection.bg_fill = ACCENT;
    });
}

/// The studio's accent colour (primary buttons, the selected panel).
pub const ACCENT: Color32 = Color32::from_rgb(92, 120, 230);

impl eframe::App for BitDanceApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
    }
}
