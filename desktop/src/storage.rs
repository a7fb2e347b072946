//! Where the app keeps things between runs: the gallery (PNGs with their recipes) in the
//! platform's data directory, the recent models in its config directory. `BITDANCE_HOME`
//! replaces both (tests, portable installs).

use std::path::{Path, PathBuf};

use bitdance::studio::Recipe;
use serde::{Deserialize, Serialize};

/// Most recent models remembered.
const MAX_RECENT: usize = 12;

fn home_override() -> Option<PathBuf> {
    std::env::var_os("BITDANCE_HOME").map(PathBuf::from)
}

/// The app's data folder (gallery, fine-tuning runs).
pub fn data_dir() -> PathBuf {
    home_override()
        .or_else(dirs::data_dir)
        .unwrap_or_else(std::env::temp_dir)
        .join("bitdance")
}

/// The folder of the gallery's images.
pub fn gallery_dir() -> PathBuf {
    data_dir().join("gallery")
}

fn config_dir() -> PathBuf {
    home_override()
        .or_else(dirs::config_dir)
        .unwrap_or_else(std::env::temp_dir)
        .join("bitdance")
}

fn recent_file() -> PathBuf {
    config_dir().join("recent-models.json")
}

/// The adapter chosen in the GPU panel, used at the next start (unless `WGPU_BACKEND` or
/// `BITDANCE_ADAPTER` choose).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdapterChoice {
    /// Backend, lower case (vulkan, metal, dx12, gl).
    pub backend: String,
    /// The adapter's name.
    pub name: String,
}

fn adapter_file() -> PathBuf {
    config_dir().join("adapter.json")
}

/// The adapter chosen before, if any (an unreadable file is no choice).
pub fn chosen_adapter() -> Option<AdapterChoice> {
    let bytes = std::fs::read(adapter_file()).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Remembers `choice` for the next start.
pub fn choose_adapter(choice: &AdapterChoice) -> anyhow::Result<()> {
    write_file(&adapter_file(), &serde_json::to_vec_pretty(choice)?)
}

/// Writes `bytes` to `path` atomically, creating its folder first.
fn write_file(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    bitdance_files::files::write_atomic(path, bytes)
}

/// A model opened before, as the models panel lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecentModel {
    /// The model file.
    pub path: PathBuf,
    /// Its separate autoencoder file, if any.
    pub vae: Option<PathBuf>,
    /// Its config name, classes and parameters, as shown.
    pub config: String,
    /// Number of classes.
    pub classes: usize,
    /// Parameters generation loads.
    pub parameters: u64,
    /// SHA-256 of the model file.
    pub sha256: String,
}

/// The recent models, newest first (an unreadable list is empty).
pub fn recent_models() -> Vec<RecentModel> {
    std::fs::read(recent_file())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Puts `model` first in the recent list (replacing an entry of the same file).
pub fn remember(model: RecentModel) -> anyhow::Result<Vec<RecentModel>> {
    let mut list = recent_models();
    list.retain(|m| m.path != model.path);
    list.insert(0, model);
    list.truncate(MAX_RECENT);
    write_file(&recent_file(), &serde_json::to_vec_pretty(&list)?)?;
    Ok(list)
}

/// One image of the gallery: its PNG file and the recipe inside it.
#[derive(Clone, Debug)]
pub struct GalleryItem {
    /// The PNG.
    pub path: PathBuf,
    /// Its recipe.
    pub recipe: Recipe,
    /// Its place among the recipe's images.
    pub index: usize,
}

impl GalleryItem {
    /// Its class.
    pub fn class(&self) -> u32 {
        self.recipe.classes[self.index]
    }

    /// Class and seed for a caption, with its place in a run of several images.
    pub fn caption(&self) -> String {
        let n = self.recipe.classes.len();
        let place = match n {
            1 => String::new(),
            n => format!(
                " · image {} of {n} (batch {})",
                self.index + 1,
                self.recipe.batch
            ),
        };
        format!("class {} · seed {}{place}", self.class(), self.recipe.seed)
    }
}

/// The image index a gallery file name carries (`...-i2.png`; 0 without one or out of range).
fn index_in_name(path: &Path, images: usize) -> usize {
    path.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.rsplit_once("-i"))
        .and_then(|(_, i)| i.parse::<usize>().ok())
        .filter(|&i| i < images)
        .unwrap_or(0)
}

/// Saves a finished image's PNG (carrying `recipe`, whose image `index` it is) into the
/// gallery; returns its item.
pub fn keep_image(png: &[u8], recipe: &Recipe, index: usize) -> anyhow::Result<GalleryItem> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let name = format!(
        "{stamp:015}-{}-c{}-s{}-i{index}.png",
        recipe.config, recipe.classes[index], recipe.seed
    );
    let path = gallery_dir().join(name);
    write_file(&path, png)?;
    Ok(GalleryItem {
        path,
        recipe: recipe.clone(),
        index,
    })
}

/// Every image of the gallery with a readable recipe, newest first.
pub fn gallery() -> Vec<GalleryItem> {
    let Ok(entries) = std::fs::read_dir(gallery_dir()) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    paths.sort();
    paths.reverse();
    paths
        .into_iter()
        .filter_map(|path| {
            let bytes = std::fs::read(&path).ok()?;
            let recipe = Recipe::from_png(&path.display().to_string(), &bytes).ok()?;
            let index = index_in_name(&path, recipe.classes.len());
            Some(GalleryItem {
                path,
                recipe,
                index,
            })
        })
        .collect()
}
