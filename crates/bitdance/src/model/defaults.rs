//! What a run uses when the user says nothing: the sampling settings recommended per model
//! (published guidance for the released models, the evaluated settings of this project's
//! default model) and, with the `default-model` feature, that model itself, embedded once for
//! the CLI, the desktop app and the web page.

use super::{published_cfg, CfgSchedule, SampleSettings};

/// Head sampling steps of the official sampler.
pub const OFFICIAL_HEAD_STEPS: usize = 100;

/// Guidance scale for models with no published or evaluated value.
pub const FALLBACK_CFG: f32 = 4.0;

/// The name under which the embedded default model is known to `recommended_settings`.
pub const DEFAULT_MODEL_NAME: &str = "default";

/// Settings the embedded default model was evaluated with (assets/model/README.md: 96.8% of
/// its samples classified as their digit).
const DEFAULT_MODEL_SETTINGS: SampleSettings = SampleSettings {
    cfg: 3.0,
    schedule: CfgSchedule::Linear,
    head_steps: 50,
};

/// Recommended sampling settings for the model called `name` (a built-in name such as `b-4x`,
/// `DEFAULT_MODEL_NAME`, or anything else): the published cfg with the official 100 head
/// steps for released models, the evaluated settings for the default model, else cfg 4 and
/// 100 steps; always the linear guidance schedule of the official sampler.
pub fn recommended_settings(name: Option<&str>) -> SampleSettings {
    if name.is_some_and(|n| n.trim().eq_ignore_ascii_case(DEFAULT_MODEL_NAME)) {
        return DEFAULT_MODEL_SETTINGS;
    }
    SampleSettings {
        cfg: name.and_then(published_cfg).unwrap_or(FALLBACK_CFG),
        schedule: CfgSchedule::Linear,
        head_steps: OFFICIAL_HEAD_STEPS,
    }
}

/// The embedded default model: the `tiny` config (tokenizer and next-patch AR model, 32x32,
/// ten MNIST digits) trained by this runtime; safetensors, F16, official names, its config and
/// class names in the metadata (4.9 MB).
#[cfg(feature = "default-model")]
pub const DEFAULT_MODEL_BYTES: &[u8] =
    include_bytes!("../../../../assets/model/default.safetensors");

/// The embedded default model's SHA-256 (64 hex digits; computed once): its identity in
/// recipes, caches and the `bitdance.base_sha256` of models tuned from it.
#[cfg(feature = "default-model")]
pub fn default_model_sha256() -> &'static str {
    static SHA256: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SHA256.get_or_init(|| crate::studio::sha256_hex(DEFAULT_MODEL_BYTES))
}

/// How messages name the embedded default model.
pub const DEFAULT_MODEL_LABEL: &str = "the default model (tiny, MNIST digits)";

/// Whether `file` is the embedded default model under another name (the same header: config,
/// classes, tensors and their byte ranges) or a model fine-tuned from it (its
/// `bitdance.base_sha256` is the default's SHA-256): such models sample best with the default's
/// evaluated settings, not the generic ones.
#[cfg(feature = "default-model")]
pub fn descends_from_default_model(file: &crate::io::WeightFile<'_>) -> bool {
    let meta = file.metadata();
    if let Some(base) = meta.get(crate::train::BASE_KEY) {
        return base == default_model_sha256();
    }
    let Ok(default) = crate::io::WeightFile::parse(DEFAULT_MODEL_BYTES) else {
        return false;
    };
    let names = default.names();
    meta == default.metadata()
        && file.names() == names
        && names.iter().all(|n| {
            file.data_range(n).ok() == default.data_range(n).ok()
                && file.dtype(n).ok() == default.dtype(n).ok()
                && file.shape(n).ok() == default.shape(n).ok()
        })
}

/// Without the embedded model, nothing descends from it.
#[cfg(not(feature = "default-model"))]
pub fn descends_from_default_model(_file: &crate::io::WeightFile<'_>) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_models_get_their_published_cfg_in_any_spelling() {
        let s = recommended_settings(Some("b-4x"));
        assert_eq!((s.cfg, s.head_steps), (3.9, 100));
        assert_eq!(recommended_settings(Some("BitDance-B-16x")).cfg, 6.1);
        assert_eq!(
            recommended_settings(Some("Default")),
            DEFAULT_MODEL_SETTINGS
        );
        let other = recommended_settings(Some("runs/mine/model.safetensors"));
        assert_eq!((other.cfg, other.head_steps), (FALLBACK_CFG, 100));
        assert_eq!(recommended_settings(None).cfg, FALLBACK_CFG);
    }
}
