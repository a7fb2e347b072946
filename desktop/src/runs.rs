//! The desktop's fine-tuning runs: each a run folder in the data directory (`runs/<name>`),
//! with the files `bitdance finetune --out` writes (checkpoint, model, log, sample grids) and
//! `run.json`, what the app needs to continue it after a restart (its images, starting model
//! and options).

use std::path::{Path, PathBuf};

use bitdance::train::{class_display_name, FinetuneOptions, TrainingImages};
use bitdance_files::dataset::ImageFolder;
use bitdance_files::files::write_atomic;
use bitdance_files::run_dir::RunDir;
use serde::{Deserialize, Serialize};

include!(concat!(env!("OUT_DIR"), "/bundled_dataset.rs"));

/// The plan's file inside a run folder.
const PLAN_FILE: &str = "run.json";

/// Where a run's images come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DataSource {
    /// The bundled sample: 24 images of each of the 10 Fashion-MNIST classes.
    Bundled,
    /// A folder of class sub-folders of PNG/JPEG images.
    Folder(PathBuf),
}

impl DataSource {
    /// A short name for lists.
    pub fn describe(&self) -> String {
        match self {
            DataSource::Bundled => "bundled Fashion-MNIST sample".into(),
            DataSource::Folder(p) => p.display().to_string(),
        }
    }

    /// The class folders in sorted order (the bundled sample's named without their index, so
    /// they become classes of their own: "tshirt", "trouser", ...).
    pub fn folders(&self) -> anyhow::Result<Vec<String>> {
        match self {
            DataSource::Folder(root) => bitdance_files::dataset::class_folders(root),
            DataSource::Bundled => {
                let mut names: Vec<String> = BUNDLED
                    .iter()
                    .map(|(class, _, _)| class_display_name(class))
                    .collect();
                names.dedup();
                Ok(names)
            }
        }
    }

    /// Every image at `resolution`, class ids in sorted folder order; errors name the folder
    /// or file at fault.
    pub fn load(&self, resolution: usize) -> anyhow::Result<TrainingImages> {
        match self {
            DataSource::Folder(root) => Ok(ImageFolder::load(root, resolution)?.into_images()),
            DataSource::Bundled => {
                let mut data = TrainingImages::new(resolution);
                for (class, name, bytes) in BUNDLED {
                    let id = data.class_id(&class_display_name(class));
                    data.push_encoded(&format!("{class}/{name}"), bytes, id)?;
                }
                Ok(data)
            }
        }
    }
}

/// What a run was started with: enough to continue it after the app restarts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunPlan {
    /// The images.
    pub data: DataSource,
    /// The starting model's file (`None`: the embedded default model).
    pub base: Option<PathBuf>,
    /// The starting model's separate autoencoder file, when it has one.
    #[serde(default)]
    pub base_vae: Option<PathBuf>,
    /// The starting model's name, as shown.
    pub base_name: String,
    /// Steps, batch, learning rate, warmup, EMA, seed, flips.
    pub options: FinetuneOptions,
    /// Steps between sample grids (0: only at the end).
    pub sample_every: u64,
    /// Steps between checkpoints (a pause writes one too).
    pub checkpoint_every: u64,
}

/// A run found on disk.
#[derive(Clone, Debug)]
pub struct SavedRun {
    /// Its folder.
    pub dir: RunDir,
    /// How it was started.
    pub plan: RunPlan,
    /// The last step its log records (the checkpoint may be a little behind).
    pub logged_step: u64,
    /// Whether a checkpoint exists (it can be continued).
    pub has_checkpoint: bool,
    /// Whether its model file exists (it can be used).
    pub has_model: bool,
}

impl SavedRun {
    /// The folder's name.
    pub fn name(&self) -> String {
        folder_name(&self.dir.path)
    }

    /// Whether every step has been taken.
    pub fn finished(&self) -> bool {
        self.logged_step >= self.plan.options.steps
    }
}

fn folder_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default()
}

/// The folder of every run.
pub fn runs_dir() -> PathBuf {
    crate::storage::data_dir().join("runs")
}

/// A new run folder named by the time (UTC, to the millisecond) and the data, e.g.
/// `2026-12-07_03-52-12.637_fashion-mnist` (not created yet).
pub fn new_run_dir(data: &DataSource) -> RunDir {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    let what = match data {
        DataSource::Bundled => "fashion-mnist".to_string(),
        DataSource::Folder(p) => folder_name(p),
    };
    let safe: String = what
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { '-' })
        .collect();
    RunDir::new(runs_dir().join(format!("{}_{safe}", utc_stamp(millis))))
}

/// `millis` since 1970 as `YYYY-MM-DD_HH-MM-SS.mmm` (UTC; the civil-from-days algorithm).
fn utc_stamp(millis: u64) -> String {
    let (secs, ms) = (millis / 1000, millis % 1000);
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}_{:02}-{:02}-{:02}.{ms:03}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Deletes a run's folder (checkpoint, model, log, samples).
pub fn delete_run(dir: &RunDir) -> std::io::Result<()> {
    std::fs::remove_dir_all(&dir.path)
}

/// Writes the plan into the run's folder (atomically).
pub fn save_plan(dir: &RunDir, plan: &RunPlan) -> anyhow::Result<()> {
    std::fs::create_dir_all(&dir.path)?;
    write_atomic(dir.path.join(PLAN_FILE), &serde_json::to_vec_pretty(plan)?)
}

/// The plan of the run in `dir`, or an error naming the file.
pub fn read_plan(dir: &RunDir) -> anyhow::Result<RunPlan> {
    let path = dir.path.join(PLAN_FILE);
    let bytes = bitdance_files::files::read_bytes(&path)?;
    serde_json::from_slice(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Every run with a readable plan, newest first.
pub fn saved_runs() -> Vec<SavedRun> {
    let Ok(entries) = std::fs::read_dir(runs_dir()) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.reverse();
    dirs.into_iter()
        .filter_map(|path| {
            let dir = RunDir::new(path);
            let plan = read_plan(&dir).ok()?;
            let logged_step = dir.losses().last().map_or(0, |l| l.0);
            Some(SavedRun {
                has_checkpoint: dir.checkpoint_path().exists(),
                has_model: dir.model_path().exists(),
                dir,
                plan,
                logged_step,
            })
        })
        .collect()
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn run_folders_are_named_by_their_utc_time() {
        assert_eq!(utc_stamp(0), "1970-01-01_00-00-00.000");
        assert_eq!(utc_stamp(1_796_612_971_637), "2026-12-07_03-09-31.637");
        assert_eq!(utc_stamp(951_782_400_000), "2000-02-29_00-00-00.000");
    }

    #[test]
    fn the_bundled_sample_holds_ten_classes_of_24() {
        let data = DataSource::Bundled.load(16).unwrap();
        assert_eq!(data.classes.len(), 10);
        assert_eq!(data.len(), 240);
        assert_eq!(data.classes[0], "tshirt");
        assert_eq!(DataSource::Bundled.folders().unwrap(), data.classes);
    }
}
