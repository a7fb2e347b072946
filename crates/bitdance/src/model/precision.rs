//! The precision inference holds the linear-layer weights in: f32, or 16 bits (half the
//! memory and weight traffic; the kernels widen each weight and sum in f32).

use crate::{Error, Gpu, Result};

/// Storage of the layer weights for generation (training is f32); `f32` / `f16` in recipes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Every weight in f32, as trained.
    F32,
    /// Linear and convolution weights and the class table in IEEE half precision; norms,
    /// biases and the other embeddings f32.
    #[default]
    F16,
}

impl Precision {
    /// `f32` or `f16`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        }
    }

    /// The precision named `name` (`f32` or `f16`, case-insensitive).
    pub fn parse(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "f32" => Ok(Precision::F32),
            "f16" => Ok(Precision::F16),
            _ => Err(Error::Invalid(format!(
                "unknown precision '{name}'; use f32 or f16"
            ))),
        }
    }

    /// This precision where `gpu` can run it, else f32: 16-bit weights need unpack2x16float
    /// in shaders, which every backend but GL grants.
    pub fn on(self, gpu: &Gpu) -> Self {
        if self == Precision::F16 && !gpu.unpacks_f16() {
            return Precision::F32;
        }
        self
    }

    /// Bytes per element of a linear weight.
    pub fn weight_bytes(self) -> f64 {
        match self {
            Precision::F32 => 4.0,
            Precision::F16 => 2.0,
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Precision {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}
