//! The dataset's tokens (the core's `LatentCache`: every image and its horizontal flip, in the
//! AR model's token order), encoded once by the frozen tokenizer and cached on disk.

use std::path::Path;

use anyhow::Context;
use bitdance::io::{save_safetensors, WeightFile};
use bitdance::model::{ModelConfig, ParamStore};
use bitdance::train::LatentCache;
use indicatif::ProgressBar;

use crate::dataset::ImageFolder;
use crate::files::write_atomic;

/// A fingerprint of what the cache depends on: images, resolution, tokenizer weights.
pub fn fingerprint(data: &ImageFolder, c: &ModelConfig, tokenizer_bytes: &[u8]) -> String {
    // FNV-1a: stable across runs and platforms, unlike std's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h = (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    };
    for i in 0..data.len() {
        for v in data.image(i) {
            eat(&v.to_le_bytes());
        }
        eat(&data.label(i).to_le_bytes());
    }
    eat(serde_json::to_string(&c.vae).unwrap_or_default().as_bytes());
    eat(&(c.resolution as u64).to_le_bytes());
    eat(tokenizer_bytes);
    format!("{h:016x}")
}

/// The cache in `bytes` when its fingerprint is `fingerprint` (`None` for another one, e.g.
/// after the data or the tokenizer changed); an error when it claims the fingerprint but its
/// contents do not fit `n` images of `per_image` ±1 values with their labels.
fn read_matching(
    label: &str,
    bytes: &[u8],
    n: usize,
    per_image: usize,
    fingerprint: &str,
) -> anyhow::Result<Option<LatentCache>> {
    let file = WeightFile::parse_named(label, bytes)?;
    if file.metadata().get("fingerprint").map(String::as_str) != Some(fingerprint) {
        return Ok(None);
    }
    let tokens = file.to_f32("tokens")?;
    let labels = file.to_f32("labels")?;
    anyhow::ensure!(
        labels.len() == n && tokens.len() == 2 * n * per_image,
        "it holds {} labels and {} token values; the dataset needs {n} and {} (its images and their flips)",
        labels.len(),
        tokens.len(),
        2 * n * per_image
    );
    anyhow::ensure!(
        tokens.iter().all(|&v| v == 1.0 || v == -1.0),
        "its tokens are not all ±1"
    );
    anyhow::ensure!(
        labels.iter().all(|&v| v >= 0.0 && v.fract() == 0.0),
        "its labels are not all class indices"
    );
    Ok(Some(LatentCache {
        tokens,
        labels: labels.into_iter().map(|v| v as u32).collect(),
        per_image,
    }))
}

/// Loads the cache at `path` when its fingerprint matches and its contents fit the dataset,
/// else (with a note when a cache that claims to match does not) encodes `data` with the
/// tokenizer in `ae` and writes the cache atomically.
pub fn load_or_encode(
    path: &Path,
    data: &ImageFolder,
    c: &ModelConfig,
    ae: &ParamStore,
    fingerprint: &str,
) -> anyhow::Result<LatentCache> {
    let per_image = c.image_tokens() * c.token_dim();
    if let Ok(bytes) = std::fs::read(path) {
        let label = path.display().to_string();
        match read_matching(&label, &bytes, data.len(), per_image, fingerprint) {
            Ok(Some(cache)) => return Ok(cache),
            Ok(None) => {}
            Err(why) => eprintln!(
                "note: the latent cache {label} is unusable ({why:#}): encoding the dataset again"
            ),
        }
    }
    let n = data.len();
    let bar = ProgressBar::new(2 * n as u64).with_message("encoding the dataset");
    let cache = pollster::block_on(LatentCache::encode(c, ae, data, &mut |done, _| {
        bar.set_position(done as u64)
    }))?;
    bar.finish_and_clear();
    let label_values: Vec<f32> = cache.labels.iter().map(|&l| l as f32).collect();
    let meta =
        std::collections::BTreeMap::from([("fingerprint".to_string(), fingerprint.to_string())]);
    let bytes = save_safetensors(
        &[
            (
                "tokens",
                &[2 * n, c.image_tokens(), c.token_dim()],
                &cache.tokens,
            ),
            ("labels", &[n], &label_values),
        ],
        Some(&meta),
    )?;
    write_atomic(path, &bytes).context("writing the latent cache")?;
    Ok(cache)
}
