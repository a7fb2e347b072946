//! The BitDance models: configuration (official constructor arguments), and with the inference
//! issue the autoencoder, the AR transformer and the binary diffusion heads.

mod config;

pub use config::{AeConfig, ModelConfig, BUILTIN_CONFIGS};
