//! Memory a model needs for a job, estimated from its config alone, so that a config too large
//! for the machine is refused with the figure before anything is allocated.

use super::{
    ar_parameters, decoder_parameters, encoder_parameters, AeConfig, ModelConfig, ParamSpec,
    Precision,
};

// Estimates are computed in f64: exact enough, and a product of the largest sizes a config may
// hold saturates (`as u64`) instead of wrapping.
const F32: f64 = 4.0;

/// An estimate of the bytes a job needs on the device (and, for lavapipe or a browser, the host).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// The job, in words (e.g. "generating 4 images with this model").
    pub what: String,
    /// Parameters the job holds (every tensor of every model it loads).
    pub parameters: u64,
    /// Estimated bytes at peak: weights, optimizer state, caches and activations.
    pub bytes: u64,
}

/// Elements of every spec (on wasm32 a usize product could wrap).
fn count(specs: &[ParamSpec]) -> f64 {
    specs
        .iter()
        .map(|s| s.shape.iter().map(|&d| d as f64).product::<f64>())
        .sum()
}

/// Bytes of the activations the autoencoder's widest part keeps for one image, in f32: every
/// level's feature maps, `live` copies of each (the resblocks' norms, convs and residuals).
fn autoencoder_activations(c: &ModelConfig, live: f64) -> f64 {
    level_maps(c)
        .map(|(side, channels)| (side * side * channels) as f64 * live)
        .sum::<f64>()
        * F32
}

/// Each autoencoder level's feature map for one image: (side in pixels, channels).
pub(crate) fn level_maps(c: &ModelConfig) -> impl Iterator<Item = (u64, u64)> + '_ {
    let ch = c.vae.ch as u64;
    c.vae
        .ch_mult
        .iter()
        .enumerate()
        .map(move |(level, &m)| ((c.resolution as u64) >> level, ch * m as u64))
}

impl AeConfig {
    /// Memory to hold this autoencoder's weights (encoder and decoder) in f32.
    pub fn weights_memory(&self) -> MemoryEstimate {
        let mut specs = encoder_parameters(self);
        specs.extend(decoder_parameters(self));
        let parameters = count(&specs);
        MemoryEstimate {
            what: "holding this autoencoder's weights".into(),
            parameters: parameters as u64,
            bytes: (parameters * F32) as u64,
        }
    }
}

impl ModelConfig {
    /// Memory to hold the AR model's and head's weights in f32.
    pub fn ar_weights_memory(&self) -> MemoryEstimate {
        let parameters = count(&ar_parameters(self));
        MemoryEstimate {
            what: "holding this model's weights".into(),
            parameters: parameters as u64,
            bytes: (parameters * F32) as u64,
        }
    }

    /// Memory to generate `images` images at once: the AR model, head and decoder (the linear
    /// weights at `precision`, the rest f32), the KV cache of both CFG branches, and the
    /// decoder's feature maps.
    pub fn generation_memory(&self, images: usize, precision: Precision) -> MemoryEstimate {
        let mut specs = ar_parameters(self);
        specs.extend(decoder_parameters(&self.vae));
        let parameters = count(&specs);
        let half = super::half_weights(self, precision);
        let matrices: Vec<ParamSpec> = specs
            .iter()
            .filter(|s| half.contains(&s.name))
            .cloned()
            .collect();
        let weights = parameters * F32 - count(&matrices) * (F32 - precision.weight_bytes());
        let rows = 2.0 * images as f64 * self.sequence_len() as f64;
        let kv_cache = 2.0 * self.n_layer as f64 * rows * self.dim as f64 * F32;
        let decoder = images as f64 * autoencoder_activations(self, 4.0);
        MemoryEstimate {
            what: format!("generating {images} image(s) with this model"),
            parameters: parameters as u64,
            bytes: (weights + kv_cache + decoder) as u64,
        }
    }

    /// Memory to train the AR model and head on `batch` images with `head_repeats` head-loss
    /// repeats per token: weights, gradients, both AdamW moments and the EMA (5 f32 per
    /// parameter), the frozen autoencoder, and the activations kept for the backward pass.
    pub fn ar_training_memory(&self, batch: usize, head_repeats: usize) -> MemoryEstimate {
        let trained = count(&ar_parameters(self));
        let mut frozen_specs = encoder_parameters(&self.vae);
        frozen_specs.extend(decoder_parameters(&self.vae));
        let frozen = count(&frozen_specs);
        let activations = self.ar_activations(batch, head_repeats);
        MemoryEstimate {
            what: format!("training this model on batches of {batch}"),
            parameters: (trained + frozen) as u64,
            bytes: ((5.0 * trained + frozen + 3.0 * activations) * F32) as u64,
        }
    }

    /// Values the AR model's forward keeps for its backward on `batch` sequences, with the
    /// head's rows repeated `head_repeats` times.
    pub fn ar_activations(&self, batch: usize, head_repeats: usize) -> f64 {
        let (trunk_block, head_block) = self.ar_block_activations(batch, head_repeats);
        self.n_layer as f64 * trunk_block + self.diff_layers as f64 * head_block
    }

    /// The same with gradient checkpointing, as (what stays kept, the largest block): each
    /// block keeps only its input, its values recomputed one block at a time in the backward;
    /// what the blocks do not cover stays: the head's per-row conditioning (time embedding,
    /// condition, adaLN modulations), its input and output rows and the loss terms.
    pub fn ar_activations_recomputed(&self, batch: usize, head_repeats: usize) -> (f64, f64) {
        let (trunk_block, head_block) = self.ar_block_activations(batch, head_repeats);
        let trunk_rows = (batch * self.sequence_len()) as f64;
        let head_rows = (batch * self.image_tokens() * head_repeats) as f64;
        let w = self.diff_dim as f64;
        let chunks = if self.parallel_num > 1 { 6.0 } else { 3.0 };
        let per_head_row = (self.diff_adanln_layers as f64 * chunks + 2.0 + 5.0) * w
            + 256.0
            + self.dim as f64
            + 4.0 * self.token_dim() as f64;
        let inputs = self.n_layer as f64 * trunk_rows * self.dim as f64
            + self.diff_layers as f64 * head_rows * w;
        (
            inputs + head_rows * per_head_row,
            trunk_block.max(head_block),
        )
    }

    /// Values one trunk block and one head block keep for the backward.
    fn ar_block_activations(&self, batch: usize, head_repeats: usize) -> (f64, f64) {
        let (b, seq, dim) = (batch as f64, self.sequence_len() as f64, self.dim as f64);
        // Per block: the norms, q/k/v, attention output, residuals (about 12 rows of dim), the
        // FFN's three hidden rows, and the attention weights of every head.
        let per_sequence =
            seq * (12.0 * dim + 3.0 * self.ffn_hidden() as f64) + seq * seq * self.n_head as f64;
        let head_rows = b * self.image_tokens() as f64 * head_repeats as f64;
        (b * per_sequence, head_rows * 10.0 * self.diff_dim as f64)
    }

    /// Values the autoencoder keeps for its backward on `batch` images.
    pub fn tokenizer_activations(&self, batch: usize) -> f64 {
        let live = 2.0 * (8.0 * self.vae.num_res_blocks as f64 + 4.0);
        batch as f64 * autoencoder_activations(self, live)
    }

    /// Memory to train the autoencoder on `batch` images: 5 f32 per parameter (weights,
    /// gradients, AdamW moments, EMA) and the encoder's and decoder's feature maps kept for
    /// the backward pass.
    pub fn tokenizer_training_memory(&self, batch: usize) -> MemoryEstimate {
        let mut specs = encoder_parameters(&self.vae);
        specs.extend(decoder_parameters(&self.vae));
        let parameters = count(&specs);
        let activations = self.tokenizer_activations(batch);
        MemoryEstimate {
            what: format!("training this tokenizer on batches of {batch}"),
            parameters: parameters as u64,
            bytes: (5.0 * parameters * F32 + 2.0 * activations) as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{ModelConfig, Precision};

    #[test]
    fn released_models_fit_a_16_gib_budget_for_generation() {
        for name in ["B-1x", "B-4x", "B-16x", "L-1x", "H-1x"] {
            let c = ModelConfig::builtin(name).unwrap();
            let e = c.generation_memory(1, Precision::F32);
            assert!(e.bytes < 8 << 30, "{name}: {e:?}");
        }
        // B-4x: 260M AR + head parameters and a 261M decoder; `bench generate` measured a
        // peak of 2397 MiB (2.51 GB) for one image.
        let b4 = ModelConfig::builtin("B-4x").unwrap();
        let half = b4.generation_memory(1, Precision::F16);
        let b4 = b4.generation_memory(1, Precision::F32);
        // About 230M linear weights at 2 bytes instead of 4.
        assert!(b4.bytes - half.bytes > 400_000_000, "{b4:?} vs {half:?}");
        assert!(
            (500_000_000..540_000_000).contains(&b4.parameters),
            "{b4:?}"
        );
        assert!((2_300_000_000..2_800_000_000).contains(&b4.bytes), "{b4:?}");
    }

    #[test]
    fn estimates_grow_with_the_batch_and_the_largest_configs_do_not_overflow() {
        let tiny = ModelConfig::builtin("tiny").unwrap();
        let one = tiny.ar_training_memory(1, 4).bytes;
        assert!(tiny.ar_training_memory(8, 4).bytes > one);
        assert!(tiny.tokenizer_training_memory(8).bytes > tiny.tokenizer_training_memory(1).bytes);
        let mut huge = ModelConfig::builtin("H-1x").unwrap();
        (huge.dim, huge.diff_dim, huge.n_layer, huge.n_head) = (16384, 16384, 512, 256);
        huge.validate().unwrap();
        let e = huge.ar_training_memory(64, 4);
        assert!(e.bytes > 1 << 40, "{e:?}");
        (huge.resolution, huge.down_size, huge.vae.ch_mult) = (4096, 1, vec![1]);
        huge.validate().unwrap();
        assert_eq!(huge.ar_training_memory(usize::MAX, 64).bytes, u64::MAX);
    }
}
