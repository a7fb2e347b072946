//! What a model file is before it loads: its config (stored, else the released config its
//! tensors match), class names, size, recommended sampling and memory need. The apps list and
//! check models with it; the same card for a file in the CLI, the desktop app and the web page.

use crate::io::WeightFile;
use crate::model::{
    ar_parameters, builtin_name, decoder_feature_map, descends_from_default_model,
    recommended_settings, stored_class_names, stored_config, ModelConfig, Precision,
    SampleSettings, BUILTIN_CONFIGS, DEFAULT_MODEL_NAME, VAE_PREFIX,
};
use crate::{Error, Result};

use super::ClassNames;

/// A model file described from its header alone.
#[derive(Clone, Debug)]
pub struct ModelCard {
    /// What the user calls it (the file name, or "default").
    pub name: String,
    /// The built-in config it is (`B-4x`, `tiny`, ...), or `None` for a custom one.
    pub builtin: Option<&'static str>,
    /// Its architecture.
    pub config: ModelConfig,
    /// Its class names (stored, ImageNet's, or indices).
    pub classes: ClassNames,
    /// Parameters generation loads (AR model, head and decoder).
    pub parameters: u64,
    /// Whether the file holds the autoencoder too (`vae.*`); else it needs a separate one.
    pub has_autoencoder: bool,
    /// The sampling settings recommended for it (published cfg for released models).
    pub settings: SampleSettings,
}

impl ModelCard {
    /// Describes `file` (called `name`): its stored config, else the released config whose
    /// tensor shapes it matches; an error naming the file when neither is found.
    pub fn of_file(name: &str, file: &WeightFile<'_>) -> Result<Self> {
        let config = model_config_of(file)?;
        let builtin = builtin_name(&config);
        let recommended = match name == DEFAULT_MODEL_NAME || descends_from_default_model(file) {
            true => Some(DEFAULT_MODEL_NAME),
            false => builtin,
        };
        let mut specs = ar_parameters(&config);
        specs.extend(crate::model::decoder_parameters(&config.vae));
        let parameters = specs
            .iter()
            .map(|s| s.shape.iter().product::<usize>() as u64)
            .sum();
        Ok(ModelCard {
            name: name.to_string(),
            builtin,
            classes: ClassNames::for_model(config.num_classes, stored_class_names(file)),
            parameters,
            has_autoencoder: file.names().iter().any(|n| n.starts_with(VAE_PREFIX)),
            settings: recommended_settings(recommended),
            config,
        })
    }

    /// The config's name as shown: the built-in name, or "custom".
    pub fn config_name(&self) -> &str {
        self.builtin.unwrap_or("custom")
    }

    /// Bytes generation of one image holds on the device at `precision` (weights, KV cache,
    /// decoder maps; see `ModelConfig::generation_memory`).
    pub fn memory_bytes(&self, precision: Precision) -> u64 {
        self.config.generation_memory(1, precision).bytes
    }

    /// The largest single storage binding generation needs, named, in bytes.
    pub fn largest_binding(&self) -> (String, u64) {
        decoder_feature_map(&self.config)
    }

    /// The card as JSON for the apps: name, config, resolution, classes, parameters, the
    /// autoencoder flag, recommended cfg and steps, memory at f16 and f32, largest binding.
    pub fn to_json(&self) -> serde_json::Value {
        let (binding_what, binding_bytes) = self.largest_binding();
        serde_json::json!({
            "name": self.name,
            "config": self.config_name(),
            "resolution": self.config.resolution,
            "parallel_num": self.config.parallel_num,
            "classes": self.classes.len(),
            "parameters": self.parameters,
            "has_autoencoder": self.has_autoencoder,
            "cfg": self.settings.cfg,
            "steps": self.settings.head_steps,
            "memory_f16": self.memory_bytes(Precision::F16),
            "memory_f32": self.memory_bytes(Precision::F32),
            "largest_binding": {"what": binding_what, "bytes": binding_bytes},
        })
    }
}

/// What a weight file holds, from its tensor names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileRole {
    /// An AR model (with or without its autoencoder).
    Model,
    /// Only an autoencoder (`vae.*`, `encoder.*`, `decoder.*` and `quant*` tensors).
    Autoencoder,
}

/// Whether `file` is a model or only an autoencoder, so that two files opened together are
/// told apart.
pub fn file_role(file: &WeightFile<'_>) -> FileRole {
    let autoencoder = |n: &String| {
        let n = n.strip_prefix(VAE_PREFIX).unwrap_or(n);
        n.starts_with("encoder.") || n.starts_with("decoder.") || n.starts_with("quant")
    };
    let names = file.names();
    match !names.is_empty() && names.iter().all(autoencoder) {
        true => FileRole::Autoencoder,
        false => FileRole::Model,
    }
}

/// The released config whose AR tensors `file` holds with the right shapes.
/// The model config of a weight file: its stored config, else the released config whose
/// tensor shapes it matches (a converted official checkpoint); an error naming the file when
/// neither is found. The CLI, the apps and the trainer find a file's config this way.
pub fn model_config_of(file: &WeightFile<'_>) -> Result<ModelConfig> {
    match stored_config(file)? {
        Some(c) => Ok(c),
        None => matching_builtin(file),
    }
}

fn matching_builtin(file: &WeightFile<'_>) -> Result<ModelConfig> {
    for name in BUILTIN_CONFIGS {
        let Ok(c) = ModelConfig::builtin(name) else {
            continue;
        };
        let fits = ar_parameters(&c).iter().all(|s| {
            file.shape(&s.name)
                .is_ok_and(|found| found == s.shape.as_slice())
        });
        if fits {
            return Ok(c);
        }
    }
    Err(Error::Invalid(format!(
        "{}: stores no config (metadata 'bitdance.config') and its tensors match none of the \
         released configs ({}); is it a BitDance model?",
        file.label(),
        BUILTIN_CONFIGS.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::save_safetensors;

    #[test]
    fn a_file_without_a_config_is_matched_by_shapes_or_refused_by_name() {
        let c = ModelConfig::builtin("tiny").unwrap();
        let host: Vec<(String, Vec<usize>, Vec<f32>)> = ar_parameters(&c)
            .into_iter()
            .map(|s| {
                let n = s.shape.iter().product();
                (s.name, s.shape, vec![0.0; n])
            })
            .collect();
        let views: Vec<(&str, &[usize], &[f32])> = host
            .iter()
            .map(|(n, s, d)| (n.as_str(), s.as_slice(), d.as_slice()))
            .collect();
        let bytes = save_safetensors(&views, None).unwrap();
        let file = WeightFile::parse_named("ar.safetensors", &bytes).unwrap();
        let card = ModelCard::of_file("ar.safetensors", &file).unwrap();
        assert_eq!(card.config_name(), "tiny");
        assert!(!card.has_autoencoder);
        assert_eq!(card.classes.len(), c.num_classes);
        let json = card.to_json();
        assert_eq!(json["config"], "tiny");
        assert!(json["memory_f16"].as_u64().unwrap() < json["memory_f32"].as_u64().unwrap());

        assert_eq!(file_role(&file), FileRole::Model);
        let ae =
            save_safetensors(&[("vae.decoder.conv_in.weight", &[2], &[1.0, 2.0])], None).unwrap();
        let ae = WeightFile::parse(&ae).unwrap();
        assert_eq!(file_role(&ae), FileRole::Autoencoder);

        let other = save_safetensors(&[("x", &[2], &[1.0, 2.0])], None).unwrap();
        let file = WeightFile::parse_named("x.safetensors", &other).unwrap();
        let e = ModelCard::of_file("x.safetensors", &file)
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.safetensors") && e.contains("B-4x"), "{e}");
    }

    #[cfg(feature = "default-model")]
    #[test]
    fn the_default_model_card_has_its_digits_and_evaluated_settings() {
        let file = WeightFile::parse(crate::model::DEFAULT_MODEL_BYTES).unwrap();
        let card = ModelCard::of_file(DEFAULT_MODEL_NAME, &file).unwrap();
        assert_eq!(card.classes.len(), 10);
        assert_eq!(card.settings.cfg, 3.0);
        assert!(card.has_autoencoder);
    }

    #[cfg(feature = "default-model")]
    #[test]
    fn a_copy_of_the_default_model_or_a_model_tuned_from_it_gets_its_settings() {
        use crate::model::{recommended_settings, DEFAULT_MODEL_BYTES};
        use crate::train::BASE_KEY;
        let evaluated = recommended_settings(Some(DEFAULT_MODEL_NAME));
        let copy = WeightFile::parse_named("default.safetensors", DEFAULT_MODEL_BYTES).unwrap();
        let card = ModelCard::of_file("default.safetensors", &copy).unwrap();
        assert_eq!(card.settings, evaluated);
        // A model fine-tuned from it names it by SHA-256; one tuned from another model does not.
        let tuned = |base: &str| {
            let mut meta = copy.metadata();
            meta.insert(BASE_KEY.into(), base.into());
            let w = [0.5f32; 4];
            let bytes = save_safetensors(&[("x", &[4], &w)], Some(&meta)).unwrap();
            let file = WeightFile::parse_named("tuned.safetensors", &bytes).unwrap();
            ModelCard::of_file("tuned.safetensors", &file).map(|c| c.settings)
        };
        let sha = crate::studio::sha256_hex(DEFAULT_MODEL_BYTES);
        assert_eq!(tuned(&sha).unwrap(), evaluated);
        let other = tuned(&"0".repeat(64)).unwrap();
        assert_eq!(other, recommended_settings(None));
        assert_ne!(other, evaluated);
        // Same config and classes but other tensors: not a copy.
        let mut meta = copy.metadata();
        meta.remove(BASE_KEY);
        let bytes = save_safetensors(&[("x", &[4], &[0.5f32; 4])], Some(&meta)).unwrap();
        let file = WeightFile::parse_named("other.safetensors", &bytes).unwrap();
        let card = ModelCard::of_file("other.safetensors", &file).unwrap();
        assert_eq!(card.settings, recommended_settings(None));
    }
}
