//! Training data in memory, shared by the CLI and the apps: images by class (decoded from
//! bytes, however they were read), their tokens encoded once by the frozen tokenizer (every
//! image and its mirror), and the batches of a step, drawn so that a resumed run draws the same.

use image::RgbImage;

use crate::io::image::decode_training_image;
use crate::model::{encode_tokens, ModelConfig, ParamStore};
use crate::rng::Rng;
use crate::{Result, Tensor};

/// Images encoded per pass.
const ENCODE_BATCH: usize = 8;

/// Training images: pixels [N, 3, R, R] in [-1, 1] and labels [N], with the class names.
#[derive(Clone, Debug, Default)]
pub struct TrainingImages {
    /// Class names (label i is `classes[i]`).
    pub classes: Vec<String>,
    /// Side of every image.
    pub resolution: usize,
    pixels: Vec<f32>,
    labels: Vec<u32>,
}

impl TrainingImages {
    /// No images yet, at `resolution`.
    pub fn new(resolution: usize) -> Self {
        Self {
            resolution,
            ..Self::default()
        }
    }

    /// The label of class `name`, added at the end when new.
    pub fn class_id(&mut self, name: &str) -> u32 {
        match self.classes.iter().position(|c| c == name) {
            Some(i) => i as u32,
            None => {
                self.classes.push(name.to_string());
                (self.classes.len() - 1) as u32
            }
        }
    }

    /// Decodes a PNG or JPEG (`label`, the file name, starts every error), resizes and crops it
    /// to the resolution (`decode_training_image`) and adds it with class `class`.
    pub fn push_encoded(&mut self, label: &str, bytes: &[u8], class: u32) -> Result<()> {
        let img = decode_training_image(label, bytes, self.resolution)?;
        self.push(img, class);
        Ok(())
    }

    /// Adds an RGB image of the resolution with class `class`.
    pub fn push(&mut self, img: RgbImage, class: u32) {
        let plane = self.resolution * self.resolution;
        let start = self.pixels.len();
        self.pixels.resize(start + 3 * plane, 0.0);
        for (i, p) in img.pixels().enumerate() {
            for c in 0..3 {
                self.pixels[start + c * plane + i] = p.0[c] as f32 / 127.5 - 1.0;
            }
        }
        self.labels.push(class);
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels of image `i`: [3, R, R] in [-1, 1].
    pub fn image(&self, i: usize) -> &[f32] {
        let n = 3 * self.resolution * self.resolution;
        &self.pixels[i * n..(i + 1) * n]
    }

    /// Label of image `i`.
    pub fn label(&self, i: usize) -> u32 {
        self.labels[i]
    }

    /// Images `indices` as one batch [B, 3, R, R], each mirrored left-right where `flip[i]`,
    /// and their labels.
    pub fn batch(&self, indices: &[usize], flip: &[bool]) -> (Vec<f32>, Vec<u32>) {
        let r = self.resolution;
        let mut out = Vec::with_capacity(indices.len() * 3 * r * r);
        for (k, &i) in indices.iter().enumerate() {
            let img = self.image(i);
            if flip.get(k).copied().unwrap_or(false) {
                for row in img.chunks(r) {
                    out.extend(row.iter().rev());
                }
            } else {
                out.extend_from_slice(img);
            }
        }
        (out, indices.iter().map(|&i| self.labels[i]).collect())
    }
}

/// A class folder's name as a class name: without a leading "<index>-" ("7-sneaker" -> "sneaker").
pub fn class_display_name(folder: &str) -> String {
    match folder.split_once('-') {
        Some((index, rest)) if index.chars().all(|c| c.is_ascii_digit()) && !rest.is_empty() => {
            rest.to_string()
        }
        _ => folder.to_string(),
    }
}

/// A dataset's tokens: `tokens` [2N, T, token_dim] (image i at i, its mirror at N + i) and
/// labels [N].
#[derive(Clone, Debug, PartialEq)]
pub struct LatentCache {
    /// ±1 tokens, images then their mirrors.
    pub tokens: Vec<f32>,
    /// Class id per image.
    pub labels: Vec<u32>,
    /// Values per image (T x token_dim).
    pub per_image: usize,
}

impl LatentCache {
    /// Encodes every image and its mirror with the autoencoder in `ae` (`c`'s tokenizer), up to
    /// `ENCODE_BATCH` at a time (fewer when a batch's largest feature map would pass the
    /// adapter's binding limit: two 256x256 images of a B model on a 128 MiB limit);
    /// `progress(done, total)` after each pass.
    pub async fn encode(
        c: &ModelConfig,
        ae: &ParamStore,
        data: &TrainingImages,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Self> {
        let gpu = ae.gpu()?;
        let n = data.len();
        let r = c.resolution;
        let per_image = c.image_tokens() * c.token_dim();
        let mut tokens = Vec::with_capacity(2 * n * per_image);
        let all: Vec<usize> = (0..n).collect();
        // The largest feature map of one image, with the convolutions' one-pixel border.
        let map = crate::model::padded_feature_map(c).max(1);
        let limit = gpu.limits().max_storage_buffer_binding_size;
        let batch = ((limit / map) as usize).clamp(1, ENCODE_BATCH);
        let mut done = 0;
        for flipped in [false, true] {
            for chunk in all.chunks(batch) {
                let (pixels, _) = data.batch(chunk, &vec![flipped; chunk.len()]);
                let images = Tensor::from_f32(&gpu, &[chunk.len(), 3, r, r], &pixels)?;
                tokens.extend(encode_tokens(c, ae, &images).await?);
                done += chunk.len();
                progress(done, 2 * n);
            }
        }
        Ok(LatentCache {
            tokens,
            labels: (0..n).map(|i| data.label(i)).collect(),
            per_image,
        })
    }

    /// Number of images (mirrors not counted).
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the cache holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Tokens of image `i`, mirrored or not.
    pub fn image(&self, i: usize, flipped: bool) -> &[f32] {
        let at = if flipped { self.len() + i } else { i };
        &self.tokens[at * self.per_image..(at + 1) * self.per_image]
    }

    /// The batch of `step`: `batch` images drawn with replacement and coin-flip mirrored (when
    /// `flips`) by an RNG seeded from (seed, step), so a resumed run draws the same batches.
    /// Their tokens go to `tokens` (replaced); returns their labels.
    pub fn sample_batch(
        &self,
        batch: usize,
        seed: u64,
        step: u64,
        flips: bool,
        tokens: &mut Vec<f32>,
    ) -> Vec<u32> {
        let mut rng = Rng::new(seed ^ 0x5eed_da7a ^ step.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        tokens.clear();
        (0..batch)
            .map(|_| {
                let i = rng.below(self.len() as u64) as usize;
                let flipped = rng.below(2) == 1 && flips;
                tokens.extend_from_slice(self.image(i, flipped));
                self.labels[i]
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two images of one token each (values 1 and 2) and their flips (-1 and -2).
    fn cache() -> LatentCache {
        LatentCache {
            tokens: vec![1.0, 2.0, -1.0, -2.0],
            labels: vec![0, 1],
            per_image: 1,
        }
    }

    #[test]
    fn batches_mirror_only_when_flips_are_on() {
        let mut tokens = Vec::new();
        let mut flipped = 0;
        for step in 0..20 {
            let labels = cache().sample_batch(8, 3, step, true, &mut tokens);
            for (t, l) in tokens.iter().zip(&labels) {
                assert_eq!(t.abs() as u32, l + 1);
            }
            flipped += tokens.iter().filter(|t| **t < 0.0).count();
            // The same draws with flips off: the same images, never mirrored.
            let again = cache().sample_batch(8, 3, step, false, &mut tokens);
            assert_eq!(again, labels);
            assert!(tokens.iter().all(|t| *t > 0.0));
        }
        assert!((40..120).contains(&flipped), "{flipped} of 160 mirrored");
    }

    #[test]
    fn images_flip_and_class_names_drop_their_index() {
        let mut data = TrainingImages::new(2);
        let a = data.class_id("3-cat");
        let b = data.class_id("dog");
        assert_eq!((a, b, data.class_id("3-cat")), (0, 1, 0));
        let img = RgbImage::from_fn(2, 2, |x, _| image::Rgb([255 * x as u8, 0, 0]));
        data.push(img, b);
        assert_eq!(data.image(0)[..2], [-1.0, 1.0]);
        let (flipped, labels) = data.batch(&[0], &[true]);
        assert_eq!((flipped[..2].to_vec(), labels), (vec![1.0, -1.0], vec![1]));
        assert_eq!(class_display_name("7-sneaker"), "sneaker");
        assert_eq!(class_display_name("my-dog"), "my-dog");
        let e = data
            .push_encoded("x.png", b"nope", 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.png"), "{e}");
    }
}
