//! The window: GPU summary, class picker and Generate with the embedded default model (a
//! preview of the image as its tokens are sampled, a progress bar over the AR steps, Stop),
//! conformance table.

use std::time::{Duration, Instant};

use bitdance::conformance::CheckResult;
use bitdance::gpu::AdapterSummary;
use eframe::egui::{self, Color32, RichText};

use crate::worker::{Command, Event, Worker};

const OK: Color32 = Color32::from_rgb(40, 160, 70);
const FAIL: Color32 = Color32::from_rgb(220, 60, 60);

enum GpuState {
    Opening,
    Ready(AdapterSummary),
    Failed(String),
}

/// Conformance rows so far, tagged with their family, and the run's timing.
#[derive(Default)]
struct Checks {
    rows: Vec<(String, CheckResult)>,
    started: Option<Instant>,
    elapsed: Option<Duration>,
}

/// The generator's state as the UI shows it.
#[derive(Default)]
struct Generation {
    classes: Vec<String>,
    class: usize,
    seed: u64,
    progress: Option<(usize, usize)>,
    started: Option<Instant>,
    /// The image so far and the AR step it shows, while generating.
    preview: Option<(egui::TextureHandle, usize)>,
    image: Option<(egui::TextureHandle, f64)>,
    /// A note on the last run (stopped early).
    note: Option<String>,
    error: Option<String>,
}

/// The app's state; the GPU itself lives on the worker thread.
pub struct BitDanceApp {
    worker: Worker,
    gpu: GpuState,
    checks: Checks,
    generation: Generation,
}

impl BitDanceApp {
    /// Starts the GPU worker; the window shows while the GPU opens.
    pub fn new(cc: &eframe::CreationContext<'_>) -> Self {
        Self::with_context(cc.egui_ctx.clone())
    }

    /// The app on egui context `ctx` (repainted when the worker reports).
    pub fn with_context(ctx: egui::Context) -> Self {
        Self {
            worker: Worker::spawn(ctx),
            gpu: GpuState::Opening,
            checks: Checks::default(),
            generation: Generation::default(),
        }
    }

    fn running(&self) -> bool {
        self.checks.started.is_some() && self.checks.elapsed.is_none()
    }

    fn poll_worker(&mut self, ctx: &egui::Context) {
        while let Ok(event) = self.worker.events.try_recv() {
            match event {
                Event::Opened(adapter) => self.gpu = GpuState::Ready(adapter),
                Event::OpenFailed(reason) => self.gpu = GpuState::Failed(reason),
                Event::Family(family, rows) if rows.is_empty() => {
                    self.checks.rows.push((family, no_check()));
                }
                Event::Family(family, rows) => {
                    let tagged = rows.into_iter().map(|r| (family.clone(), r));
                    self.checks.rows.extend(tagged);
                }
                Event::ChecksDone => {
                    self.checks.elapsed = self.checks.started.map(|t| t.elapsed());
                }
                Event::ModelReady(names) => self.generation.classes = names,
                Event::Progress(step, steps) => self.generation.progress = Some((step, steps)),
                Event::Preview(rgb, side, step) => {
                    let image = egui::ColorImage::from_rgb([side, side], &rgb);
                    let texture = ctx.load_texture("preview", image, egui::TextureOptions::NEAREST);
                    self.generation.preview = Some((texture, step));
                }
                Event::Image(rgb, side, secs) => {
                    let image = egui::ColorImage::from_rgb([side, side], &rgb);
                    let texture = ctx.load_texture("sample", image, egui::TextureOptions::NEAREST);
                    self.generation.image = Some((texture, secs));
                    self.generation.progress = None;
                    self.generation.preview = None;
                }
                Event::Stopped(step) => {
                    self.generation.note = Some(format!("stopped after AR step {step}"));
                    self.generation.progress = None;
                }
                Event::GenerateFailed(e) => {
                    self.generation.error = Some(e);
                    self.generation.progress = None;
                    self.generation.preview = None;
                }
            }
        }
    }

    fn gpu_section(&self, ui: &mut egui::Ui) {
        ui.heading("GPU");
        match &self.gpu {
            GpuState::Opening => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Opening the GPU…");
                });
            }
            GpuState::Failed(reason) => {
                ui.colored_label(FAIL, format!("No GPU: {reason}"));
            }
            GpuState::Ready(a) => {
                egui::Grid::new("adapter").num_columns(2).show(ui, |ui| {
                    for (key, value) in [
                        ("Name", &a.name),
                        ("Backend", &a.backend),
                        ("Type", &a.device_type),
                        ("Driver", &a.driver),
                    ] {
                        ui.strong(key);
                        ui.label(value);
                        ui.end_row();
                    }
                });
            }
        }
    }

    fn generate_section(&mut self, ui: &mut egui::Ui) {
        ui.heading("Generate (default model)");
        let g = &mut self.generation;
        if g.classes.is_empty() {
            match &g.error {
                Some(e) => ui.colored_label(FAIL, e),
                None => ui.label("Loading the model…"),
            };
            return;
        }
        ui.horizontal(|ui| {
            egui::ComboBox::from_label("class")
                .selected_text(class_label(g.class, &g.classes[g.class]))
                .show_ui(ui, |ui| {
                    for (id, name) in g.classes.iter().enumerate() {
                        ui.selectable_value(&mut g.class, id, class_label(id, name));
                    }
                });
            let busy = g.progress.is_some();
            if ui
                .add_enabled(!busy, egui::Button::new("Generate"))
                .clicked()
            {
                g.seed += 1;
                g.error = None;
                g.note = None;
                g.progress = Some((0, 1));
                g.started = Some(Instant::now());
                self.worker.send(Command::Generate {
                    class: g.class as u32,
                    seed: g.seed,
                });
            }
            if let Some((step, steps)) = g.progress {
                if ui.button("Stop").clicked() {
                    self.worker.stop();
                }
                let elapsed = g.started.map_or(0.0, |t| t.elapsed().as_secs_f64());
                ui.add(
                    egui::ProgressBar::new(step as f32 / steps.max(1) as f32)
                        .desired_width(200.0)
                        .text(format!("step {step} of {steps}, {elapsed:.1} s")),
                );
                ui.ctx().request_repaint_after(Duration::from_millis(100));
            }
        });
        if let Some(e) = &g.error {
            ui.colored_label(FAIL, e);
        }
        if let Some(note) = &g.note {
            ui.label(note);
        }
        let side = egui::vec2(192.0, 192.0);
        match (&g.preview, &g.image) {
            (Some((texture, step)), _) if g.progress.is_some() => {
                ui.add(egui::Image::new(texture).fit_to_exact_size(side));
                ui.label(format!("preview after AR step {step}"));
            }
            (_, Some((texture, secs))) => {
                ui.add(egui::Image::new(texture).fit_to_exact_size(side));
                ui.label(format!("{secs:.1} s"));
            }
            _ => {}
        }
    }

    fn checks_section(&mut self, ui: &mut egui::Ui) {
        ui.heading("Kernel conformance");
        ui.horizontal(|ui| {
            let ready = matches!(self.gpu, GpuState::Ready(_)) && !self.running();
            if ui
                .add_enabled(ready, egui::Button::new("Run conformance checks"))
                .clicked()
            {
                self.checks = Checks {
                    started: Some(Instant::now()),
                    ..Default::default()
                };
                self.worker.send(Command::RunChecks);
            }
            let passed = self.checks.rows.iter().filter(|(_, r)| r.passed()).count();
            let failed = self.checks.rows.len() - passed;
            if self.running() {
                ui.spinner();
                ui.label(format!("{passed} passed, {failed} failed so far…"));
            } else if let Some(t) = self.checks.elapsed {
                let color = if failed == 0 { OK } else { FAIL };
                let summary = format!(
                    "{passed} passed, {failed} failed in {:.1} s",
                    t.as_secs_f64()
                );
                ui.colored_label(color, summary);
            } else {
                ui.label("Each GPU kernel against its f64 CPU reference.");
            }
        });
        if self.checks.rows.is_empty() {
            return;
        }
        egui::ScrollArea::vertical()
            .auto_shrink([false, false])
            .show(ui, |ui| {
                egui::Grid::new("checks")
                    .num_columns(6)
                    .striped(true)
                    .show(ui, |ui| {
                        for head in [
                            "Family",
                            "Op",
                            "Shapes",
                            "Rel. error",
                            "Tolerance",
                            "Result",
                        ] {
                            ui.strong(head);
                        }
                        ui.end_row();
                        for (family, r) in &self.checks.rows {
                            table_row(ui, family, r);
                        }
                    });
            });
    }
}

fn table_row(ui: &mut egui::Ui, family: &str, r: &CheckResult) {
    ui.label(family);
    ui.label(&r.op);
    ui.label(&r.shapes);
    ui.monospace(if r.error.is_some() && r.rel_error.is_nan() {
        "—".to_string()
    } else {
        format!("{:.2e}", r.rel_error)
    });
    ui.monospace(if r.tolerance.is_nan() {
        String::new()
    } else {
        format!("{:.0e}", r.tolerance)
    });
    if let Some(why) = &r.skipped {
        ui.label(format!("skipped: {why}"));
    } else if r.passed() {
        ui.label(RichText::new("ok").color(OK));
    } else {
        let why = r
            .error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        ui.label(RichText::new(format!("FAIL{why}")).color(FAIL));
    }
    ui.end_row();
}

/// The row shown for a family that ran no check (it counts as a failure).
fn no_check() -> CheckResult {
    CheckResult {
        op: "(none)".into(),
        shapes: String::new(),
        rel_error: f64::NAN,
        tolerance: f64::NAN,
        error: Some("ran no check".into()),
        skipped: None,
    }
}

impl BitDanceApp {
    /// One frame of the window's contents.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        self.poll_worker(&ui.ctx().clone());
        egui::CentralPanel::default_margins().show(ui, |ui| {
            self.gpu_section(ui);
            ui.separator();
            self.generate_section(ui);
            ui.separator();
            self.checks_section(ui);
        });
    }
}

impl eframe::App for BitDanceApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
    }
}

/// A class in the picker: "index · name", or the name alone when it is the index (digits).
fn class_label(id: usize, name: &str) -> String {
    if name == id.to_string() {
        name.to_string()
    } else {
        format!("{id} · {name}")
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use egui_kittest::kittest::Queryable;
    use egui_kittest::Harness;

    use eframe::egui;

    use super::BitDanceApp;

    /// Steps the UI until `done` holds, failing after `limit`.
    fn step_until(
        harness: &mut Harness<'_, BitDanceApp>,
        limit: Duration,
        what: &str,
        done: impl Fn(&Harness<'_, BitDanceApp>) -> bool,
    ) {
        let start = Instant::now();
        while !done(harness) {
            assert!(
                start.elapsed() < limit,
                "{what} did not happen within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
            harness.step();
        }
    }

    #[test]
    fn generate_shows_the_image_forming_then_the_image() {
        let app = BitDanceApp::with_context(egui::Context::default());
        let mut harness = Harness::builder()
            .with_size(egui::vec2(1000.0, 760.0))
            .build_ui_state(|ui, app: &mut BitDanceApp| app.show(ui), app);
        let limit = Duration::from_secs(120);
        step_until(&mut harness, limit, "the model loading", |h| {
            h.query_by_label("Generate").is_some()
        });
        harness.get_by_label("Generate").click();
        harness.step();
        // A preview of the tokens sampled so far appears while the run goes on.
        step_until(&mut harness, limit, "a preview", |h| {
            h.query_by_label_contains("preview after AR step").is_some()
        });
        assert!(harness.query_by_label("Stop").is_some());
        step_until(&mut harness, limit, "the image", |h| {
            h.query_by_label("Stop").is_none() && h.query_by_label_contains(" s").is_some()
        });
        assert!(harness.query_by_label_contains("preview after").is_none());
    }

    #[test]
    fn stop_ends_a_run_between_ar_steps() {
        let app = BitDanceApp::with_context(egui::Context::default());
        let mut harness =
            Harness::builder().build_ui_state(|ui, app: &mut BitDanceApp| app.show(ui), app);
        let limit = Duration::from_secs(120);
        step_until(&mut harness, limit, "the model loading", |h| {
            h.query_by_label("Generate").is_some()
        });
        harness.get_by_label("Generate").click();
        harness.step();
        step_until(&mut harness, limit, "the run starting", |h| {
            h.query_by_label("Stop").is_some()
        });
        harness.get_by_label("Stop").click();
        step_until(&mut harness, limit, "the stop", |h| {
            h.query_by_label_contains("stopped after AR step").is_some()
        });
    }
}
