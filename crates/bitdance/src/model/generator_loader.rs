//! The plan that loads a generator (AR model, head and decoder) tensor by tensor: the checks
//! first (names, shapes, memory, the adapter's limits), then a `TensorLoader` that reads one
//! range and uploads it at a time. One code path for the native apps and the web page.

use std::collections::BTreeSet;

use super::{
    ar_parameters, decoder_parameters, encoder_parameters, half_weights, LoadFile, LoadItem,
    ModelConfig, ParamSpec, Precision, TensorLoader, PIECE_BYTES, VAE_PREFIX,
};
use crate::io::{check_expected, WeightFile};
use crate::{Error, Gpu, Result};

impl<'f> TensorLoader<'f> {
    /// Checks `model` (and the optional separate autoencoder `vae`, its names with or without
    /// the `vae.` prefix) against config `c` in full, one error listing every missing,
    /// unexpected or misshaped tensor, then the memory estimate at `precision` and the
    /// adapter's binding limit; plans one read per tensor generation needs.
    pub fn generator(
        gpu: &Gpu,
        c: &ModelConfig,
        model: &'f WeightFile<'f>,
        vae: Option<&'f WeightFile<'f>>,
        precision: Precision,
    ) -> Result<Self> {
        Self::generator_in_pieces(gpu, c, model, vae, precision, PIECE_BYTES)
    }

    /// `generator`, reading tensors over `piece_bytes` a run of rows at a time.
    pub fn generator_in_pieces(
        gpu: &Gpu,
        c: &ModelConfig,
        model: &'f WeightFile<'f>,
        vae: Option<&'f WeightFile<'f>>,
        precision: Precision,
        piece_bytes: u64,
    ) -> Result<Self> {
        let precision = precision.on(gpu);
        gpu.check_memory(&c.generation_memory(1, precision))?;
        check_bindings(gpu, c)?;
        let ar = ar_parameters(c);
        let decoder = decoder_parameters(&c.vae);
        let model_has_vae = model.names().iter().any(|n| n.starts_with(VAE_PREFIX));
        let mut expected: Vec<(String, Vec<usize>)> = ar
            .iter()
            .map(|s| (s.name.clone(), s.shape.clone()))
            .collect();
        if model_has_vae || vae.is_none() {
            expected.extend(autoencoder_shapes(c, true));
        }
        check_expected(model, &expected, &[])?;
        if let Some(file) = vae {
            let prefixed = file.names().iter().any(|n| n.starts_with(VAE_PREFIX));
            check_expected(file, &autoencoder_shapes(c, prefixed), &[])?;
        }
        let half = half_weights(c, precision);
        let mut items = items_of(LoadFile::Model, None, &ar, &half);
        match vae {
            None => items.extend(items_of(LoadFile::Model, None, &decoder, &half)),
            Some(file) => items.extend(items_of(LoadFile::Vae, Some(file), &decoder, &half)),
        }
        TensorLoader::new(gpu, model, vae, items, piece_bytes)
    }
}

/// Items loading `specs` from `which` (the autoencoder `file`, when separate, may name them
/// without the `vae.` prefix), held in 16 bits when named in `half`.
pub(crate) fn items_of(
    which: LoadFile,
    file: Option<&WeightFile<'_>>,
    specs: &[ParamSpec],
    half: &BTreeSet<String>,
) -> Vec<LoadItem> {
    let prefixed = file.is_none_or(|f| f.names().iter().any(|n| n.starts_with(VAE_PREFIX)));
    specs
        .iter()
        .map(|spec| LoadItem {
            file: which,
            name_in_file: match prefixed {
                true => spec.name.clone(),
                false => spec.name.trim_start_matches(VAE_PREFIX).to_string(),
            },
            spec: spec.clone(),
            half: half.contains(&spec.name),
            grow: None,
        })
        .collect()
}

/// Every autoencoder tensor's name (with the `vae.` prefix or not) and shape.
fn autoencoder_shapes(c: &ModelConfig, prefixed: bool) -> Vec<(String, Vec<usize>)> {
    encoder_parameters(&c.vae)
        .into_iter()
        .chain(decoder_parameters(&c.vae))
        .map(|s| match prefixed {
            true => (s.name, s.shape),
            false => (s.name.trim_start_matches(VAE_PREFIX).to_string(), s.shape),
        })
        .collect()
}

/// Refuses a model whose largest storage binding cannot fit the adapter's limit, naming it:
/// a weight row (a weight is split into row chunks, but never within a row) or the decoder's
/// largest feature map of one image (f32).
fn check_bindings(gpu: &Gpu, c: &ModelConfig) -> Result<()> {
    let limit = gpu.limits().max_storage_buffer_binding_size;
    let mut needs: Vec<(String, u64)> = ar_parameters(c)
        .into_iter()
        .chain(decoder_parameters(&c.vae))
        .map(|s| {
            let row: u64 = s.shape.iter().skip(1).map(|&d| d as u64).product();
            (format!("a row of weight '{}'", s.name), 4 * row)
        })
        .collect();
    needs.push(decoder_feature_map(c));
    match needs.into_iter().max_by_key(|(_, bytes)| *bytes) {
        Some((what, bytes)) if bytes > limit => Err(Error::Limit {
            what,
            requested: bytes,
            limit_name: "max_storage_buffer_binding_size",
            limit,
        }),
        _ => Ok(()),
    }
}

/// The decoder's largest feature map of one image, in f32 bytes, named.
pub fn decoder_feature_map(c: &ModelConfig) -> (String, u64) {
    super::memory::level_maps(c)
        .map(|(s, channels)| {
            (
                format!("the decoder's feature map at {s}x{s} ({channels} channels)"),
                4 * s * s * channels,
            )
        })
        .max_by_key(|(_, bytes)| *bytes)
        .unwrap_or_default()
}

/// The largest feature map of one image in the autoencoder with a one-pixel border on each
/// side (a convolution's padded input), in f32 bytes.
pub fn padded_feature_map(c: &ModelConfig) -> u64 {
    super::memory::level_maps(c)
        .map(|(s, channels)| 4 * (s + 2) * (s + 2) * channels)
        .max()
        .unwrap_or_default()
}
