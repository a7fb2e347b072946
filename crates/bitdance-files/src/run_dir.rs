//! A training run's folder as `bitdance train`/`finetune` and the desktop studio keep it: the
//! checkpoint and the model (each written atomically), the step log (JSON lines) and the sample
//! grids, under the core's file names, so a run started in one continues in the other.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use bitdance::train::{Trainer, ADAPTERS_FILE, CHECKPOINT_FILE, LOG_FILE, MODEL_FILE, SAMPLES_DIR};

use crate::files::{read_bytes, write_atomic};

/// A run's folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunDir {
    /// The folder.
    pub path: PathBuf,
}

/// The step log of a run, open for appending.
pub struct RunLog {
    file: std::fs::File,
    path: PathBuf,
}

impl RunLog {
    /// Appends one step's line (`bitdance::train::log_entry`).
    pub fn append(&mut self, entry: &serde_json::Value) -> anyhow::Result<()> {
        writeln!(self.file, "{entry}").with_context(|| format!("writing {}", self.path.display()))
    }
}

impl RunDir {
    /// The run in folder `path` (nothing is created yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The checkpoint (weights, moments, EMA, step, RNG, settings).
    pub fn checkpoint_path(&self) -> PathBuf {
        self.path.join(CHECKPOINT_FILE)
    }

    /// The model (EMA weights and autoencoder under the official names).
    pub fn model_path(&self) -> PathBuf {
        self.path.join(MODEL_FILE)
    }

    /// The step log.
    pub fn log_path(&self) -> PathBuf {
        self.path.join(LOG_FILE)
    }

    /// The sample grid of step `step`.
    pub fn sample_path(&self, step: u64) -> PathBuf {
        self.path
            .join(SAMPLES_DIR)
            .join(format!("step-{step:07}.png"))
    }

    /// The first file of a run this folder already holds (checkpoint or log), if any.
    pub fn existing_run(&self) -> Option<PathBuf> {
        [self.checkpoint_path(), self.log_path()]
            .into_iter()
            .find(|p| p.exists())
    }

    /// The checkpoint's bytes, or an error naming the file.
    pub fn read_checkpoint(&self) -> anyhow::Result<Vec<u8>> {
        read_bytes(self.checkpoint_path())
    }

    /// Writes the checkpoint and the model (EMA weights), and a LoRA run's adapters file,
    /// each atomically.
    pub fn save(&self, trainer: &Trainer) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.path)
            .with_context(|| format!("creating {}", self.path.display()))?;
        let checkpoint = pollster::block_on(trainer.checkpoint())?;
        write_atomic(self.checkpoint_path(), &checkpoint)?;
        let model = pollster::block_on(trainer.export_model(true, false))?;
        write_atomic(self.model_path(), &model)?;
        if let Some(adapters) = pollster::block_on(trainer.export_adapters(true))? {
            write_atomic(self.path.join(ADAPTERS_FILE), &adapters)?;
        }
        Ok(())
    }

    /// Writes the sample grid of `step` as a PNG, atomically; returns its path.
    pub fn write_sample(&self, step: u64, grid: &image::RgbImage) -> anyhow::Result<PathBuf> {
        let path = self.sample_path(step);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut png = std::io::Cursor::new(Vec::new());
        grid.write_to(&mut png, image::ImageFormat::Png)
            .context("encoding a sample grid")?;
        write_atomic(&path, png.get_ref())?;
        Ok(path)
    }

    /// The log opened for appending after dropping its lines past `step` (left by a run that
    /// stopped after its last checkpoint, whose steps will be taken again).
    pub fn open_log(&self, step: u64) -> anyhow::Result<RunLog> {
        std::fs::create_dir_all(&self.path)
            .with_context(|| format!("creating {}", self.path.display()))?;
        let path = self.log_path();
        truncate_log(&path, step)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(RunLog { file, path })
    }

    /// (step, loss) of every readable log line, in order (empty without a log).
    pub fn losses(&self) -> Vec<(u64, f32)> {
        let Ok(text) = std::fs::read_to_string(self.log_path()) else {
            return Vec::new();
        };
        text.lines()
            .filter_map(|line| {
                let v: serde_json::Value = serde_json::from_str(line).ok()?;
                Some((v["step"].as_u64()?, v["loss"].as_f64()? as f32))
            })
            .collect()
    }
}

/// Drops the lines of the log at `path` past `step`.
fn truncate_log(path: &Path, step: u64) -> anyhow::Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v["step"].as_u64())
                .is_some_and(|s| s <= step)
        })
        .collect();
    let mut body = kept.join("\n");
    if !body.is_empty() {
        body.push('\n');
    }
    write_atomic(path, body.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_keeps_the_steps_up_to_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        assert_eq!(run.existing_run(), None);
        let mut log = run.open_log(0).unwrap();
        for step in 1..=5u64 {
            log.append(&serde_json::json!({"step": step, "loss": step as f32 / 2.0}))
                .unwrap();
        }
        drop(log);
        assert_eq!(run.existing_run(), Some(run.log_path()));
        assert_eq!(run.losses().len(), 5);
        // Resumed from the checkpoint of step 3: steps 4 and 5 will be taken again.
        let mut log = run.open_log(3).unwrap();
        log.append(&serde_json::json!({"step": 4, "loss": 9.0}))
            .unwrap();
        assert_eq!(run.losses(), [(1, 0.5), (2, 1.0), (3, 1.5), (4, 9.0)]);
        let grid = image::RgbImage::from_pixel(3, 2, image::Rgb([9, 8, 7]));
        let png = run.write_sample(12, &grid).unwrap();
        assert!(png.ends_with("samples/step-0000012.png"), "{png:?}");
        assert_eq!(image::open(&png).unwrap().to_rgb8(), grid);
    }
}
