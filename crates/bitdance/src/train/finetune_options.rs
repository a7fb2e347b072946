//! What a person picks for a fine-tuning run in the studios (`FinetuneOptions`), and the
//! options that decide which batches a run draws (`DataOptions`), recorded in its checkpoint.

use serde::{Deserialize, Serialize};

use crate::optim::{AdamWConfig, LrSchedule};
use crate::train::{ArRecipe, MemoryPlan, Task, TrainSettings, Trainer, Trains};
use crate::{Error, Result};

/// Metadata key of the options that decide which batches a run draws (`DataOptions`).
pub const DATA_OPTIONS_KEY: &str = "bitdance.data_options";

/// The options a person picks for a fine-tuning run in the studios (JSON in the web worker).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FinetuneOptions {
    /// Total optimizer steps.
    pub steps: u64,
    /// Images per step.
    pub batch: usize,
    /// Peak learning rate (the cosine decay ends at a tenth of it).
    pub lr: f32,
    /// Linear warmup steps.
    pub warmup: u64,
    /// EMA decay per step.
    pub ema: f32,
    /// Seed of every random draw.
    pub seed: u64,
    /// Mirror half the images at random (off for digits and text).
    pub flips: bool,
    /// What trains: every parameter, LoRA adapters, or the class table alone.
    #[serde(default)]
    pub trains: Trains,
    /// Gradient checkpointing: less memory, about a third more time per step; the same steps.
    #[serde(default)]
    pub checkpointing: bool,
    /// A LoRA or class-table run holds its frozen base's linear weights in 16 bits.
    #[serde(default)]
    pub half_base: bool,
}

impl Default for FinetuneOptions {
    fn default() -> Self {
        Self {
            steps: 300,
            batch: 8,
            lr: 3e-4,
            warmup: 20,
            ema: 0.99,
            seed: 0,
            flips: false,
            trains: Trains::Full,
            checkpointing: false,
            half_base: false,
        }
    }
}

impl FinetuneOptions {
    /// The memory a run of these options on model `c` needs, on a dataset of `folders` class
    /// folders when known (a LoRA or class-table run trains one class row per folder and the
    /// null row; unknown: every row, an upper bound).
    pub fn memory(
        &self,
        c: &crate::model::ModelConfig,
        folders: Option<usize>,
    ) -> crate::model::MemoryEstimate {
        let rows = folders.map(|f| f + 1);
        (self.settings().task).memory_with_class_rows(c, self.batch, self.checkpointing, rows)
    }

    /// The memory plan, part by part, behind `memory`.
    pub fn memory_plan(&self, c: &crate::model::ModelConfig, folders: Option<usize>) -> MemoryPlan {
        let rows = folders.map(|f| f + 1);
        let task = self.settings().task;
        MemoryPlan::with_class_rows(&task, c, self.batch, self.checkpointing, rows)
    }

    /// Floating-point operations of one step of a run of these options on model `c` (see
    /// `step_flops`; `step_seconds` turns them into time on an adapter).
    pub fn step_flops(&self, c: &crate::model::ModelConfig) -> Option<f64> {
        super::step_flops(&self.settings().task, c, self.batch, self.checkpointing)
    }

    /// Sets the run's choices that are not its settings (they change how, not what, it
    /// trains) on `trainer`.
    pub fn apply(&self, trainer: &mut Trainer) {
        trainer.checkpointing = self.checkpointing;
    }

    /// Refuses, naming the option and its value, what no run can train with.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::Invalid(format!("fine-tuning options: {what}")));
        if self.steps == 0 || self.batch == 0 {
            return bad(format!(
                "steps {} and batch {} must be at least 1",
                self.steps, self.batch
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0 && self.lr <= 1.0) {
            return bad(format!("learning rate {}: must be in (0, 1]", self.lr));
        }
        if !(self.ema.is_finite() && (0.0..1.0).contains(&self.ema)) {
            return bad(format!("EMA decay {}: must be in [0, 1)", self.ema));
        }
        Ok(())
    }

    /// The final learning rate: a tenth of the peak, divided in decimal ("3e-4" -> "3e-5"), so
    /// it is the number `bitdance finetune --min-lr 3e-5` parses (an f32 division can be one
    /// unit in the last place off, and a resumed run must be given exactly its settings).
    pub fn min_lr(&self) -> f32 {
        let shortest = format!("{:e}", self.lr);
        let tenth = shortest.split_once('e').and_then(|(mantissa, exponent)| {
            let exponent: i32 = exponent.parse().ok()?;
            format!("{mantissa}e{}", exponent - 1).parse().ok()
        });
        tenth.unwrap_or(self.lr / 10.0)
    }

    /// The trainer's settings: the official AR recipe, AdamW, warmup then cosine decay to a
    /// tenth of the peak rate.
    pub fn settings(&self) -> TrainSettings {
        TrainSettings {
            task: Task::Ar(ArRecipe {
                trains: self.trains,
                // A hidden checkbox may stay ticked after a switch to a full run, which
                // freezes nothing to hold in 16 bits.
                half_base: self.half_base && self.trains != Trains::Full,
                ..ArRecipe::default()
            }),
            adamw: AdamWConfig::default(),
            schedule: LrSchedule {
                peak: self.lr,
                min_lr: self.min_lr(),
                warmup: self.warmup,
                decay_start: self.warmup,
                total: self.steps,
            },
            ema_decay: self.ema,
            seed: self.seed,
        }
    }

    /// The options that decide the batches.
    pub fn data(&self) -> DataOptions {
        DataOptions {
            batch: self.batch,
            flips: self.flips,
        }
    }
}

/// The options that decide which batches a run draws; recorded in its checkpoint and checked
/// on resume (another batch size or flip setting would draw other batches).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataOptions {
    /// Images per step.
    pub batch: usize,
    /// Whether images are mirrored at random.
    pub flips: bool,
}

impl DataOptions {
    /// The record, as `bitdance finetune` names the options ("--batch 8, flips on").
    pub fn describe(&self) -> String {
        let flips = if self.flips { "on" } else { "off" };
        format!("--batch {}, flips {flips}", self.batch)
    }

    /// Records these options in `trainer`'s metadata; for a resumed run (`resumed`), first
    /// refuses options other than the recorded ones, naming both (`run` names the run).
    pub fn record(&self, trainer: &mut Trainer, resumed: bool, run: &str) -> Result<()> {
        let given = self.describe();
        if resumed {
            if let Some(stored) = trainer.metadata.get(DATA_OPTIONS_KEY) {
                if *stored != given {
                    return Err(Error::Invalid(format!(
                        "{run}: the run was started with {stored}; resume it with the same \
                         options (given: {given})"
                    )));
                }
            }
        }
        trainer.metadata.insert(DATA_OPTIONS_KEY.to_string(), given);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked_by_name() {
        assert!(FinetuneOptions::default().validate().is_ok());
        for (bad, named) in [
            (
                FinetuneOptions {
                    batch: 0,
                    ..Default::default()
                },
                "batch 0",
            ),
            (
                FinetuneOptions {
                    lr: f32::NAN,
                    ..Default::default()
                },
                "learning rate NaN",
            ),
            (
                FinetuneOptions {
                    ema: 1.0,
                    ..Default::default()
                },
                "EMA decay 1",
            ),
        ] {
            let e = bad.validate().unwrap_err().to_string();
            assert!(e.contains(named), "{e}");
        }
        let s = FinetuneOptions::default().settings();
        assert_eq!((s.schedule.total, s.schedule.min_lr), (300, 3e-5));
        // Exactly the number the CLI parses, where an f32 division is one unit off.
        assert_ne!(3e-4f32 / 10.0, 3e-5);
        for (lr, tenth) in [(1e-3f32, "0.0001"), (2.5e-4, "2.5e-5"), (0.1, "0.01")] {
            let o = FinetuneOptions {
                lr,
                ..Default::default()
            };
            assert_eq!(o.min_lr(), tenth.parse::<f32>().unwrap(), "{lr}");
        }
        // A 16-bit base left ticked on a full run: nothing is frozen, nothing is halved.
        let half = |trains| {
            let o = FinetuneOptions {
                trains,
                half_base: true,
                ..Default::default()
            };
            match o.settings().task {
                Task::Ar(r) => r.half_base,
                Task::Tokenizer(_) => unreachable!("fine-tuning trains the AR model"),
            }
        };
        assert!(!half(Trains::Full));
        assert!(half(Trains::Embeddings));
    }

    #[test]
    fn a_known_dataset_counts_the_class_rows_it_trains() {
        let c = crate::model::ModelConfig::builtin("B-1x").unwrap();
        let o = |trains| FinetuneOptions {
            trains,
            ..Default::default()
        };
        // Ten folders train ten rows and the null row: the other 990 rows need no gradient,
        // moments or EMA (4 f32 copies each).
        let rows = (c.num_classes + 1 - 11) * c.cls_token_num * c.dim;
        let lora = o(Trains::Lora(Default::default()));
        let saved = lora.memory(&c, None).bytes - lora.memory(&c, Some(10)).bytes;
        assert_eq!(saved, 4 * 4 * rows as u64);
        let plan = lora.memory_plan(&c, Some(10));
        assert_eq!(plan.total(), lora.memory(&c, Some(10)).bytes);
        // A full run trains every row whatever the dataset.
        let full = o(Trains::Full);
        assert_eq!(full.memory(&c, Some(10)), full.memory(&c, None));
    }

    #[test]
    fn data_options_read_as_the_cli_names_them() {
        let d = DataOptions {
            batch: 4,
            flips: true,
        };
        assert_eq!(d.describe(), "--batch 4, flips on");
    }
}
