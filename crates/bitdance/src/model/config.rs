//! Model configuration: the official constructor arguments as JSON keys, the released
//! ImageNet 256 models by name, validation with errors naming the key, and derived sizes.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The binary autoencoder's `ddconfig` subset (`vae` in the JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AeConfig {
    /// Base channel count (256 in ae_d16c32).
    pub ch: usize,
    /// Channel multiplier per level ([1, 1, 2, 2, 4]); each level but the last halves H and W.
    pub ch_mult: Vec<usize>,
    /// ResBlocks per level (4).
    pub num_res_blocks: usize,
    /// Latent channels = binary token bits (32).
    pub z_channels: usize,
}

/// A BitDance model: keys are the official constructor arguments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Transformer width.
    pub dim: usize,
    /// Transformer blocks.
    pub n_layer: usize,
    /// Attention heads.
    pub n_head: usize,
    /// Diffusion-head blocks.
    pub diff_layers: usize,
    /// Diffusion-head width.
    pub diff_dim: usize,
    /// adaLN linears of the head, each shared by `diff_layers / diff_adanln_layers` blocks.
    pub diff_adanln_layers: usize,
    /// Bits per token (= vae.z_channels).
    pub latent_dim: usize,
    /// Autoencoder downsampling factor (16).
    pub down_size: usize,
    /// Latent patch per token (1 for the released models).
    pub patch_size: usize,
    /// Image side in pixels (256).
    pub resolution: usize,
    /// Class tokens prepended to the sequence (64).
    pub cls_token_num: usize,
    /// Classes; index `num_classes` is the null class of CFG.
    pub num_classes: usize,
    /// Tokens sampled per AR step: 1 (sequential), 4 or 16 (next-patch, a square).
    pub parallel_num: usize,
    /// The autoencoder.
    pub vae: AeConfig,
}

/// Names of the built-in configurations (the released ImageNet 256x256 models).
pub const BUILTIN_CONFIGS: [&str; 6] = ["B-1x", "B-4x", "B-16x", "L-1x", "H-1x", "tiny"];

/// Most autoencoder levels a config may have (each but the last halves the image side).
const MAX_AE_LEVELS: usize = 12;

/// A built-in name as `builtin` matches it: trimmed, upper case, no `BitDance-` prefix, `_` as `-`.
fn builtin_key(name: &str) -> String {
    let key = name.trim().to_ascii_uppercase().replace('_', "-");
    key.strip_prefix("BITDANCE-").unwrap_or(&key).to_string()
}

/// The guidance scale the paper publishes for a released model (`B-4x` -> 3.9), for any name
/// `ModelConfig::builtin` accepts; `None` for other models.
pub fn published_cfg(name: &str) -> Option<f32> {
    Some(match builtin_key(name).as_str() {
        "B-1X" => 3.2,
        "B-4X" => 3.9,
        "B-16X" => 6.1,
        "L-1X" => 4.0,
        "H-1X" => 4.55,
        _ => return None,
    })
}

/// The built-in name whose config equals `c` (a file that stores the B-4x config is B-4x).
pub fn builtin_name(c: &ModelConfig) -> Option<&'static str> {
    BUILTIN_CONFIGS
        .into_iter()
        .find(|name| ModelConfig::builtin(name).is_ok_and(|b| b == *c))
}

/// The largest value a config key may take: far above every released model, small enough that
/// derived sizes cannot overflow (memory is checked separately, see `MemoryEstimate`).
fn max_value(key: &str) -> usize {
    match key {
        "dim" | "diff_dim" => 16384,
        "n_layer" | "n_head" | "diff_layers" | "diff_adanln_layers" => 512,
        "resolution" | "down_size" => 4096,
        "cls_token_num" | "vae.ch" => 4096,
        "num_classes" => 1 << 20,
        "parallel_num" => 256,
        "patch_size" | "vae.num_res_blocks" | "vae.ch_mult" => 64,
        // latent_dim and z_channels: at most 4 groups of 8 bits, checked below.
        _ => 1024,
    }
}

fn err(msg: String) -> Error {
    Error::Invalid(format!("model config: {msg}"))
}

impl ModelConfig {
    /// A released model by name (`B-1x`, `B-4x`, `B-16x`, `L-1x`, `H-1x`; case-insensitive,
    /// an optional `BitDance-` prefix accepted).
    pub fn builtin(name: &str) -> Result<Self> {
        let key = builtin_key(name);
        if key == "TINY" {
            let tiny = Self::tiny();
            tiny.validate()?;
            return Ok(tiny);
        }
        let (dim, n_layer, n_head, diff_layers, diff_adanln_layers, parallel_num) =
            match key.as_str() {
                "B-1X" => (768, 24, 12, 6, 2, 1),
                "B-4X" => (768, 24, 12, 6, 2, 4),
                "B-16X" => (768, 24, 12, 6, 2, 16),
                "L-1X" => (1024, 32, 16, 8, 2, 1),
                "H-1X" => (1280, 40, 20, 12, 3, 1),
                _ => {
                    return Err(err(format!(
                        "unknown model '{name}'; built-in names: {}",
                        BUILTIN_CONFIGS.join(", ")
                    )))
                }
            };
        let config = Self {
            dim,
            n_layer,
            n_head,
            diff_layers,
            diff_dim: dim,
            diff_adanln_layers,
            latent_dim: 32,
            down_size: 16,
            patch_size: 1,
            resolution: 256,
            cls_token_num: 64,
            num_classes: 1000,
            parallel_num,
            vae: AeConfig {
                ch: 256,
                ch_mult: vec![1, 1, 2, 2, 4],
                num_res_blocks: 4,
                z_channels: 32,
            },
        };
        config.validate()?;
        Ok(config)
    }

    /// `tiny`: the small next-patch model this project trains and ships as its default
    /// (32x32 images, 10 classes, 8x8 tokens of 32 bits, 4 tokens per step, ~1M parameters).
    fn tiny() -> Self {
        Self {
            dim: 128,
            n_layer: 4,
            n_head: 4,
            diff_layers: 2,
            diff_dim: 128,
            diff_adanln_layers: 1,
            latent_dim: 32,
            down_size: 4,
            patch_size: 1,
            resolution: 32,
            cls_token_num: 4,
            num_classes: 10,
            parallel_num: 4,
            vae: AeConfig {
                ch: 32,
                ch_mult: vec![1, 2, 2],
                num_res_blocks: 1,
                z_channels: 32,
            },
        }
    }

    /// Parses and validates a JSON config (`source` names it in errors).
    pub fn from_json(source: &str, json: &str) -> Result<Self> {
        let config: Self = serde_json::from_str(json).map_err(|e| err(format!("{source}: {e}")))?;
        config
            .validate()
            .map_err(|e| Error::Invalid(format!("{source}: {e}")))?;
        Ok(config)
    }

    /// The config as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks that every size divides as the architecture needs; the error names the keys.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("dim", self.dim),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("diff_layers", self.diff_layers),
            ("diff_dim", self.diff_dim),
            ("diff_adanln_layers", self.diff_adanln_layers),
            ("latent_dim", self.latent_dim),
            ("down_size", self.down_size),
            ("patch_size", self.patch_size),
            ("resolution", self.resolution),
            ("cls_token_num", self.cls_token_num),
            ("num_classes", self.num_classes),
            ("parallel_num", self.parallel_num),
            ("vae.ch", self.vae.ch),
            ("vae.num_res_blocks", self.vae.num_res_blocks),
            ("vae.z_channels", self.vae.z_channels),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(err(format!("{key} must be positive")));
        }
        // Bounded before any product is formed, so no size below can overflow, and a config
        // asking for a million layers is refused here instead of by the allocator.
        let largest = self.vae.ch_mult.iter().copied().max().unwrap_or(0);
        let bounded = positive.iter().copied().chain([("vae.ch_mult", largest)]);
        for (key, value) in bounded {
            let max = max_value(key);
            if value > max {
                return Err(err(format!(
                    "{key} {value} is above the largest supported value {max}"
                )));
            }
        }
        if !self.dim.is_multiple_of(self.n_head) {
            return Err(err(format!(
                "n_head {} does not divide dim {}",
                self.n_head, self.dim
            )));
        }
        let head_dim = self.head_dim();
        if !head_dim.is_multiple_of(4) || head_dim > crate::ops::MAX_HEAD_DIM {
            return Err(err(format!(
                "head dim dim/n_head = {head_dim} must be a multiple of 4 (2D RoPE) and at most {}",
                crate::ops::MAX_HEAD_DIM
            )));
        }
        if !self.diff_layers.is_multiple_of(self.diff_adanln_layers) {
            return Err(err(format!(
                "diff_adanln_layers {} does not divide diff_layers {}",
                self.diff_adanln_layers, self.diff_layers
            )));
        }
        if !self
            .resolution
            .is_multiple_of(self.down_size * self.patch_size)
        {
            return Err(err(format!(
                "down_size * patch_size = {} does not divide resolution {}",
                self.down_size * self.patch_size,
                self.resolution
            )));
        }
        let side = self.patch_side();
        if side * side != self.parallel_num {
            return Err(err(format!(
                "parallel_num {} is not a square (1, 4, 16, ...)",
                self.parallel_num
            )));
        }
        if !self.grid().is_multiple_of(side) {
            return Err(err(format!(
                "a {side}x{side} patch (parallel_num {}) does not tile the {g}x{g} token grid",
                self.parallel_num,
                g = self.grid()
            )));
        }
        if self.parallel_num > 1 && !self.diff_dim.is_multiple_of(64) {
            return Err(err(format!(
                "diff_dim {} must be a multiple of 64 (the parallel head's 64-dim heads)",
                self.diff_dim
            )));
        }
        if self.vae.z_channels != self.latent_dim {
            return Err(err(format!(
                "vae.z_channels {} differs from latent_dim {}",
                self.vae.z_channels, self.latent_dim
            )));
        }
        if !self.latent_dim.is_multiple_of(4) || self.latent_dim / 4 > 8 {
            return Err(err(format!(
                "latent_dim {} must split into 4 groups of at most 8 bits",
                self.latent_dim
            )));
        }
        if self.vae.ch_mult.is_empty() {
            return Err(err("vae.ch_mult must not be empty".into()));
        }
        let levels = self.vae.ch_mult.len();
        let downsampling = u32::try_from(levels - 1)
            .ok()
            .and_then(|shift| 1usize.checked_shl(shift))
            .filter(|_| levels <= MAX_AE_LEVELS)
            .ok_or_else(|| {
                err(format!(
                    "vae.ch_mult has {levels} levels; at most {MAX_AE_LEVELS} are supported"
                ))
            })?;
        if downsampling != self.down_size {
            return Err(err(format!(
                "vae.ch_mult has {levels} levels, downsampling by {downsampling}, but down_size is {}",
                self.down_size
            )));
        }
        if let Some(m) = self
            .vae
            .ch_mult
            .iter()
            .find(|&&m| m == 0 || !(self.vae.ch * m).is_multiple_of(32))
        {
            return Err(err(format!(
                "vae.ch * {m} = {} channels must be a positive multiple of 32 (GroupNorm(32))",
                self.vae.ch * m
            )));
        }
        Ok(())
    }

    /// dim / n_head.
    pub fn head_dim(&self) -> usize {
        self.dim / self.n_head
    }

    /// Tokens per image side: resolution / (down_size * patch_size).
    pub fn grid(&self) -> usize {
        self.resolution / (self.down_size * self.patch_size)
    }

    /// Image tokens per image: grid².
    pub fn image_tokens(&self) -> usize {
        self.grid() * self.grid()
    }

    /// Side of the patch sampled per AR step: sqrt(parallel_num).
    pub fn patch_side(&self) -> usize {
        (self.parallel_num as f64).sqrt().round() as usize
    }

    /// AR steps per image: image_tokens / parallel_num.
    pub fn ar_steps(&self) -> usize {
        self.image_tokens() / self.parallel_num
    }

    /// Transformer input length: class tokens, query tokens, all image tokens but the last patch.
    pub fn sequence_len(&self) -> usize {
        self.cls_token_num + self.image_tokens() - 1
    }

    /// Bits per token input: latent_dim * patch_size².
    pub fn token_dim(&self) -> usize {
        self.latent_dim * self.patch_size * self.patch_size
    }

    /// FFN hidden width: the multiple of 256 at or above int(2 * 4 * dim / 3).
    pub fn ffn_hidden(&self) -> usize {
        (2 * 4 * self.dim / 3).div_ceil(256) * 256
    }

    /// MLPConnector (`proj_in`) hidden width: int(1.5 * dim).
    pub fn connector_hidden(&self) -> usize {
        self.dim * 3 / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autoencoder_levels_are_bounded_before_any_shift() {
        for levels in [13, 64, 65, 200] {
            let mut c = ModelConfig::builtin("B-4x").unwrap();
            c.vae.ch_mult = vec![1; levels];
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(&format!("{levels} levels; at most 12")), "{e}");
        }
    }

    #[test]
    fn sizes_past_their_bound_are_refused_by_name_before_any_product() {
        type Bend = fn(&mut ModelConfig);
        let cases: [(&str, Bend); 5] = [
            ("n_layer 3000000", |c| c.n_layer = 3_000_000),
            ("dim 1000000000", |c| c.dim = 1_000_000_000),
            ("vae.ch 320000000", |c| c.vae.ch = 320_000_000),
            ("vae.ch_mult 18446744073709551615", |c| {
                c.vae.ch_mult[1] = usize::MAX
            }),
            ("patch_size 4611686018427387904", |c| c.patch_size = 1 << 62),
        ];
        for (named, bend) in cases {
            let mut c = ModelConfig::builtin("B-4x").unwrap();
            bend(&mut c);
            let json = c.to_json();
            let e = ModelConfig::from_json("big.json", &json)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("big.json") && e.contains(named) && e.contains("largest supported"),
                "{e}"
            );
        }
    }

    #[test]
    fn published_cfg_accepts_the_names_builtin_accepts() {
        for name in ["B-4x", "b-4x", " BitDance-B-4x", "bitdance_b_4x"] {
            assert_eq!(super::published_cfg(name), Some(3.9), "{name}");
            ModelConfig::builtin(name).unwrap();
        }
        assert_eq!(super::published_cfg("h-1x"), Some(4.55));
        assert_eq!(super::published_cfg("tiny"), None);
        assert_eq!(super::published_cfg("my-model.json"), None);
        let b16 = ModelConfig::builtin("b-16x").unwrap();
        assert_eq!(super::builtin_name(&b16), Some("B-16x"));
        let mut other = b16;
        other.num_classes = 10;
        assert_eq!(super::builtin_name(&other), None);
    }

    #[test]
    fn builtins_validate_and_derive_the_official_sizes() {
        for name in BUILTIN_CONFIGS {
            ModelConfig::builtin(name).unwrap().validate().unwrap();
        }
        let b4 = ModelConfig::builtin("BitDance-B-4x").unwrap();
        assert_eq!(
            (b4.head_dim(), b4.grid(), b4.ar_steps(), b4.sequence_len()),
            (64, 16, 64, 319)
        );
        assert_eq!((b4.ffn_hidden(), b4.connector_hidden()), (2048, 1152));
        assert_eq!(ModelConfig::builtin("h-1x").unwrap().diff_adanln_layers, 3);
        let json = b4.to_json();
        assert_eq!(ModelConfig::from_json("b4.json", &json).unwrap(), b4);
    }

    #[test]
    fn bad_configs_name_the_problem() {
        let e = ModelConfig::builtin("Z-2x").unwrap_err().to_string();
        assert!(
            e.contains("unknown model 'Z-2x'") && e.contains("B-4x"),
            "{e}"
        );
        let mut c = ModelConfig::builtin("B-4x").unwrap();
        c.n_head = 7;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("n_head 7 does not divide dim 768"));
        let mut c = ModelConfig::builtin("B-4x").unwrap();
        c.parallel_num = 8;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("parallel_num 8 is not a square"));
        let mut c = ModelConfig::builtin("B-1x").unwrap();
        c.vae.ch_mult = vec![1, 2];
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("down_size is 16"));
        let e = ModelConfig::from_json("tiny.json", r#"{"dim": 8}"#)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("tiny.json") && e.contains("missing field"),
            "{e}"
        );
        let e = ModelConfig::from_json(
            "x.json",
            &ModelConfig::builtin("B-1x")
                .unwrap()
                .to_json()
                .replace("\"dim\"", "\"dimm\""),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("dimm"), "{e}");
    }
}
