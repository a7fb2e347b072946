//! Loading a model for generation from weight files by official names: the AR transformer and
//! its head, and the autoencoder's decoder (the encoder is checked but never uploaded).

use std::collections::BTreeSet;

use super::{
    ar_layer_weights, ar_parameters, decoder_layer_weights, decoder_parameters, encoder_parameters,
    AeConfig, ModelConfig, ParamSpec, ParamStore, Precision, TensorLoader,
};
use crate::io::WeightFile;
use crate::{Gpu, Result};

/// Metadata key of the model config (JSON) in weight files and checkpoints.
pub const CONFIG_KEY: &str = "bitdance.config";
/// Metadata key of the class names (a JSON list of strings) in weight files.
pub const CLASSES_KEY: &str = "bitdance.classes";

/// The model config a weight file stores in its metadata (`None` when it stores none, e.g.
/// converted official checkpoints).
pub fn stored_config(file: &WeightFile<'_>) -> Result<Option<ModelConfig>> {
    match file.metadata().get(CONFIG_KEY) {
        Some(json) => {
            let source = format!("{} (metadata '{CONFIG_KEY}')", file.label());
            ModelConfig::from_json(&source, json).map(Some)
        }
        None => Ok(None),
    }
}

/// The class names a weight file stores in its metadata, if any.
pub fn stored_class_names(file: &WeightFile<'_>) -> Option<Vec<String>> {
    serde_json::from_str(file.metadata().get(CLASSES_KEY)?).ok()
}

/// Prefix of the autoencoder's parameters inside a model state dict.
pub const VAE_PREFIX: &str = "vae.";

/// The parameters generation uploads: the AR model and head, then the decoder (`vae.decoder.*`).
pub fn generation_parameters(c: &ModelConfig) -> Vec<ParamSpec> {
    let mut specs = ar_parameters(c);
    specs.extend(decoder_parameters(&c.vae));
    specs
}

/// The parameters generation holds in 16 bits at `precision`: at f16 the AR model's and
/// head's linear weights and the decoder's linear and convolution weights, none at f32.
pub fn half_weights(c: &ModelConfig, precision: Precision) -> BTreeSet<String> {
    match precision {
        Precision::F32 => BTreeSet::new(),
        Precision::F16 => ar_layer_weights(c)
            .into_iter()
            .chain(decoder_layer_weights(&c.vae))
            .collect(),
    }
}

/// Loads what generation needs, the linear weights at `precision` (f32 where the adapter
/// cannot unpack 16-bit floats). `model` holds the AR parameters and, as the official
/// checkpoints do, the autoencoder as `vae.*`; `vae` is an optional separate autoencoder file
/// whose names carry the `vae.` prefix or not (it then replaces the model file's copy). Every
/// file is checked in full first: one error lists each missing, unexpected or misshaped tensor.
pub fn load_generator(
    gpu: &Gpu,
    c: &ModelConfig,
    model: &WeightFile<'_>,
    vae: Option<&WeightFile<'_>>,
    precision: Precision,
) -> Result<ParamStore> {
    TensorLoader::generator(gpu, c, model, vae, precision)?.load_in_memory()
}

/// The decoder's weights out of a generator's store (all that `decode_tokens` reads); the
/// transformer's and the head's are dropped, and the GPU memory they and the sampler's pooled
/// buffers held is freed. For a run that samples nothing more before it decodes (`bitdance
/// generate` decodes after its last pass).
pub fn decoder_weights(c: &ModelConfig, params: ParamStore) -> ParamStore {
    let names: BTreeSet<String> = decoder_parameters(&c.vae)
        .into_iter()
        .map(|p| p.name)
        .collect();
    let (decoder, sampler) = params.partition(|name| names.contains(name));
    drop(sampler);
    if let Ok(gpu) = decoder.gpu() {
        gpu.trim_pool();
    }
    decoder
}

/// Loads the whole autoencoder (`vae.encoder.*` and `vae.decoder.*`, e.g. to encode a dataset)
/// from `file`, whose names carry the `vae.` prefix or not; its other tensors are ignored.
pub fn load_autoencoder(gpu: &Gpu, ae: &AeConfig, file: &WeightFile<'_>) -> Result<ParamStore> {
    load_autoencoder_in(gpu, ae, file, &BTreeSet::new())
}

/// `load_autoencoder` holding the weights named in `half` (official `vae.*` names) in 16 bits.
pub fn load_autoencoder_in(
    gpu: &Gpu,
    ae: &AeConfig,
    file: &WeightFile<'_>,
    half: &BTreeSet<String>,
) -> Result<ParamStore> {
    gpu.check_memory(&ae.weights_memory())?;
    let prefixed = file.names().iter().any(|n| n.starts_with(VAE_PREFIX));
    let specs: Vec<ParamSpec> = encoder_parameters(ae)
        .into_iter()
        .chain(decoder_parameters(ae))
        .map(|s| ParamSpec {
            name: if prefixed {
                s.name
            } else {
                s.name.trim_start_matches(VAE_PREFIX).to_string()
            },
            shape: s.shape,
        })
        .collect();
    let half: BTreeSet<String> = match prefixed {
        true => half.clone(),
        false => half
            .iter()
            .map(|n| n.trim_start_matches(VAE_PREFIX).to_string())
            .collect(),
    };
    let store = ParamStore::from_weights_in(gpu, file, &specs, &half)?;
    Ok(if prefixed {
        store
    } else {
        store.renamed(|n| format!("{VAE_PREFIX}{n}"))
    })
}

#[cfg(test)]
mod tests {
    use super::{stored_config, CONFIG_KEY};
    use crate::io::{save_safetensors, WeightFile};

    #[test]
    fn a_bad_stored_config_names_the_file_and_the_metadata_key() {
        let meta =
            std::collections::BTreeMap::from([(CONFIG_KEY.to_string(), "{1: 2}".to_string())]);
        let bytes = save_safetensors(&[("x", &[1], &[0.5])], Some(&meta)).unwrap();
        let file = WeightFile::parse_named("mine.safetensors", &bytes).unwrap();
        let e = stored_config(&file).unwrap_err().to_string();
        assert!(
            e.contains("mine.safetensors") && e.contains("'bitdance.config'"),
            "{e}"
        );
    }
}
