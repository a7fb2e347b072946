//! The file-system side of BitDance, shared by the `bitdance` CLI and the desktop studio (the
//! core crate never touches files): image folders for training, reads that name their path,
//! atomic writes, and training-run folders (checkpoint, model, log, sample grids).

pub mod dataset;
pub mod files;
pub mod run_dir;
