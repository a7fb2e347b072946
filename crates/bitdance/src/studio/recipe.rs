//! The recipe of generated images: the model (by SHA-256), the classes and every sampling
//! setting that determines the draws, and the hash of the tokens they gave, stored as JSON in
//! a PNG text chunk so that `bitdance generate --recipe`, the desktop app and the web page can
//! re-run an image any of them made and say whether the same tokens came out.

use serde::{Deserialize, Serialize};

use super::{png_text_chunks, with_png_text};
use crate::model::{CfgSchedule, Precision, SampleSettings};
use crate::{Error, Result};

/// The PNG `tEXt` keyword of a recipe.
pub const RECIPE_KEYWORD: &str = "bitdance-recipe";
/// The recipe format this build writes and reads.
pub const RECIPE_VERSION: u32 = 1;
/// Most images one recipe may describe.
const MAX_IMAGES: usize = 4096;

/// Everything that determines a set of generated images, and what they came out as.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Format version (`RECIPE_VERSION`).
    pub version: u32,
    /// The model as its user named it: a file name, or `default` for the embedded model.
    pub model: String,
    /// SHA-256 of the model's weight file (64 hex digits).
    pub model_sha256: String,
    /// SHA-256 of a separate autoencoder file, when one was used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vae_sha256: Option<String>,
    /// The config: a built-in name (`B-4x`, `tiny`, ...) or `custom`.
    pub config: String,
    /// The class of every image, in order.
    pub classes: Vec<u32>,
    /// Images sampled together per pass (the draws depend on it).
    pub batch: usize,
    /// Seed of the sampler's Gaussian draws.
    pub seed: u64,
    /// Guidance scale.
    pub cfg: f32,
    /// How the guidance grows over the AR steps.
    pub schedule: CfgSchedule,
    /// Head sampling steps per AR step.
    pub head_steps: usize,
    /// Precision of the layer weights.
    pub precision: Precision,
    /// The adapter that ran it (name and backend), for the record: another adapter may round
    /// differently.
    pub adapter: String,
    /// `token_hash` of the sampled tokens of all images, in order.
    pub token_hash: String,
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// The model a run used, as a recipe names it.
#[derive(Clone, Debug)]
pub struct RecipeModel {
    /// The model as its user named it: a file name, or `default`.
    pub name: String,
    /// SHA-256 of its weight file.
    pub sha256: String,
    /// SHA-256 of a separate autoencoder file, when one was used.
    pub vae_sha256: Option<String>,
    /// A built-in config name, or `custom`.
    pub config: String,
}

impl RecipeModel {
    /// The model of `card`, from a weight file with SHA-256 `sha256` (and a separate
    /// autoencoder file's, if one was used).
    pub fn of(card: &super::ModelCard, sha256: &str, vae_sha256: Option<&str>) -> Self {
        Self {
            name: card.name.clone(),
            sha256: sha256.to_string(),
            vae_sha256: vae_sha256.map(str::to_string),
            config: card.config_name().to_string(),
        }
    }
}

/// What an app asks to sample: one image per class of `classes`, `batch` of them together per
/// pass, with `settings`, the sampler seeded with `seed` (the draws of `bitdance generate -c
/// ... --batch B --seed S`).
#[derive(Clone, Debug, PartialEq)]
pub struct SampleRequest {
    /// Class id of each image, in order.
    pub classes: Vec<u32>,
    /// Images sampled together per pass.
    pub batch: usize,
    /// Guidance, its schedule and the head steps.
    pub settings: SampleSettings,
    /// Seed of the sampler's Gaussian draws.
    pub seed: u64,
}

/// What a finished run sampled: its classes, batch and seed, and the tokens it gave.
pub struct RunRecord<'a> {
    /// The class of every image, in order.
    pub classes: &'a [u32],
    /// Images sampled together per pass.
    pub batch: usize,
    /// Seed of the Gaussian draws.
    pub seed: u64,
    /// The sampling settings.
    pub settings: &'a SampleSettings,
    /// The precision the weights were used at (after `Precision::on`).
    pub precision: Precision,
    /// The sampled tokens of all images, in order.
    pub tokens: &'a [f32],
}

impl Recipe {
    /// The recipe of a finished run of `model` on `gpu` (the CLI, desktop and web all write
    /// theirs this way).
    pub fn of_run(model: RecipeModel, run: RunRecord, gpu: &crate::Gpu) -> Self {
        let adapter = gpu.adapter();
        Self {
            version: RECIPE_VERSION,
            model: model.name,
            model_sha256: model.sha256,
            vae_sha256: model.vae_sha256,
            config: model.config,
            classes: run.classes.to_vec(),
            batch: run.batch,
            seed: run.seed,
            cfg: run.settings.cfg,
            schedule: run.settings.schedule,
            head_steps: run.settings.head_steps,
            precision: run.precision,
            adapter: format!("{} ({})", adapter.name, adapter.backend),
            token_hash: super::token_hash(run.tokens),
        }
    }

    /// A valid recipe with placeholder hashes (default model, classes 3, 3, 7), for tests and
    /// fuzz seeds.
    pub fn example() -> Self {
        Self {
            version: RECIPE_VERSION,
            model: "default".into(),
            model_sha256: "ab".repeat(32),
            vae_sha256: None,
            config: "default".into(),
            classes: vec![3, 3, 7],
            batch: 2,
            seed: 42,
            cfg: 3.0,
            schedule: CfgSchedule::Linear,
            head_steps: 50,
            precision: Precision::F16,
            adapter: "llvmpipe (Vulkan)".into(),
            token_hash: "0f".repeat(32),
        }
    }

    /// What the recipe makes, for a caption: "class 7", or "3 images (classes 3, 3, 7), batch 2".
    pub fn images_text(&self) -> String {
        match self.classes.as_slice() {
            [one] => format!("class {one}"),
            many => {
                let list: Vec<String> = many.iter().map(u32::to_string).collect();
                format!(
                    "{} images (classes {}), batch {}",
                    many.len(),
                    list.join(", "),
                    self.batch
                )
            }
        }
    }

    /// The sampling settings.
    pub fn settings(&self) -> SampleSettings {
        SampleSettings {
            cfg: self.cfg,
            schedule: self.schedule,
            head_steps: self.head_steps,
        }
    }

    /// The run that re-samples this recipe (its classes, batch, settings and seed: its draws,
    /// so its tokens, come out the same).
    pub fn request(&self) -> SampleRequest {
        SampleRequest {
            classes: self.classes.clone(),
            batch: self.batch,
            settings: self.settings(),
            seed: self.seed,
        }
    }

    /// Checks every field's range; the error names the field (and `source`).
    pub fn validate(&self, source: &str) -> Result<()> {
        let bad = |what: String| Error::Invalid(format!("{source}: recipe {what}"));
        if self.version != RECIPE_VERSION {
            return Err(bad(format!(
                "version {} (this build reads version {RECIPE_VERSION})",
                self.version
            )));
        }
        for (field, hash) in [
            ("model_sha256", Some(&self.model_sha256)),
            ("vae_sha256", self.vae_sha256.as_ref()),
            ("token_hash", Some(&self.token_hash)),
        ] {
            if hash.is_some_and(|h| !is_sha256(h)) {
                return Err(bad(format!("{field} is not 64 lowercase hex digits")));
            }
        }
        if self.classes.is_empty() || self.classes.len() > MAX_IMAGES {
            return Err(bad(format!(
                "has {} classes: 1 to {MAX_IMAGES} images",
                self.classes.len()
            )));
        }
        if self.batch == 0 || self.batch > self.classes.len() {
            return Err(bad(format!(
                "batch {} for {} images",
                self.batch,
                self.classes.len()
            )));
        }
        for (field, text) in [
            ("model", &self.model),
            ("config", &self.config),
            ("adapter", &self.adapter),
        ] {
            if text.len() > 256 {
                return Err(bad(format!("{field} is longer than 256 bytes")));
            }
        }
        self.settings()
            .validate()
            .map_err(|e| bad(format!("settings: {e}")))
    }

    /// The recipe as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a recipe always serializes")
    }

    /// A recipe from JSON, checked; errors name `source` and what is wrong.
    pub fn from_json(source: &str, json: &str) -> Result<Self> {
        let recipe: Recipe = serde_json::from_str(json)
            .map_err(|e| Error::Invalid(format!("{source}: not a BitDance recipe: {e}")))?;
        recipe.validate(source)?;
        Ok(recipe)
    }

    /// An RGB8 image (`width` x `height`, row-major) encoded as PNG with this recipe in it.
    pub fn png_of(&self, rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>> {
        let image = image::RgbImage::from_raw(width, height, rgb.to_vec()).ok_or_else(|| {
            Error::Invalid(format!(
                "{} RGB bytes for a {width}x{height} image",
                rgb.len()
            ))
        })?;
        let mut png = Vec::new();
        image
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .map_err(|e| Error::Invalid(format!("PNG encoding: {e}")))?;
        self.into_png(&png)
    }

    /// `png` with this recipe in its `bitdance-recipe` text chunk.
    pub fn into_png(&self, png: &[u8]) -> Result<Vec<u8>> {
        with_png_text(png, RECIPE_KEYWORD, &self.to_json())
    }

    /// The recipe stored in a PNG file (`source` names it in errors).
    pub fn from_png(source: &str, png: &[u8]) -> Result<Self> {
        let chunks = png_text_chunks(png).map_err(|e| Error::Invalid(format!("{source}: {e}")))?;
        let (_, json) = chunks
            .iter()
            .find(|(k, _)| k == RECIPE_KEYWORD)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "{source}: no BitDance recipe in this PNG (no '{RECIPE_KEYWORD}' text chunk)"
                ))
            })?;
        Self::from_json(source, json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Recipe {
        Recipe::example()
    }

    #[test]
    fn recipes_round_trip_through_json_and_png() {
        let r = example();
        assert_eq!(Recipe::from_json("x", &r.to_json()).unwrap(), r);
        let mut png = Vec::new();
        image::RgbImage::new(2, 2)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let with = r.into_png(&png).unwrap();
        assert_eq!(Recipe::from_png("a.png", &with).unwrap(), r);
        let encoded = r.png_of(&[9; 12], 2, 2).unwrap();
        assert_eq!(Recipe::from_png("b.png", &encoded).unwrap(), r);
        assert!(r.png_of(&[9; 11], 2, 2).is_err());
        let e = Recipe::from_png("plain.png", &png).unwrap_err().to_string();
        assert!(
            e.contains("plain.png") && e.contains("no BitDance recipe"),
            "{e}"
        );
    }

    #[test]
    fn bad_fields_are_named() {
        let check = |edit: fn(&mut Recipe), needle: &str| {
            let mut r = example();
            edit(&mut r);
            let e = Recipe::from_json("r.png", &r.to_json())
                .unwrap_err()
                .to_string();
            assert!(e.contains("r.png") && e.contains(needle), "{e}");
        };
        check(|r| r.version = 2, "version 2");
        check(|r| r.model_sha256 = "xyz".into(), "model_sha256");
        check(|r| r.token_hash = "AB".repeat(32), "token_hash");
        check(|r| r.classes.clear(), "0 classes");
        check(|r| r.batch = 9, "batch 9");
        check(|r| r.head_steps = 0, "head steps");
        check(|r| r.cfg = -1.0, "settings");
        let e = Recipe::from_json("r", r#"{"version":1,"extra":true}"#).unwrap_err();
        assert!(e.to_string().contains("not a BitDance recipe"), "{e}");
    }
}
