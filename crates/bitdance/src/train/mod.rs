//! Training: the official AR recipe (flow loss of the binary diffusion head over cached
//! tokens), the tokenizer's loss, and the training state (AdamW, EMA, learning-rate schedule,
//! RNG) with exact resume.

mod ar_loss;
mod class_rows;
mod classes;
mod data;
mod finetune;
mod finetune_load;
mod finetune_options;
mod lora;
mod memory_plan;
mod recipe;
mod step_time;
mod tokenizer_loss;
mod trainer;
mod update;

pub use ar_loss::{ar_loss, ArBatch, ArDraws};
pub use class_rows::{ClassRows, CLASS_ROWS_KEY};
pub use classes::{ClassPlan, ClassPolicy, FolderClass, CLASS_TABLE};
pub use data::{class_display_name, LatentCache, TrainingImages};
pub use finetune::{
    classes_of, log_entry, resumed_plan, sample_grid, sample_settings, start_finetune, FinetuneRun,
    ADAPTERS_FILE, CHECKPOINT_FILE, LOG_FILE, MAX_SAMPLE_CLASSES, MODEL_FILE, SAMPLES_DIR,
};
pub use finetune_load::FinetuneLoad;
pub use finetune_options::{DataOptions, FinetuneOptions, DATA_OPTIONS_KEY};
pub use lora::{merge_adapter_file, AdaptedLayer, LoraSpec, LoraTargets, BASE_KEY, LORA_KEY};
pub use memory_plan::{mib, MemoryPlan};
pub use recipe::{ArRecipe, Trains};
pub use step_time::{step_flops, step_seconds, time_throughput_probe};
pub use tokenizer_loss::{tokenizer_loss, TokenizerLosses, TokenizerRecipe, ENTROPY_GROUPS};
pub use trainer::{
    ResumeLoad, StepStats, Task, TensorStream, TrainSettings, Trainer, CONFIG_KEY, EMA_PREFIX,
    MOMENT_PREFIXES, TRAIN_KEY,
};
pub use update::adamw_update;
