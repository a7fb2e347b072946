//! A WGSL shader as the runtime builds it: its source (one or more files of `shaders/`), the
//! define sets it is built with, and whether it needs subgroup operations. Each kernel family
//! declares its shaders in its folder (`ops/<family>/mod.rs`) with `shader!`.

/// One WGSL file: its name and source (defines are prepended as `const`s at build time; `VEC`
/// also declares the element types `V`, `VU` and `hsum`, see `gpu::source_with_defines`).
#[derive(Debug)]
pub struct Shader {
    /// File stem, e.g. "matmul".
    pub name: &'static str,
    /// WGSL source text.
    pub source: &'static str,
    /// The WGSL declaration of its uniform (`Uniform::WGSL`), prepended to the source.
    pub uniform: &'static str,
    /// Define sets the runtime may use, each validated by naga in a unit test.
    pub variants: Variants,
    /// Uses subgroup operations: only built on adapters that have them (never on the web).
    pub subgroups: bool,
    /// Reads 16-bit (`DType::F16`) operands; the dispatch refuses f16 tensors for any other.
    pub reads_f16: bool,
    /// For a shader that reads 16-bit operands: its source with those operands read as WGSL
    /// `f16` arrays (built with `enable f16;` where the device has `SHADER_F16` and the form
    /// is `F16Form::Arrays`); `source` reads them as halves packed in u32 words.
    pub f16_arrays_source: Option<&'static str>,
}

impl Shader {
    /// Whether `defines` build the f16-array form (`F16_ARRAYS` set, and the shader has one).
    pub fn builds_f16_arrays(&self, defines: &[(&str, u32)]) -> bool {
        self.f16_arrays_source.is_some() && defines.iter().any(|(k, v)| *k == F16_ARRAYS && *v != 0)
    }

    /// The source built under `defines`: the f16-array form where they hold `F16_ARRAYS`.
    pub fn source_for(&self, defines: &[(&str, u32)]) -> &'static str {
        match self.f16_arrays_source {
            Some(arrays) if self.builds_f16_arrays(defines) => arrays,
            _ => self.source,
        }
    }

    /// Every define set the runtime may build: the listed variants, and each again with
    /// `F16_ARRAYS` for a shader with an f16-array form.
    pub fn define_sets(&self) -> Vec<Vec<(&'static str, u32)>> {
        let mut sets = self.variants.sets();
        if self.f16_arrays_source.is_some() {
            let arrays: Vec<_> = sets
                .iter()
                .map(|set| [set.as_slice(), &[(F16_ARRAYS, 1)]].concat())
                .collect();
            sets.extend(arrays);
        }
        sets
    }
}

/// The define that builds a shader's `f16_arrays_source` (value 1) instead of its `source`.
pub const F16_ARRAYS: &str = "F16_ARRAYS";

/// The define sets of a shader.
#[derive(Debug)]
pub enum Variants {
    /// Listed where the shader's launcher lives.
    Listed(&'static [&'static [(&'static str, u32)]]),
    /// Derived from another table (the matmul configurations).
    Derived(fn() -> Vec<Vec<(&'static str, u32)>>),
}

impl Variants {
    /// Every define set.
    pub fn sets(&self) -> Vec<Vec<(&'static str, u32)>> {
        match self {
            Self::Listed(list) => list.iter().map(|set| set.to_vec()).collect(),
            Self::Derived(derive) => derive(),
        }
    }
}

/// Declares `static NAME: Shader` from files of the top-level `shaders/` folder, concatenated
/// in order, reading the uniform `Params` (its WGSL struct is generated from the Rust one):
/// `shader! { /// doc  NAME = "name", ["file", ...], Params, variants, subgroups; }`; a shader
/// that reads 16-bit operands adds `, f16 ["file", ...]` before the `;`: its files with those
/// operands read as WGSL `f16` arrays.
macro_rules! shader {
    ($(#[$doc:meta])* $ident:ident = $name:expr, [$($file:literal),+], $uniform:ty, $variants:expr, $subgroups:expr $(, f16 [$($arrays:literal),+])?;) => {
        $(#[$doc])*
        pub(crate) static $ident: $crate::gpu::Shader = $crate::gpu::Shader {
            name: $name,
            source: shader!(@files $($file),+),
            uniform: <$uniform as $crate::gpu::Uniform>::WGSL,
            variants: $variants,
            subgroups: $subgroups,
            reads_f16: shader!(@some $([$($arrays),+])?).is_some(),
            f16_arrays_source: shader!(@some $([$($arrays),+])?),
        };
    };
    (@files $($file:literal),+) => {
        concat!($(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shaders/", $file, ".wgsl"))),+)
    };
    (@some [$($file:literal),+]) => {
        Some(shader!(@files $($file),+))
    };
    (@some) => {
        None::<&'static str>
    };
}

/// The naga capabilities a shader is validated with: subgroups where it uses them, and where
/// it reads f16 unpack2x16float (which wgpu grants on Vulkan, Metal, DX12 and WebGPU) and, for
/// its f16-array form, the `f16` type (`SHADER_F16`).
#[cfg(test)]
pub(crate) fn naga_capabilities(shader: &Shader) -> naga::valid::Capabilities {
    let mut c = naga::valid::Capabilities::empty();
    if shader.subgroups {
        c |= naga::valid::Capabilities::SUBGROUP;
    }
    if shader.reads_f16 {
        c |= naga::valid::Capabilities::SHADER_FLOAT16_IN_FLOAT32;
        c |= naga::valid::Capabilities::SHADER_FLOAT16;
    }
    c
}

#[cfg(test)]
mod tests {
    use super::Shader;
    use crate::gpu::source_with_defines;
    use naga::valid::{ModuleInfo, ShaderStages, SubgroupOperationSet, ValidationFlags, Validator};
    use naga::Module;

    /// Every shader under every define set it is built with, parsed and validated by naga.
    fn every_validated_variant() -> Vec<(String, &'static Shader, Module, ModuleInfo)> {
        let mut out = Vec::new();
        for shader in crate::ops::all_shaders() {
            for defines in shader.define_sets() {
                let name = format!("{} {defines:?}", shader.name);
                let src = source_with_defines(shader, &defines);
                let module = naga::front::wgsl::parse_str(&src)
                    .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&src)));
                let info = Validator::new(
                    ValidationFlags::all(),
                    crate::gpu::naga_capabilities(shader),
                )
                .subgroup_stages(ShaderStages::COMPUTE)
                .subgroup_operations(SubgroupOperationSet::all())
                .validate(&module)
                .unwrap_or_else(|e| panic!("{name}: {e:?}"));
                out.push((name, shader, module, info));
            }
        }
        out
    }

    #[test]
    fn every_shader_variant_passes_naga_validation() {
        assert!(every_validated_variant().len() > 40);
    }

    /// Runs one backend's writer, turning its error or its panic (naga's writers panic on some
    /// internal faults) into a message.
    fn translate<E: std::fmt::Display>(
        failures: &mut Vec<String>,
        what: String,
        write: impl FnOnce() -> Result<(), E>,
    ) {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(write)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(format!("{what}: {e}")),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{what}: the writer panicked: {message}"));
            }
        }
    }

    /// What validation does not catch: a backend that cannot translate a valid module (naga's
    /// SPIR-V writer once panicked on a valid attention kernel). Every variant goes through the
    /// writers of wgpu's native backends: SPIR-V (Vulkan), MSL (Metal), HLSL (DX12) and, for
    /// shaders without subgroups, GLSL ES 3.1 (GL), each entry point on its own where the
    /// backend compiles them so. f16-array builds need shader model 6.2 on DX12 and are never
    /// built on GL (no `SHADER_F16` there).
    #[test]
    fn every_shader_variant_translates_for_every_native_backend() {
        use naga::back::{glsl, hlsl, msl, spv};
        let mut failures = Vec::new();
        for (name, shader, module, info) in every_validated_variant() {
            let (m, i) = (&module, &info);
            let arrays = name.contains(super::F16_ARRAYS);
            translate(&mut failures, format!("{name}: SPIR-V"), || {
                let options = spv::Options {
                    lang_version: (1, 3),
                    ..Default::default()
                };
                spv::write_vec(m, i, &options, None).map(drop)
            });
            translate(&mut failures, format!("{name}: MSL"), || {
                let options = msl::Options {
                    lang_version: (2, 4),
                    ..Default::default()
                };
                msl::write_string(m, i, &options, &Default::default()).map(drop)
            });
            translate(&mut failures, format!("{name}: HLSL"), || {
                let options = hlsl::Options {
                    shader_model: match arrays {
                        true => hlsl::ShaderModel::V6_2,
                        false => hlsl::ShaderModel::V6_0,
                    },
                    ..Default::default()
                };
                let mut text = String::new();
                let pipeline = Default::default();
                hlsl::Writer::new(&mut text, &options, &pipeline)
                    .write(m, i, None)
                    .map(drop)
            });
            if shader.subgroups || arrays {
                continue;
            }
            for entry in &module.entry_points {
                translate(
                    &mut failures,
                    format!("{name} {}: GLSL", entry.name),
                    || {
                        let options = glsl::Options {
                            version: glsl::Version::Embedded {
                                version: 310,
                                is_webgl: false,
                            },
                            ..Default::default()
                        };
                        let pipeline = glsl::PipelineOptions {
                            shader_stage: naga::ShaderStage::Compute,
                            entry_point: entry.name.clone(),
                            multiview: None,
                        };
                        let mut text = String::new();
                        glsl::Writer::new(&mut text, m, i, &options, &pipeline, Default::default())
                            .and_then(|mut w| w.write())
                            .map(drop)
                    },
                );
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
