//! The Gallery panel: every image made here (now and in earlier runs), kept as PNGs carrying
//! their recipes in the app's data folder: the recipe shown, Save as…, Use recipe, Reproduce,
//! Variations (nearby seeds), Delete, and two images compared side by side with the settings
//! that differ.

use std::collections::HashMap;
use std::path::PathBuf;

use eframe::egui;

use crate::app::BitDanceApp;
use crate::storage::{self, GalleryItem};

/// The gallery's images and their thumbnails (decoded when first shown).
pub struct Gallery {
    pub items: Vec<GalleryItem>,
    thumbnails: HashMap<PathBuf, egui::TextureHandle>,
    /// The images picked for comparison (at most two), by file.
    pub compare: Vec<PathBuf>,
}

impl Gallery {
    /// The images in the data folder.
    pub fn load() -> Self {
        Self {
            items: storage::gallery(),
            thumbnails: HashMap::new(),
            compare: Vec::new(),
        }
    }

    /// A new image, shown first.
    pub fn add(&mut self, item: GalleryItem) {
        self.items.insert(0, item);
    }

    fn thumbnail(&mut self, ctx: &egui::Context, path: &PathBuf) -> Option<egui::TextureHandle> {
        if let Some(t) = self.thumbnails.get(path) {
            return Some(t.clone());
        }
        let bytes = std::fs::read(path).ok()?;
        let rgb = image::load_from_memory(&bytes).ok()?.to_rgb8();
        let (w, h) = rgb.dimensions();
        let image = egui::ColorImage::from_rgb([w as usize, h as usize], rgb.as_raw());
        let texture = ctx.load_texture(
            path.display().to_string(),
            image,
            egui::TextureOptions::NEAREST,
        );
        self.thumbnails.insert(path.clone(), texture.clone());
        Some(texture)
    }
}

/// The recipe fields in which `a` and `b` differ, as "field: a vs b".
pub fn differences(a: &bitdance::studio::Recipe, b: &bitdance::studio::Recipe) -> Vec<String> {
    let (serde_json::Value::Object(x), serde_json::Value::Object(y)) = (
        serde_json::to_value(a).unwrap_or_default(),
        serde_json::to_value(b).unwrap_or_default(),
    ) else {
        return Vec::new();
    };
    x.iter()
        .filter(|(k, v)| y.get(*k) != Some(v))
        .map(|(k, v)| {
            let other = y.get(k).map(|w| w.to_string()).unwrap_or_default();
            format!("{k}: {v} vs {other}")
        })
        .collect()
}

/// The two images picked, side by side, with what differs in their recipes.
fn comparison(app: &mut BitDanceApp, ui: &mut egui::Ui, ctx: &egui::Context) {
    let picked: Vec<GalleryItem> = app
        .gallery
        .compare
        .iter()
        .filter_map(|p| app.gallery.items.iter().find(|i| &i.path == p).cloned())
        .collect();
    let [a, b] = picked.as_slice() else {
        return;
    };
    ui.group(|ui| {
        ui.horizontal(|ui| {
            for item in [a, b] {
                ui.vertical(|ui| {
                    if let Some(t) = app.gallery.thumbnail(ctx, &item.path) {
                        ui.add(egui::Image::new(&t).fit_to_exact_size(egui::vec2(256.0, 256.0)));
                    }
                    ui.label(item.caption());
                });
            }
            ui.vertical(|ui| {
                let diff = differences(&a.recipe, &b.recipe);
                ui.strong(format!("Differences: {}", diff.len()));
                for line in diff {
                    ui.label(line);
                }
                if ui.button("Close the comparison").clicked() {
                    app.gallery.compare.clear();
                }
            });
        });
    });
}

enum Action {
    Restore(usize),
    Reproduce(usize),
    Variations(usize),
    SaveAs(usize),
    Delete(usize),
    Compare(usize),
}

/// Draws the panel.
pub fn show(app: &mut BitDanceApp, ui: &mut egui::Ui) {
    ui.horizontal(|ui| {
        ui.heading("Gallery");
        ui.weak(format!("{} images", app.gallery.items.len()))
            .on_hover_text(format!("kept in {}", storage::gallery_dir().display()));
    });
    if app.gallery.items.is_empty() {
        ui.weak("Images you make appear here, with the recipe that made them.");
        return;
    }
    let ctx = ui.ctx().clone();
    comparison(app, ui, &ctx);
    let mut action = None;
    egui::ScrollArea::vertical().show(ui, |ui| {
        ui.horizontal_wrapped(|ui| {
            for i in 0..app.gallery.items.len() {
                let path = app.gallery.items[i].path.clone();
                let recipe = app.gallery.items[i].recipe.clone();
                let caption = app.gallery.items[i].caption();
                ui.group(|ui| {
                    ui.set_width(170.0);
                    ui.vertical(|ui| {
                        if let Some(t) = app.gallery.thumbnail(&ctx, &path) {
                            ui.add(
                                egui::Image::new(&t).fit_to_exact_size(egui::vec2(160.0, 160.0)),
                            );
                        }
                        ui.label(caption);
                        ui.weak(format!(
                            "{} · cfg {} · {} steps",
                            recipe.config, recipe.cfg, recipe.head_steps
                        ))
                        .on_hover_text(recipe.to_json());
                        ui.horizontal_wrapped(|ui| {
                            if ui.small_button("Use recipe").clicked() {
                                action = Some(Action::Restore(i));
                            }
                            if ui.small_button("Reproduce").clicked() {
                                action = Some(Action::Reproduce(i));
                            }
                            if ui.small_button("Variations").clicked() {
                                action = Some(Action::Variations(i));
                            }
                            if ui.small_button("Save as…").clicked() {
                                action = Some(Action::SaveAs(i));
                            }
                            if ui.small_button("Delete").clicked() {
                                action = Some(Action::Delete(i));
                            }
                            let picked = app.gallery.compare.contains(&path);
                            if ui.selectable_label(picked, "Compare").clicked() {
                                action = Some(Action::Compare(i));
                            }
                        });
                    });
                });
            }
        });
    });
    match action {
        Some(Action::Restore(i)) => {
            let recipe = app.gallery.items[i].recipe.clone();
            app.restore_recipe(recipe);
        }
        Some(Action::Reproduce(i)) => {
            let recipe = app.gallery.items[i].recipe.clone();
            app.restore_recipe(recipe.clone());
            crate::generate::reproduce(app, recipe);
        }
        Some(Action::Variations(i)) => {
            let recipe = app.gallery.items[i].recipe.clone();
            app.restore_recipe(recipe);
            app.generate.variations(&app.worker, 4);
        }
        Some(Action::SaveAs(i)) => {
            let item = &app.gallery.items[i];
            let name = item
                .path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_else(|| "bitdance.png".into());
            if let Some(to) = rfd::FileDialog::new()
                .set_file_name(name)
                .add_filter("PNG", &["png"])
                .save_file()
            {
                if let Err(e) = std::fs::copy(&item.path, &to) {
                    app.tell(format!("{}: {e}", to.display()), true);
                }
            }
        }
        Some(Action::Delete(i)) => {
            let item = app.gallery.items.remove(i);
            app.gallery.compare.retain(|p| p != &item.path);
            let _ = std::fs::remove_file(&item.path);
        }
        Some(Action::Compare(i)) => {
            let path = app.gallery.items[i].path.clone();
            let c = &mut app.gallery.compare;
            match c.iter().position(|p| p == &path) {
                Some(at) => {
                    c.remove(at);
                }
                None => {
                    if c.len() == 2 {
                        c.remove(0);
                    }
                    c.push(path);
                }
            }
        }
        None => {}
    }
}
