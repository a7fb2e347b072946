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
}

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
/// `shader! { /// doc  NAME = "name", ["file", ...], Params, variants, subgroups; }`, with
/// `, f16` before the `;` for a shader that reads 16-bit operands.
macro_rules! shader {
    ($(#[$doc:meta])* $ident:ident = $name:expr, [$($file:literal),+], $uniform:ty, $variants:expr, $subgroups:expr $(, $f16:ident)?;) => {
        $(#[$doc])*
        pub(crate) static $ident: $crate::gpu::Shader = $crate::gpu::Shader {
            name: $name,
            source: concat!($(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shaders/", $file, ".wgsl"))),+),
            uniform: <$uniform as $crate::gpu::Uniform>::WGSL,
            variants: $variants,
            subgroups: $subgroups,
            reads_f16: shader!(@reads $($f16)?),
        };
    };
    (@reads f16) => {
        true
    };
    (@reads) => {
        false
    };
}

/// The naga capabilities a shader is validated with: subgroups where it uses them, and
/// unpack2x16float (which wgpu grants on Vulkan, Metal, DX12 and WebGPU) where it reads f16.
#[cfg(test)]
pub(crate) fn naga_capabilities(shader: &Shader) -> naga::valid::Capabilities {
    let mut c = naga::valid::Capabilities::empty();
    if shader.subgroups {
        c |= naga::valid::Capabilities::SUBGROUP;
    }
    if shader.reads_f16 {
        c |= naga::valid::Capabilities::SHADER_FLOAT16_IN_FLOAT32;
    }
    c
}

#[cfg(test)]
mod tests {
    use crate::gpu::source_with_defines;

    #[test]
    fn every_shader_variant_passes_naga_validation() {
        for shader in crate::ops::all_shaders() {
            for defines in shader.variants.sets() {
                let src = source_with_defines(shader, &defines);
                let module = naga::front::wgsl::parse_str(&src).unwrap_or_else(|e| {
                    panic!("{} {defines:?}: {}", shader.name, e.emit_to_string(&src))
                });
                let capabilities = crate::gpu::naga_capabilities(shader);
                naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities)
                    .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
                    .subgroup_operations(naga::valid::SubgroupOperationSet::all())
                    .validate(&module)
                    .unwrap_or_else(|e| panic!("{} {defines:?}: {e:?}", shader.name));
            }
        }
    }
}
