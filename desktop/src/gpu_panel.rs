//! The GPU panel: the adapter (name, backend, type, driver), its limits and features, every
//! adapter of the machine to choose from, and the kernel checks against their f64 references.

use std::time::Instant;

use bitdance::conformance::CheckResult;
use eframe::egui::{self, RichText};

use crate::app::{BitDanceApp, Checks, GpuState, FAIL, OK};
use crate::worker::Command;

/// Draws the panel.
pub fn show(app: &mut BitDanceApp, ui: &mut egui::Ui) {
    ui.heading("GPU");
    match &app.gpu {
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
                    ("Name", &a.summary.name),
                    ("Backend", &a.summary.backend),
                    ("Type", &a.summary.device_type),
                    ("Driver", &a.summary.driver),
                ] {
                    ui.strong(key);
                    ui.label(value);
                    ui.end_row();
                }
                for (key, value) in &a.limits {
                    ui.strong(*key);
                    ui.label(if *value >= 1 << 20 {
                        format!("{} MiB", value >> 20)
                    } else {
                        value.to_string()
                    });
                    ui.end_row();
                }
                ui.strong("Features");
                ui.label(a.features.join(", "));
                ui.end_row();
            });
        }
    }
    adapters(app, ui);
    ui.separator();
    checks(app, ui);
}

/// Every adapter of the machine, each with Use: the app moves to it (the model in use loads
/// there) and starts on it next time.
fn adapters(app: &mut BitDanceApp, ui: &mut egui::Ui) {
    if app.adapters.is_empty() {
        return;
    }
    ui.separator();
    ui.heading("Adapters");
    let current = match &app.gpu {
        GpuState::Ready(a) => Some((a.summary.name.clone(), a.summary.backend.clone())),
        _ => None,
    };
    let idle = !app.finetune.busy() && !app.generate.busy() && !app.checks.running();
    let mut chosen = None;
    egui::Grid::new("adapters")
        .num_columns(4)
        .striped(true)
        .spacing([14.0, 6.0])
        .show(ui, |ui| {
            for (i, a) in app.adapters.iter().enumerate() {
                ui.label(&a.name);
                ui.label(format!("{} · {}", a.backend, a.device_type));
                ui.weak(&a.driver);
                let here = current.as_ref() == Some(&(a.name.clone(), a.backend.clone()));
                if here {
                    ui.colored_label(OK, "in use");
                } else if ui
                    .add_enabled(idle, egui::Button::new("Use"))
                    .on_hover_text("move to this adapter; the app starts on it next time")
                    .clicked()
                {
                    chosen = Some(i);
                }
                ui.end_row();
            }
        });
    ui.weak(
        "WGPU_BACKEND=vulkan|metal|dx12|gl and BITDANCE_ADAPTER=<part of a name> choose at \
         start instead (as for the bitdance command).",
    );
    if let Some(i) = chosen {
        let adapter = app.adapters[i].clone();
        app.gpu = GpuState::Opening;
        app.checks = Checks::default();
        app.worker.send(Command::UseAdapter(adapter));
    }
}

fn checks(app: &mut BitDanceApp, ui: &mut egui::Ui) {
    ui.heading("Kernel conformance");
    ui.horizontal(|ui| {
        let ready = matches!(app.gpu, GpuState::Ready(_)) && !app.checks.running();
        if ui
            .add_enabled(ready, egui::Button::new("Run conformance checks"))
            .clicked()
        {
            app.checks = Checks {
                started: Some(Instant::now()),
                ..Default::default()
            };
            app.worker.send(Command::RunChecks);
        }
        let passed = app.checks.rows.iter().filter(|(_, r)| r.passed()).count();
        let failed = app.checks.rows.len() - passed;
        if app.checks.running() {
            ui.spinner();
            ui.label(format!("{passed} passed, {failed} failed so far…"));
        } else if let Some(t) = app.checks.elapsed {
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
    if app.checks.rows.is_empty() {
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
                    for (family, r) in &app.checks.rows {
                        table_row(ui, family, r);
                    }
                });
        });
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
pub fn no_check() -> CheckResult {
    CheckResult {
        op: "(none)".into(),
        shapes: String::new(),
        rel_error: f64::NAN,
        tolerance: f64::NAN,
        error: Some("ran no check".into()),
        skipped: None,
    }
}
