//! LoRA fine-tuning of the AR model: which linear layers get low-rank adapters, their
//! parameters (`{layer}.lora_A.weight` [r, K] and `{layer}.lora_B.weight` [N, r], PEFT's
//! names), their initialisation, their place on the tape, and their merge into the official
//! weights (W + alpha / r · B A).

use crate::autograd::{Adapter, Tape};
use crate::io::{save_safetensors, WeightFile};
use crate::model::{ar_parameters, ModelConfig, ParamSpec, ParamStore, ParamVars};
use crate::rng::Rng;
use crate::{ops, Error, Gpu, Result, Tensor};

/// Which linear layers of the AR model get adapters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LoraTargets {
    /// The transformer's attention projections (`attention.wqkv`, `attention.wo`).
    pub attention: bool,
    /// The transformer's feed-forward layers (`feed_forward.w1`, `feed_forward.w2`).
    pub mlp: bool,
    /// The diffusion head's blocks (`attn.wqkv`, `attn.wo`, `w1`, `w2`).
    pub head: bool,
}

impl LoraTargets {
    /// Parses a comma-separated list of `attention`, `mlp`, `head` (or `all`).
    pub fn parse(text: &str) -> Result<Self> {
        let mut t = Self {
            attention: false,
            mlp: false,
            head: false,
        };
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "attention" => t.attention = true,
                "mlp" => t.mlp = true,
                "head" => t.head = true,
                "all" => t = Self::all(),
                other => {
                    return Err(Error::Invalid(format!(
                        "LoRA target '{other}': the targets are attention, mlp, head or all"
                    )))
                }
            }
        }
        if !(t.attention || t.mlp || t.head) {
            return Err(Error::Invalid(
                "LoRA targets: name at least one of attention, mlp, head".into(),
            ));
        }
        Ok(t)
    }

    /// Every target.
    pub fn all() -> Self {
        Self {
            attention: true,
            mlp: true,
            head: true,
        }
    }

    /// The targets as `parse` reads them ("attention,mlp").
    pub fn describe(&self) -> String {
        let names = [
            (self.attention, "attention"),
            (self.mlp, "mlp"),
            (self.head, "head"),
        ];
        let on: Vec<&str> = names
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| *n)
            .collect();
        on.join(",")
    }

    /// Whether the weight `name` is one of the targeted linear layers.
    fn covers(&self, name: &str) -> bool {
        let trunk = name.starts_with("layers.");
        let head = name.starts_with("head.net.res_blocks.");
        let any = |ends: &[&str]| ends.iter().any(|e| name.ends_with(e));
        (self.attention && trunk && any(&[".attention.wqkv.weight", ".attention.wo.weight"]))
            || (self.mlp && trunk && any(&[".feed_forward.w1.weight", ".feed_forward.w2.weight"]))
            || (self.head
                && head
                && any(&[
                    ".attn.wqkv.weight",
                    ".attn.wo.weight",
                    ".w1.weight",
                    ".w2.weight",
                ]))
    }
}

/// Low-rank adapters of rank `rank` on the `targets`, scaled by `alpha / rank`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LoraSpec {
    /// r: the adapters' inner width.
    pub rank: usize,
    /// alpha: the adapters' product is scaled by alpha / r.
    pub alpha: f32,
    /// Which linear layers get adapters.
    pub targets: LoraTargets,
}

impl Default for LoraSpec {
    /// Rank 16, alpha 16, the transformer's attention and feed-forward layers.
    fn default() -> Self {
        Self {
            rank: 16,
            alpha: 16.0,
            targets: LoraTargets {
                attention: true,
                mlp: true,
                head: false,
            },
        }
    }
}

/// One adapted layer: the frozen weight [N, K] and its adapter's two parameters.
pub struct AdaptedLayer {
    /// The official weight name, e.g. `layers.0.attention.wqkv.weight`.
    pub weight: String,
    /// [N, K].
    pub shape: [usize; 2],
    /// `{layer}.lora_A.weight` [r, K].
    pub a: String,
    /// `{layer}.lora_B.weight` [N, r].
    pub b: String,
}

impl LoraSpec {
    /// Refuses a rank of 0 or one above a targeted layer's width, and a non-finite or
    /// non-positive alpha.
    pub fn validate(&self, c: &ModelConfig) -> Result<()> {
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(Error::Invalid(format!(
                "LoRA alpha {}: must be a positive number",
                self.alpha
            )));
        }
        let narrowest = self
            .layers(c)
            .iter()
            .map(|l| l.shape[0].min(l.shape[1]))
            .min()
            .unwrap_or(0);
        if self.rank == 0 || self.rank > narrowest {
            return Err(Error::Invalid(format!(
                "LoRA rank {}: must be in 1..={narrowest} (the narrowest adapted layer)",
                self.rank
            )));
        }
        Ok(())
    }

    /// alpha / r.
    pub fn scale(&self) -> f32 {
        self.alpha / self.rank as f32
    }

    /// The layers of `c` that get adapters, in parameter order.
    pub fn layers(&self, c: &ModelConfig) -> Vec<AdaptedLayer> {
        ar_parameters(c)
            .into_iter()
            .filter(|s| s.shape.len() == 2 && self.targets.covers(&s.name))
            .map(|s| {
                let layer = s.name.trim_end_matches(".weight");
                AdaptedLayer {
                    a: format!("{layer}.lora_A.weight"),
                    b: format!("{layer}.lora_B.weight"),
                    shape: [s.shape[0], s.shape[1]],
                    weight: s.name,
                }
            })
            .collect()
    }

    /// The adapters' parameters: A [r, K] and B [N, r] of every adapted layer.
    pub fn parameters(&self, c: &ModelConfig) -> Vec<ParamSpec> {
        self.layers(c)
            .into_iter()
            .flat_map(|l| {
                let [n, k] = l.shape;
                [
                    ParamSpec {
                        name: l.a,
                        shape: vec![self.rank, k],
                    },
                    ParamSpec {
                        name: l.b,
                        shape: vec![n, self.rank],
                    },
                ]
            })
            .collect()
    }

    /// New adapters, as PEFT starts them: A uniform in ±1/sqrt(K) (Kaiming with a = sqrt(5)),
    /// B zeros, so the adapted model starts as the base model. Drawn from `seed`.
    pub fn initial_adapters(&self, gpu: &Gpu, c: &ModelConfig, seed: u64) -> Result<ParamStore> {
        let mut rng = Rng::new(seed ^ 0x4c6f_5241);
        let mut store = ParamStore::new();
        for l in self.layers(c) {
            let [n, k] = l.shape;
            let bound = 1.0 / (k as f32).sqrt();
            let a: Vec<f32> = (0..self.rank * k)
                .map(|_| (2.0 * rng.uniform() as f32 - 1.0) * bound)
                .collect();
            store.insert(&l.a, Tensor::from_f32(gpu, &[self.rank, k], &a)?);
            store.insert(&l.b, Tensor::zeros(gpu, &[n, self.rank])?);
        }
        Ok(store)
    }

    /// Gives each adapted weight on `tape` its adapter (both read through `vars`).
    pub fn attach(&self, tape: &Tape, vars: &ParamVars, c: &ModelConfig) -> Result<()> {
        for l in self.layers(c) {
            let adapter = Adapter {
                a: vars.get(&l.a)?,
                b: vars.get(&l.b)?,
                scale: self.scale(),
            };
            tape.adapt(vars.get(&l.weight)?, adapter);
        }
        Ok(())
    }

    /// `store` with each adapted weight replaced by W + alpha / r · B A and the adapters
    /// removed: a model under the official names alone.
    pub fn merged(&self, store: &ParamStore, c: &ModelConfig) -> Result<ParamStore> {
        let mut merged = ParamStore::new();
        let adapters: Vec<AdaptedLayer> = self.layers(c);
        let is_adapter = |name: &str| adapters.iter().any(|l| l.a == name || l.b == name);
        for (name, t) in store.iter() {
            let name = name.as_ref();
            if is_adapter(name) {
                continue;
            }
            match adapters.iter().find(|l| l.weight == name) {
                Some(l) => {
                    let product =
                        ops::matmul(store.get(&l.b)?, store.get(&l.a)?, None, false, false)?;
                    // A 16-bit frozen base is widened: the merged weight is f32.
                    let w = ops::to_f32(t)?;
                    merged.insert(name, ops::axpby(1.0, &w, self.scale(), &product)?);
                }
                None => merged.insert(name, t.clone()),
            }
        }
        Ok(merged)
    }
}

/// Metadata key of a LoRA run's spec (JSON) in its adapters file.
pub const LORA_KEY: &str = "bitdance.lora";

/// Metadata key of the SHA-256 (hex) of the model file a fine-tuning run started from.
pub const BASE_KEY: &str = "bitdance.base_sha256";

/// The official model `base` with the adapters of `adapters` (a LoRA run's adapters file:
/// its A and B, its class table and its config in the metadata) merged in, as safetensors
/// bytes (f32) under the official names, with the run's config and class names. `base_sha256`
/// is the SHA-256 of `base`'s bytes, refused unless it is the one the adapters were trained on.
/// Holds the merged model on the host: for the CLI, not for the browser.
pub fn merge_adapter_file(
    base: &WeightFile<'_>,
    base_sha256: &str,
    adapters: &WeightFile<'_>,
) -> Result<Vec<u8>> {
    let meta = adapters.metadata();
    let spec: LoraSpec = meta
        .get(LORA_KEY)
        .and_then(|json| serde_json::from_str(json).ok())
        .ok_or_else(|| {
            Error::Invalid(format!(
                "{}: not a LoRA adapters file (no '{LORA_KEY}' metadata)",
                adapters.label()
            ))
        })?;
    if let Some(want) = meta.get(BASE_KEY) {
        if want != base_sha256 {
            return Err(Error::Invalid(format!(
                "{}: the adapters were trained on the model of SHA-256 {want}, not on {} \
                 ({base_sha256})",
                adapters.label(),
                base.label()
            )));
        }
    }
    let c = crate::model::stored_config(adapters)?.ok_or_else(|| {
        Error::Invalid(format!(
            "{}: no config in the adapters file",
            adapters.label()
        ))
    })?;
    spec.validate(&c)
        .map_err(|e| Error::Invalid(format!("{}: {e}", adapters.label())))?;
    let all = |f: &WeightFile<'_>, name: &str| -> Result<Vec<f32>> {
        let rows = f.shape(name)?.first().copied().unwrap_or(1);
        f.rows_f32(name, 0..rows)
    };
    let layers = spec.layers(&c);
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    for name in base.names() {
        let from_adapters = name == super::CLASS_TABLE;
        let source = if from_adapters { adapters } else { base };
        let shape = source.shape(&name)?.to_vec();
        let mut values = all(source, &name)?;
        if let Some(l) = layers.iter().find(|l| l.weight == name) {
            let [n, k] = l.shape;
            if shape != [n, k] {
                return Err(Error::Invalid(format!(
                    "{}: '{name}' is {shape:?}; the adapters were trained for [{n}, {k}]",
                    base.label()
                )));
            }
            let (a, b) = (all(adapters, &l.a)?, all(adapters, &l.b)?);
            if a.len() != spec.rank * k || b.len() != n * spec.rank {
                return Err(Error::Invalid(format!(
                    "{}: '{}' or '{}' is not of rank {}",
                    adapters.label(),
                    l.a,
                    l.b,
                    spec.rank
                )));
            }
            let s = spec.scale();
            for (i, row) in values.chunks_mut(k).enumerate() {
                for (j, w) in row.iter_mut().enumerate() {
                    let dot: f32 = (0..spec.rank)
                        .map(|q| b[i * spec.rank + q] * a[q * k + j])
                        .sum();
                    *w += s * dot;
                }
            }
        }
        tensors.push((name, shape, values));
    }
    let mut metadata = meta;
    metadata.remove(LORA_KEY);
    let views: Vec<(&str, &[usize], &[f32])> = tensors
        .iter()
        .map(|(n, s, d)| (n.as_str(), s.as_slice(), d.as_slice()))
        .collect();
    save_safetensors(&views, Some(&metadata))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_pick_their_layers_by_official_name() {
        let c = ModelConfig::builtin("tiny").unwrap();
        let names = |targets: &str| -> Vec<String> {
            let spec = LoraSpec {
                targets: LoraTargets::parse(targets).unwrap(),
                ..LoraSpec::default()
            };
            spec.layers(&c).into_iter().map(|l| l.weight).collect()
        };
        let attention = names("attention");
        assert_eq!(attention.len(), 2 * c.n_layer);
        assert!(attention.contains(&"layers.3.attention.wo.weight".to_string()));
        assert_eq!(names("mlp").len(), 2 * c.n_layer);
        let head = names("head");
        assert_eq!(head.len(), 4 * c.diff_layers, "{head:?}");
        assert!(head.iter().all(|n| n.starts_with("head.net.res_blocks.")));
        assert_eq!(names("all").len(), attention.len() * 2 + head.len());
        for bad in ["", "attn", "mlp,everything"] {
            assert!(LoraTargets::parse(bad).is_err(), "{bad}");
        }
        let spec = LoraSpec::default();
        let params = spec.parameters(&c);
        assert_eq!(params[0].name, "layers.0.attention.wqkv.lora_A.weight");
        assert_eq!(params[0].shape, [16, c.dim]);
        assert_eq!(params[1].shape, [3 * c.dim, 16]);
        assert!(LoraSpec { rank: 0, ..spec }.validate(&c).is_err());
        assert!(LoraSpec {
            alpha: f32::NAN,
            ..spec
        }
        .validate(&c)
        .is_err());
        assert!(spec.validate(&c).is_ok());
    }

    #[test]
    fn a_forged_adapters_file_is_refused_before_anything_is_merged() {
        let c = ModelConfig::builtin("tiny").unwrap();
        let file = |spec: Option<LoraSpec>, base: Option<&str>| {
            let mut meta = std::collections::BTreeMap::new();
            meta.insert(crate::train::CONFIG_KEY.to_string(), c.to_json());
            if let Some(spec) = spec {
                meta.insert(LORA_KEY.to_string(), serde_json::to_string(&spec).unwrap());
            }
            if let Some(sha) = base {
                meta.insert(BASE_KEY.to_string(), sha.to_string());
            }
            save_safetensors(&[], Some(&meta)).unwrap()
        };
        let base_bytes = file(None, None);
        let base = WeightFile::parse_named("base", &base_bytes).unwrap();
        let merge = |bytes: &[u8]| {
            let adapters = WeightFile::parse_named("adapters", bytes).unwrap();
            merge_adapter_file(&base, "aa", &adapters)
                .unwrap_err()
                .to_string()
        };
        // No spec, a rank of 0 (alpha / 0 would make every merged weight NaN), another base.
        assert!(merge(&file(None, None)).contains("not a LoRA adapters file"));
        let zero = LoraSpec {
            rank: 0,
            ..LoraSpec::default()
        };
        assert!(merge(&file(Some(zero), None)).contains("LoRA rank 0"));
        let other = file(Some(LoraSpec::default()), Some("bb"));
        assert!(merge(&other).contains("trained on the model of SHA-256 bb"));
    }
}
