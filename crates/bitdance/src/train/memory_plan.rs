//! The GPU memory a training run will hold, part by part (weights, gradients, moments, EMA,
//! activations), shown before the first step and checked against the budget, with the options
//! that would fit when it is over.

use crate::model::{decoder_parameters, encoder_parameters, ModelConfig, ParamSpec};
use crate::train::{Task, Trains};

/// Bytes of an f32.
const F32: f64 = 4.0;

/// The AR model's activations are held about three times over at the peak: the values kept for
/// the backward, their gradients, and buffers the pool keeps for reuse. Measured on lavapipe
/// with the default model, batches 2 to 32, full and class-table runs: the plan is within 10%
/// of the pool's peak (a test keeps it within 15%).
const AR_ACTIVATION_COPIES: f64 = 3.0;

/// With gradient checkpointing, the recomputed block is held about one and a half times at the
/// peak (its values and gradients, while the previous block's buffers are still pooled); the
/// kept values three times, as without it. Measured on lavapipe with the default model at
/// batches 8 and 32: within 3% of the pool's peak.
const RECOMPUTED_BLOCK_COPIES: f64 = 1.5;

/// The memory of a run, by part.
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryPlan {
    /// (part, bytes): weights, gradients, moments, EMA, activations.
    pub parts: Vec<(&'static str, u64)>,
}

fn elements(specs: &[ParamSpec]) -> f64 {
    specs
        .iter()
        .map(|s| s.shape.iter().product::<usize>() as f64)
        .sum()
}

impl MemoryPlan {
    /// The plan of `task` training `c` on batches of `batch`: every weight in f32 (trained and
    /// frozen, the autoencoder included; a 16-bit frozen base in half that), a gradient, two AdamW moments and an EMA copy per
    /// trained weight, and the activations kept for the backward pass (with their gradients),
    /// the blocks' inputs alone with `checkpointing` (AR runs; one block recomputed at a time).
    /// A LoRA or class-table run is counted as training every class row (an upper bound:
    /// `with_class_rows` counts the rows it trains).
    pub fn of(task: &Task, c: &ModelConfig, batch: usize, checkpointing: bool) -> Self {
        Self::with_class_rows(task, c, batch, checkpointing, None)
    }

    /// `of` for a run that trains `class_rows` rows of the class table (its classes and the
    /// null row, `Trainer::train_class_rows`) when it is a LoRA or class-table run.
    pub fn with_class_rows(
        task: &Task,
        c: &ModelConfig,
        batch: usize,
        checkpointing: bool,
        class_rows: Option<usize>,
    ) -> Self {
        let mut trained = elements(&task.parameters(c));
        if let (Task::Ar(r), Some(rows)) = (task, class_rows) {
            if r.trains != Trains::Full {
                let untrained = (c.num_classes + 1).saturating_sub(rows);
                trained -= (untrained * c.cls_token_num * c.dim) as f64;
            }
        }
        let mut vae = encoder_parameters(&c.vae);
        vae.extend(decoder_parameters(&c.vae));
        let (all, activations) = match task {
            Task::Ar(recipe) => {
                // A 16-bit frozen base holds its linear and autoencoder weights in half the
                // bytes.
                let ar = crate::model::ar_parameters(c);
                let half = task.half_weights(c);
                let halved: Vec<ParamSpec> = ar
                    .iter()
                    .chain(&vae)
                    .filter(|s| half.contains(&s.name))
                    .cloned()
                    .collect();
                let all = elements(&ar) + elements(&vae) - elements(&halved) / 2.0;
                let repeats = recipe.diff_batch_mul;
                let activations = if checkpointing {
                    let (kept, block) = c.ar_activations_recomputed(batch, repeats);
                    AR_ACTIVATION_COPIES * (kept + RECOMPUTED_BLOCK_COPIES * block)
                } else {
                    AR_ACTIVATION_COPIES * c.ar_activations(batch, repeats)
                };
                (all, activations)
            }
            Task::Tokenizer(_) => (elements(&vae), 2.0 * c.tokenizer_activations(batch)),
        };
        let bytes = |values: f64| (values * F32) as u64;
        MemoryPlan {
            parts: vec![
                ("weights", bytes(all)),
                ("gradients", bytes(trained)),
                ("moments", bytes(2.0 * trained)),
                ("EMA", bytes(trained)),
                ("activations", bytes(activations)),
            ],
        }
    }

    /// Bytes in all.
    pub fn total(&self) -> u64 {
        self.parts.iter().fold(0u64, |t, p| t.saturating_add(p.1))
    }

    /// One line: "weights 9.2 MiB + gradients 8.1 MiB + ... = 128.0 MiB".
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .parts
            .iter()
            .map(|(name, b)| format!("{name} {}", mib(*b)))
            .collect();
        format!("{} = {}", parts.join(" + "), mib(self.total()))
    }

    /// What would fit `budget` bytes when this plan does not: a smaller batch (the largest
    /// that fits), gradient checkpointing, and the class table alone, each with its total;
    /// empty when nothing does.
    pub fn options_within(
        task: &Task,
        c: &ModelConfig,
        batch: usize,
        checkpointing: bool,
        budget: u64,
    ) -> Vec<String> {
        let mut options = Vec::new();
        let total = |task: &Task, batch: usize, checkpointing: bool| {
            Self::of(task, c, batch, checkpointing).total()
        };
        if let Some(b) = (1..batch)
            .rev()
            .find(|b| total(task, *b, checkpointing) <= budget)
        {
            options.push(format!(
                "--batch {b} ({})",
                mib(total(task, b, checkpointing))
            ));
        }
        if let Task::Ar(recipe) = task {
            if !checkpointing && total(task, batch, true) <= budget {
                options.push(format!(
                    "--checkpointing ({})",
                    mib(total(task, batch, true))
                ));
            }
            if recipe.trains != Trains::Embeddings {
                let cheaper = Task::Ar(crate::train::ArRecipe {
                    trains: Trains::Embeddings,
                    ..*recipe
                });
                if total(&cheaper, batch, checkpointing) <= budget {
                    let need = mib(total(&cheaper, batch, checkpointing));
                    options.push(format!("--train embeddings ({need})"));
                }
            }
        }
        options
    }
}

/// Bytes as MiB with one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::ArRecipe;

    #[test]
    fn the_plan_adds_its_parts_and_offers_what_fits() {
        let c = ModelConfig::builtin("tiny").unwrap();
        let full = Task::Ar(ArRecipe::default());
        let plan = MemoryPlan::of(&full, &c, 8, false);
        assert_eq!(plan.parts.len(), 5);
        // The parts add up to the model's own estimate (each part is rounded down on its own).
        let whole = c
            .ar_training_memory(8, ArRecipe::default().diff_batch_mul)
            .bytes;
        assert!(
            whole.abs_diff(plan.total()) <= 8,
            "{whole} vs {}",
            plan.total()
        );
        assert!(
            plan.describe().starts_with("weights "),
            "{}",
            plan.describe()
        );
        let table_only = Task::Ar(ArRecipe {
            trains: Trains::Embeddings,
            ..ArRecipe::default()
        });
        let small = MemoryPlan::of(&table_only, &c, 8, false);
        assert!(small.total() < plan.total());
        assert_eq!(small.parts[0], plan.parts[0], "the same weights are held");
        // A budget between the two: a smaller batch or the class table alone fits.
        let budget = MemoryPlan::of(&full, &c, 2, false).total();
        let options = MemoryPlan::options_within(&full, &c, 8, false, budget);
        assert!(options[0].starts_with("--batch 2 "), "{options:?}");
        assert!(
            options.iter().any(|o| o.starts_with("--train embeddings")) || small.total() > budget
        );
        // Checkpointing keeps the blocks' inputs instead of their activations.
        let recomputed = MemoryPlan::of(&full, &c, 8, true);
        assert!(recomputed.parts[4].1 < plan.parts[4].1, "{recomputed:?}");
        assert_eq!(recomputed.parts[..4], plan.parts[..4]);
        let budget = recomputed.total();
        let options = MemoryPlan::options_within(&full, &c, 8, false, budget);
        assert!(
            options.iter().any(|o| o.starts_with("--checkpointing")),
            "{options:?}"
        );
    }
}
