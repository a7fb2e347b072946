//! The Generate panel: class search over the model's names (several classes at once), guidance
//! with its schedule, head steps, seed (locked or rolled), images per class, batch (images
//! sampled together); the images forming as they are sampled with the step, elapsed and
//! estimated time left; Stop; Reproduce of a restored recipe (the token hash compared).

use std::collections::VecDeque;
use std::time::Instant;

use bitdance::model::{CfgSchedule, SampleSettings};
use bitdance::studio::{ClassMatch, ClassNames, Recipe, SampleRequest};
use eframe::egui;

use crate::app::{BitDanceApp, FAIL};
use crate::worker::{Command, ImageTiming, LoadedModel, Worker};

/// Most images sampled together from the panel.
pub const MAX_BATCH: usize = 8;

/// The panel's state.
pub struct GenerateState {
    pub classes: ClassNames,
    pub query: String,
    /// The classes chosen, in order.
    pub chosen: Vec<ClassMatch>,
    pub cfg: f32,
    pub schedule: CfgSchedule,
    pub head_steps: usize,
    pub seed: u64,
    pub seed_locked: bool,
    pub per_class: usize,
    /// Images sampled together per run (each run one recipe and seed).
    pub batch: usize,
    /// Runs still to make, after the current one.
    queue: VecDeque<SampleRequest>,
    pub progress: Option<(usize, usize)>,
    pub started: Option<Instant>,
    pub preview: Option<(egui::TextureHandle, usize)>,
    pub image: Option<(egui::TextureHandle, ImageTiming)>,
    pub note: Option<String>,
    pub error: Option<String>,
    /// A recipe restored from a PNG, waiting for Reproduce or being reproduced.
    pub recipe: Option<Recipe>,
    reproducing: bool,
}

impl Default for GenerateState {
    fn default() -> Self {
        Self {
            classes: ClassNames::for_model(0, None),
            query: String::new(),
            chosen: Vec::new(),
            cfg: 3.0,
            schedule: CfgSchedule::Linear,
            head_steps: 50,
            seed: random_seed(),
            seed_locked: false,
            per_class: 1,
            batch: 1,
            queue: VecDeque::new(),
            progress: None,
            started: None,
            preview: None,
            image: None,
            note: None,
            error: None,
            recipe: None,
            reproducing: false,
        }
    }
}

impl GenerateState {
    /// A new model: its classes and recommended settings (the published cfg for released ones).
    pub fn model_changed(&mut self, m: &LoadedModel) {
        self.classes = m.card.classes.clone();
        self.cfg = m.card.settings.cfg;
        self.schedule = m.card.settings.schedule;
        self.head_steps = m.card.settings.head_steps;
        self.chosen.clear();
        if self.classes.len() <= 16 {
            self.chosen.extend(self.classes.search("", 1));
        }
    }

    /// After a model loads: a reproduction waiting for it starts.
    pub fn after_model_ready(&mut self, worker: &Worker) {
        if self.reproducing && self.progress.is_none() {
            self.reproducing = false;
            if let Some(recipe) = self.recipe.clone() {
                self.start_reproduce(&recipe, worker);
            }
        }
    }

    fn settings(&self) -> SampleSettings {
        SampleSettings {
            cfg: self.cfg,
            schedule: self.schedule,
            head_steps: self.head_steps,
        }
    }

    /// Whether an image is being sampled.
    pub fn busy(&self) -> bool {
        self.progress.is_some()
    }

    /// Queues `per_class` images of every chosen class, in runs of `batch` images sampled
    /// together (seeds seed, seed+1, ... one per run).
    fn start(&mut self, worker: &Worker) {
        let settings = self.settings();
        if let Err(e) = settings.validate() {
            self.error = Some(e.to_string());
            return;
        }
        let images: Vec<u32> = self
            .chosen
            .iter()
            .flat_map(|c| std::iter::repeat_n(c.index as u32, self.per_class))
            .collect();
        let mut seed = self.seed;
        for classes in images.chunks(self.batch.clamp(1, MAX_BATCH)) {
            self.queue.push_back(SampleRequest {
                classes: classes.to_vec(),
                batch: classes.len(),
                settings,
                seed,
            });
            seed += 1;
        }
        if !self.seed_locked {
            self.seed = seed;
        }
        self.error = None;
        self.note = None;
        self.run_next(worker);
    }

    /// Sends the next queued image to the worker, if any.
    pub fn run_next(&mut self, worker: &Worker) {
        let Some(job) = self.queue.pop_front() else {
            return;
        };
        self.progress = Some((0, 1));
        self.started = Some(Instant::now());
        worker.send(Command::Generate(job));
    }

    /// A finished image; when it reproduces a recipe, whether the token hash matched and what
    /// to tell the user.
    pub fn finished(
        &mut self,
        texture: egui::TextureHandle,
        timing: ImageTiming,
        recipe: &Recipe,
    ) -> Option<(bool, String)> {
        self.image = Some((texture, timing));
        self.progress = None;
        self.preview = None;
        let wanted = self.recipe.take_if(|_| self.reproducing)?;
        self.reproducing = false;
        let matched = wanted.token_hash == recipe.token_hash;
        Some(match matched {
            true => (true, "Reproduced: the same tokens, bit for bit".to_string()),
            false => (
                false,
                format!(
                    "Not reproduced: different tokens (this adapter: {}; the recipe's: {})",
                    recipe.adapter, wanted.adapter
                ),
            ),
        })
    }

    pub fn stopped(&mut self, step: usize) {
        self.note = Some(format!("stopped after AR step {step}"));
        self.progress = None;
        self.queue.clear();
        self.reproducing = false;
    }

    pub fn failed(&mut self, e: String) {
        self.error = Some(e);
        self.progress = None;
        self.preview = None;
        self.queue.clear();
        self.reproducing = false;
    }

    /// Takes the settings of `recipe` (Reproduce re-runs it; its model opens first if needed).
    pub fn restore(&mut self, recipe: Recipe, model: Option<&LoadedModel>) {
        self.cfg = recipe.cfg;
        self.schedule = recipe.schedule;
        self.head_steps = recipe.head_steps;
        self.seed = recipe.seed;
        self.seed_locked = true;
        self.per_class = 1;
        self.batch = recipe.batch.clamp(1, MAX_BATCH);
        if model.is_some_and(|m| m.sha256 == recipe.model_sha256) {
            // Each class once (a recipe of several images may repeat them).
            let mut seen = std::collections::BTreeSet::new();
            self.chosen = recipe
                .classes
                .iter()
                .filter(|&&c| seen.insert(c))
                .filter_map(|&c| self.classes.search(&c.to_string(), 1).into_iter().next())
                .collect();
        }
        self.recipe = Some(recipe);
    }

    /// `n` runs of the restored recipe at the seeds after its own.
    pub fn variations(&mut self, worker: &Worker, n: u64) {
        let Some(recipe) = self.recipe.clone() else {
            return;
        };
        for k in 1..=n {
            self.queue.push_back(SampleRequest {
                seed: recipe.seed + k,
                ..recipe.request()
            });
        }
        self.run_next(worker);
    }

    /// Runs `recipe` again with the loaded model (it must be the recipe's).
    fn start_reproduce(&mut self, recipe: &Recipe, worker: &Worker) {
        self.reproducing = true;
        self.queue.push_back(recipe.request());
        self.error = None;
        self.note = None;
        self.run_next(worker);
    }
}

/// Draws the panel.
pub fn show(app: &mut BitDanceApp, ui: &mut egui::Ui) {
    egui::Panel::left("generate-controls")
        .resizable(false)
        .exact_size(320.0)
        .show(ui, |ui| controls(app, ui));
    egui::CentralPanel::default_margins().show(ui, |ui| stage(app, ui));
}

fn controls(app: &mut BitDanceApp, ui: &mut egui::Ui) {
    let Some(model) = &app.model else {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label("Loading the model…");
        });
        return;
    };
    ui.label(egui::RichText::new(model_title(model)).strong());
    ui.weak(format!(
        "{} · {}×{} · {} classes · {}",
        model.card.config_name(),
        model.card.config.resolution,
        model.card.config.resolution,
        model.card.classes.len(),
        format!("{:?}", model.precision).to_lowercase()
    ));
    let training = app.finetune.busy();
    let g = &mut app.generate;
    ui.separator();
    let label = ui.label("Search classes");
    let search = ui.add(
        egui::TextEdit::singleline(&mut g.query)
            .hint_text("a name, a synonym or a number")
            .desired_width(f32::INFINITY),
    );
    search
        .labelled_by(label.id)
        .on_hover_text("type a name (\"tabby\"), a synonym or an index");
    if !g.query.trim().is_empty() {
        egui::ScrollArea::vertical()
            .id_salt("hits")
            .max_height(180.0)
            .show(ui, |ui| {
                let hits = g.classes.search(&g.query, 50);
                if hits.is_empty() {
                    ui.weak("No class matches");
                }
                for hit in hits {
                    let label = g.classes.label(hit.index);
                    if ui.selectable_label(false, label).clicked() {
                        if !g.chosen.iter().any(|c| c.index == hit.index) {
                            g.chosen.push(hit);
                        }
                        g.query.clear();
                    }
                }
            });
    }
    let mut remove = None;
    ui.horizontal_wrapped(|ui| {
        for (i, c) in g.chosen.iter().enumerate() {
            let text = format!("{} ×", g.classes.label(c.index));
            if ui.button(text).on_hover_text("remove").clicked() {
                remove = Some(i);
            }
        }
        if g.chosen.is_empty() {
            ui.weak("No class chosen");
        }
    });
    if let Some(i) = remove {
        g.chosen.remove(i);
    }
    ui.separator();
    ui.add(egui::Slider::new(&mut g.cfg, 1.0..=10.0).text("guidance"));
    egui::ComboBox::from_label("schedule")
        .selected_text(match g.schedule {
            CfgSchedule::Linear => "linear (official)",
            CfgSchedule::Constant => "constant",
        })
        .show_ui(ui, |ui| {
            ui.selectable_value(&mut g.schedule, CfgSchedule::Linear, "linear (official)");
            ui.selectable_value(&mut g.schedule, CfgSchedule::Constant, "constant");
        });
    ui.add(egui::Slider::new(&mut g.head_steps, 1..=200).text("head steps"));
    ui.horizontal(|ui| {
        ui.add(egui::DragValue::new(&mut g.seed).prefix("seed "));
        if ui.button("Random").on_hover_text("a random seed").clicked() {
            g.seed = random_seed();
        }
        ui.checkbox(&mut g.seed_locked, "lock");
    });
    ui.add(egui::Slider::new(&mut g.per_class, 1..=16).text("images per class"));
    ui.add(egui::Slider::new(&mut g.batch, 1..=MAX_BATCH).text("batch"))
        .on_hover_text(
            "images sampled together in one run: faster per image, more GPU memory; \
             a run's images share one recipe and seed",
        );
    ui.separator();
    ui.horizontal(|ui| {
        let can = !g.busy() && !g.chosen.is_empty() && !training;
        let generate = egui::Button::new(egui::RichText::new("Generate").strong())
            .fill(crate::app::ACCENT)
            .min_size(egui::vec2(160.0, 34.0));
        let hint = if training {
            "the GPU is fine-tuning: pause the run to generate"
        } else {
            "sample the chosen classes (Ctrl+Enter)"
        };
        let clicked = ui.add_enabled(can, generate).on_hover_text(hint).clicked();
        let shortcut = egui::KeyboardShortcut::new(egui::Modifiers::COMMAND, egui::Key::Enter);
        if clicked || (can && ui.input_mut(|i| i.consume_shortcut(&shortcut))) {
            g.start(&app.worker);
        }
        if ui
            .add_enabled(g.busy(), egui::Button::new("Stop"))
            .clicked()
        {
            app.worker.stop();
        }
    });
    if let Some(recipe) = g.recipe.clone() {
        ui.separator();
        ui.label(egui::RichText::new("Restored recipe").strong());
        ui.weak(format!(
            "{} · {} · seed {} · cfg {} ({:?}) · {} steps · tokens {}…",
            recipe.model,
            recipe.images_text(),
            recipe.seed,
            recipe.cfg,
            recipe.schedule,
            recipe.head_steps,
            &recipe.token_hash[..12]
        ));
        if ui
            .add_enabled(!g.busy(), egui::Button::new("Reproduce"))
            .clicked()
        {
            reproduce(app, recipe);
        }
    }
}

/// Re-runs `recipe`: with the loaded model when it is the recipe's, else after opening the
/// recent model of that SHA-256.
pub fn reproduce(app: &mut BitDanceApp, recipe: Recipe) {
    if app
        .model
        .as_ref()
        .is_some_and(|m| m.sha256 == recipe.model_sha256)
    {
        app.generate.start_reproduce(&recipe, &app.worker);
        return;
    }
    let recent = app
        .models
        .recent
        .iter()
        .find(|m| m.sha256 == recipe.model_sha256)
        .cloned();
    let command = match (recipe.model.as_str(), recent) {
        ("default", _) => Command::OpenDefault,
        (_, Some(m)) => Command::OpenFiles(std::iter::once(m.path).chain(m.vae).collect()),
        (name, None) => {
            app.tell(
                format!(
                    "this recipe needs the model {name} (SHA-256 {}…): open it in Models first",
                    &recipe.model_sha256[..12]
                ),
                true,
            );
            return;
        }
    };
    app.generate.reproducing = true;
    app.worker.send(command);
}

fn stage(app: &mut BitDanceApp, ui: &mut egui::Ui) {
    let g = &app.generate;
    if let Some((step, steps)) = g.progress {
        let elapsed = g.started.map_or(0.0, |t| t.elapsed().as_secs_f64());
        let left = match step {
            0 => String::new(),
            s => format!(
                ", about {:.0} s left",
                elapsed / s as f64 * (steps - s) as f64
            ),
        };
        ui.add(
            egui::ProgressBar::new(step as f32 / steps.max(1) as f32)
                .text(format!("step {step} of {steps}, {elapsed:.1} s{left}")),
        );
    }
    if let Some(e) = &g.error {
        ui.colored_label(FAIL, e);
    }
    if let Some(note) = &g.note {
        ui.label(note);
    }
    let side = ui
        .available_width()
        .min(ui.available_height() - 60.0)
        .clamp(128.0, 560.0);
    let size = egui::vec2(side, side);
    let shown = match (&g.preview, &g.image) {
        (Some((texture, step)), _) if g.progress.is_some() => {
            Some((texture, format!("preview after AR step {step}")))
        }
        (_, Some((texture, t))) => {
            let preview = t
                .first_preview
                .map(|p| format!(" · first preview at {p:.1} s"))
                .unwrap_or_default();
            let peak = t.peak_bytes as f64 / (1u64 << 20) as f64;
            let caption = format!(
                "done in {:.1} s{preview} · {peak:.0} MiB of GPU memory at the peak",
                t.secs
            );
            Some((texture, caption))
        }
        _ => None,
    };
    ui.vertical_centered(|ui| match shown {
        Some((texture, caption)) => {
            ui.add(egui::Image::new(texture).fit_to_exact_size(size));
            ui.label(caption);
        }
        None => {
            let (rect, _) = ui.allocate_exact_size(size, egui::Sense::hover());
            ui.painter()
                .rect_filled(rect, 8.0, ui.visuals().extreme_bg_color);
            ui.painter().text(
                rect.center(),
                egui::Align2::CENTER_CENTER,
                "Pick a class and press Generate:\nthe image forms patch by patch as it is sampled.",
                egui::FontId::proportional(15.0),
                ui.visuals().weak_text_color(),
            );
        }
    });
}

/// How the panels name a model.
pub fn model_title(m: &LoadedModel) -> String {
    match &m.path {
        None => "Default model (MNIST digits)".to_string(),
        Some(_) => m.card.name.clone(),
    }
}

/// A seed from the clock (no randomness crate is needed for a dice button).
fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    (nanos ^ (nanos >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 33
}
