//! The Models panel: open `.safetensors` models (a file dialog or a drop on the window; one
//! file, or a model and its autoencoder), the recent ones with their config, classes, size and
//! memory need against the adapter, and the default model.

use std::path::Path;

use bitdance::io::{header_size, WeightFile};
use bitdance::model::Precision;
use bitdance::studio::ModelCard;
use eframe::egui;

use crate::app::{BitDanceApp, GpuState, FAIL};
use crate::storage::{self, RecentModel};
use crate::worker::{Command, LoadedModel};

/// The panel's state.
pub struct ModelsState {
    pub recent: Vec<RecentModel>,
    /// What each recent file needs, read from its header once (not every frame).
    cards: std::collections::HashMap<std::path::PathBuf, Result<ModelCard, String>>,
    /// A model loading: its name, bytes done and in all.
    pub loading: Option<(String, u64, u64)>,
}

impl ModelsState {
    /// The recent models from the config directory.
    pub fn load() -> Self {
        Self {
            recent: storage::recent_models(),
            cards: Default::default(),
            loading: None,
        }
    }

    /// Records a model opened from files.
    pub fn remember(&mut self, m: &LoadedModel) {
        let Some(path) = m.path.clone() else {
            return;
        };
        let entry = RecentModel {
            path,
            vae: m.vae_path.clone(),
            config: m.card.config_name().to_string(),
            classes: m.card.classes.len(),
            parameters: m.card.parameters,
            sha256: m.sha256.clone(),
        };
        self.cards.remove(&entry.path);
        if let Ok(list) = storage::remember(entry) {
            self.recent = list;
        }
    }
}

/// The header of a safetensors file on disk (the data stays on disk).
fn header(path: &Path) -> Result<WeightFile<'static>, String> {
    use std::io::Read;
    let label = path.display().to_string();
    let mut f = std::fs::File::open(path).map_err(|e| format!("{label}: {e}"))?;
    let len = f.metadata().map_err(|e| format!("{label}: {e}"))?.len();
    let mut prefix = [0u8; 8];
    f.read_exact(&mut prefix)
        .map_err(|_| format!("{label}: too short for a safetensors file"))?;
    let n = header_size(&label, &prefix).map_err(|e| e.to_string())?;
    let mut head = prefix.to_vec();
    head.resize(n, 0);
    f.read_exact(&mut head[8..])
        .map_err(|e| format!("{label}: truncated header: {e}"))?;
    WeightFile::from_header(&label, &head, len).map_err(|e| e.to_string())
}

/// What a model file needs, from its header: its card, or why it cannot be read.
fn card_of(path: &Path) -> Result<ModelCard, String> {
    let file = header(path)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    ModelCard::of_file(&name, &file).map_err(|e| e.to_string())
}

/// Bytes in MiB below 1 GiB, else GiB.
fn gib(bytes: u64) -> String {
    match bytes < 1 << 30 {
        true => format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64),
        false => format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64),
    }
}

/// Draws the panel.
pub fn show(app: &mut BitDanceApp, ui: &mut egui::Ui) {
    ui.heading("Models");
    ui.label(
        "A .safetensors model written by `bitdance train`, or an official BitDance B/L/H (1x, 4x, \
         16x) checkpoint with its autoencoder, as one file or two: converted .safetensors, or the \
         .pt files themselves (read by a safe reader that executes nothing). Drop files on the \
         window or open them here.",
    );
    ui.horizontal(|ui| {
        let idle = app.models.loading.is_none() && app.generate.progress.is_none();
        if ui
            .add_enabled(idle, egui::Button::new("Open model…"))
            .clicked()
        {
            if let Some(files) = rfd::FileDialog::new()
                .add_filter("BitDance model", &["safetensors", "pt"])
                .set_title("Open a BitDance model (and its autoencoder)")
                .pick_files()
            {
                app.open_files(files);
            }
        }
        if ui
            .add_enabled(idle, egui::Button::new("Use the default model"))
            .clicked()
        {
            app.worker.send(Command::OpenDefault);
        }
    });
    if let Some(m) = &app.model {
        let mut chosen = m.precision;
        egui::ComboBox::from_label("weights on the GPU")
            .selected_text(match chosen {
                Precision::F16 => "16-bit (half the memory)",
                Precision::F32 => "32-bit, as trained",
            })
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut chosen, Precision::F16, "16-bit (half the memory)");
                ui.selectable_value(&mut chosen, Precision::F32, "32-bit, as trained");
            });
        if chosen != m.precision && app.generate.progress.is_none() {
            app.worker.send(Command::SetPrecision(chosen));
        }
    }
    if let Some((name, done, total)) = &app.models.loading {
        ui.add(
            egui::ProgressBar::new(*done as f32 / (*total).max(1) as f32).text(format!(
                "loading {name}: {} of {}",
                gib(*done),
                gib(*total)
            )),
        );
    }
    if let Some(m) = &app.model {
        ui.separator();
        ui.label(egui::RichText::new("In use").strong());
        ui.label(format!(
            "{} · {} · {} classes · {:.1} M parameters · {} held on the GPU · SHA-256 {}…",
            crate::generate::model_title(m),
            m.card.config_name(),
            m.card.classes.len(),
            m.card.parameters as f64 / 1e6,
            gib(m.held_bytes),
            &m.sha256[..12]
        ));
    }
    ui.separator();
    ui.label(egui::RichText::new("Recent").strong());
    if app.models.recent.is_empty() {
        ui.weak("Models you open are listed here, with what they need.");
        return;
    }
    let max_buffer = match &app.gpu {
        GpuState::Ready(a) => a
            .limits
            .iter()
            .find(|(k, _)| *k == "max buffer")
            .map(|(_, v)| *v),
        _ => None,
    };
    let mut open = None;
    let ModelsState { recent, cards, .. } = &mut app.models;
    egui::Grid::new("recent")
        .num_columns(5)
        .striped(true)
        .show(ui, |ui| {
            for head in ["Model", "Config", "Classes", "Needs (f16)", ""] {
                ui.strong(head);
            }
            ui.end_row();
            for r in recent.iter() {
                ui.label(
                    r.path
                        .file_name()
                        .map(|n| n.to_string_lossy().to_string())
                        .unwrap_or_default(),
                )
                .on_hover_text(r.path.display().to_string());
                ui.label(&r.config);
                ui.label(r.classes.to_string());
                let card = cards.entry(r.path.clone()).or_insert_with(|| card_of(&r.path));
                match card {
                    _ if r.path.extension().is_some_and(|e| e == "pt") => {
                        ui.weak("(converted when opened)");
                    }
                    Ok(card) => {
                        let need = card.memory_bytes(Precision::F16);
                        let text = gib(need);
                        let (binding_what, binding) = card.largest_binding();
                        let tip = format!(
                            "weights, KV cache and decoder maps; largest binding {} ({binding_what}){}",
                            gib(binding),
                            max_buffer.map(|b| format!("; this adapter's largest buffer {}", gib(b))).unwrap_or_default()
                        );
                        ui.label(text).on_hover_text(tip);
                    }
                    Err(e) => {
                        ui.colored_label(FAIL, "unreadable").on_hover_text(e.as_str());
                    }
                }
                if ui.button("Open").clicked() {
                    open = Some(std::iter::once(r.path.clone()).chain(r.vae.clone()).collect::<Vec<_>>());
                }
                ui.end_row();
            }
        });
    if let Some(files) = open {
        app.worker.send(Command::OpenFiles(files));
    }
}
