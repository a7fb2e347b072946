//! Training: the official AR recipe (flow loss of the binary diffusion head over cached
//! tokens) and the training state (AdamW, EMA, learning-rate schedule, RNG) with exact resume.

mod ar_loss;
mod recipe;
mod trainer;

pub use ar_loss::{ar_loss, ArBatch, ArDraws};
pub use recipe::ArRecipe;
pub use trainer::{
    ArTrainer, StepStats, TrainSettings, CONFIG_KEY, EMA_PREFIX, MOMENT_PREFIXES, TRAIN_KEY,
};
