//! The BitDance models: configuration (official constructor arguments), and with the inference
//! issue the autoencoder, the AR transformer and the binary diffusion heads.

mod ae_graph;
mod ae_weights;
mod config;
mod decoder;
mod defaults;
mod encoder;
mod generate;
mod generator_loader;
mod graph;
mod head;
mod init;
mod kv_cache;
mod loading;
mod memory;
mod noise_file;
mod params;
mod pipeline;
mod precision;
mod sampler;
mod store;
mod tensor_loader;
mod timestep;
mod transformer;
mod weights;

pub use ae_weights::{
    decoder_layer_weights, decoder_parameters, encoder_layer_weights, encoder_parameters, Conv,
    Decoder, DecoderLevel, Encoder, EncoderLevel, ResBlock,
};
pub use config::{builtin_name, published_cfg, AeConfig, ModelConfig, BUILTIN_CONFIGS};
pub use decoder::{decode, decode_grouped, decoder_forward, latent_statistics};
#[cfg(feature = "default-model")]
pub use defaults::{default_model_sha256, DEFAULT_MODEL_BYTES};
pub use defaults::{
    descends_from_default_model, recommended_settings, DEFAULT_MODEL_LABEL, DEFAULT_MODEL_NAME,
    FALLBACK_CFG, OFFICIAL_HEAD_STEPS,
};
pub use encoder::{encode, encoded_size, encoder_forward, quantize, Quantized};
pub use generate::{
    cfg_at, generate_tokens, latents_to_tokens, tokens_to_latents, CfgSchedule, SampleSettings,
    TokenSampler, MAX_HEAD_STEPS,
};
pub(crate) use generator_loader::items_of;
pub use generator_loader::{decoder_feature_map, padded_feature_map};
pub use graph::{CacheSlot, Eager, Graph};
pub use head::{head_condition, head_forward, head_predict, head_predict_at};
pub use init::{init_autoencoder, init_parameters, init_parameters_in};
pub(crate) use kv_cache::class_rows;
pub use kv_cache::{embed_prefix, embed_tokens, transformer_step, KvCache};
pub use loading::{
    decoder_weights, generation_parameters, half_weights, load_autoencoder, load_autoencoder_in,
    load_generator, stored_class_names, stored_config, CLASSES_KEY, CONFIG_KEY, VAE_PREFIX,
};
pub use memory::MemoryEstimate;
pub use noise_file::RecordedNoise;
pub use params::{decays, ParamSpec};
pub use pipeline::{decode_tokens, encode_tokens, to_rgb8, Generated};
pub use precision::Precision;
pub use sampler::{linspace_grid, sample_head, time_grid, Draw, GaussianSource, LAST_STEP};
pub(crate) use store::check_specs;
pub use store::{join_row_parts, part_name, split_part_name, HostTensor, ParamStore, ParamVars};
pub use tensor_loader::{LoadFile, LoadItem, RowGrowth, TensorLoader, TensorRead, PIECE_BYTES};
pub use timestep::timestep_embedding;
pub use transformer::{sequence_mask, sequence_positions, transformer_forward};
pub use weights::{
    ar_layer_weights, ar_parameters, Block, Connector, Fetch, Head, HeadBlock, Linear, NormAffine,
    PatchAttention, Trunk, WeightSource,
};
