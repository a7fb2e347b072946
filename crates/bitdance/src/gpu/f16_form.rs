//! How shaders read 16-bit (`DType::F16`) tensors: halves packed in u32 words, or WGSL `f16`
//! arrays where the device has `SHADER_F16`. The bytes are the same either way.

use crate::{Error, Result};

/// The environment variable that picks the form: `packed` or `arrays`.
pub const F16_FORM_VAR: &str = "BITDANCE_F16";

/// How shaders read 16-bit tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum F16Form {
    /// Pairs of halves in u32 words, widened with `unpack2x16float` (every backend but GL).
    Packed,
    /// WGSL `f16` arrays (`enable f16;`): devices with `SHADER_F16`.
    Arrays,
}

impl F16Form {
    /// The form a device uses unless told otherwise: arrays on GPUs with `SHADER_F16`; packed
    /// on CPU adapters, where it was measured faster (lavapipe: the B-4x head's step took
    /// 2.0-2.8 s packed against 3.2 s as arrays, whose loads llvmpipe widens half by half).
    pub fn default_for(has_shader_f16: bool, is_cpu: bool) -> Self {
        if has_shader_f16 && !is_cpu {
            Self::Arrays
        } else {
            Self::Packed
        }
    }

    /// Parses `packed` or `arrays` (case-insensitive), naming `source` in the error.
    pub fn parse(value: &str, source: &str) -> Result<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "packed" => Ok(Self::Packed),
            "arrays" => Ok(Self::Arrays),
            _ => Err(Error::Invalid(format!(
                "{source}={value}: expected packed or arrays"
            ))),
        }
    }
}

impl std::fmt::Display for F16Form {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Packed => "packed in u32",
            Self::Arrays => "f16 arrays",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::F16Form;

    #[test]
    fn forms_parse_and_default_by_device() {
        assert_eq!(F16Form::parse(" Arrays", "X").unwrap(), F16Form::Arrays);
        assert_eq!(F16Form::parse("packed", "X").unwrap(), F16Form::Packed);
        let e = F16Form::parse("half", "BITDANCE_F16").unwrap_err();
        assert!(e.to_string().contains("BITDANCE_F16=half"), "{e}");
        assert_eq!(F16Form::default_for(true, false), F16Form::Arrays);
        assert_eq!(F16Form::default_for(true, true), F16Form::Packed);
        assert_eq!(F16Form::default_for(false, false), F16Form::Packed);
    }
}
