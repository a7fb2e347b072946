//! The BitDance models: configuration (official constructor arguments), and with the inference
//! issue the autoencoder, the AR transformer and the binary diffusion heads.

mod ae_params;
mod config;
mod params;

pub use ae_params::{decoder_parameters, encoder_parameters};
pub use config::{AeConfig, ModelConfig, BUILTIN_CONFIGS};
pub use params::{ar_parameters, decays, ParamSpec};
