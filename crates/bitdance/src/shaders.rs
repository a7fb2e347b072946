//! The WGSL sources, one file per kernel family, embedded at compile time.

/// One WGSL file: its name and source (defines are prepended as `const`s at build time; `VEC`
/// also declares the element types `V`, `VU` and `hsum`, see `gpu::source_with_defines`).
#[derive(Debug)]
pub struct Shader {
    /// File stem, e.g. "matmul".
    pub name: &'static str,
    /// WGSL source text.
    pub source: &'static str,
    /// Define sets the runtime may use, each validated by naga in a unit test.
    pub variants: Variants,
    /// Uses subgroup operations: only built on adapters that have them (never on the web).
    pub subgroups: bool,
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

macro_rules! shader {
    ($ident:ident, $name:literal, $variants:expr) => {
        #[doc = concat!("`shaders/", $name, ".wgsl`.")]
        pub static $ident: Shader = Shader {
            name: $name,
            source: include_str!(concat!("../../../shaders/", $name, ".wgsl")),
            variants: Variants::Listed($variants),
            subgroups: false,
        };
    };
}

shader!(ELEMENTWISE, "elementwise", crate::ops::VEC_VARIANTS);
/// `shaders/matmul.wgsl` followed by the generated `shaders/matmul_sg.wgsl` (the
/// subgroup-broadcast matmul reuses its parameters, bindings and helpers).
pub static MATMUL_SG: Shader = Shader {
    name: "matmul_sg",
    source: concat!(
        include_str!("../../../shaders/matmul.wgsl"),
        include_str!("../../../shaders/matmul_sg.wgsl")
    ),
    variants: Variants::Derived(|| crate::ops::matmul_variants(true)),
    subgroups: true,
};
/// `shaders/matmul.wgsl` followed by the generated `shaders/matmul_rb.wgsl`.
pub static MATMUL: Shader = Shader {
    name: "matmul",
    source: concat!(
        include_str!("../../../shaders/matmul.wgsl"),
        include_str!("../../../shaders/matmul_rb.wgsl")
    ),
    variants: Variants::Derived(|| crate::ops::matmul_variants(false)),
    subgroups: false,
};
/// `shaders/attention.wgsl` followed by `shaders/attention_sg.wgsl` (subgroup forms of the
/// attention kernels for CPU adapters).
pub static ATTENTION_SG: Shader = Shader {
    name: "attention_sg",
    source: concat!(
        include_str!("../../../shaders/attention.wgsl"),
        include_str!("../../../shaders/attention_sg.wgsl")
    ),
    variants: Variants::Listed(crate::ops::ATTENTION_SG_VARIANTS),
    subgroups: true,
};
/// `shaders/conv.wgsl` followed by the generated `shaders/conv_rb.wgsl` (the CPU form of the
/// convolution without subgroups).
pub static CONV: Shader = Shader {
    name: "conv",
    source: concat!(
        include_str!("../../../shaders/conv.wgsl"),
        include_str!("../../../shaders/conv_rb.wgsl")
    ),
    variants: Variants::Listed(crate::ops::CONV_VARIANTS),
    subgroups: false,
};
/// `shaders/conv.wgsl` followed by the generated `shaders/conv_sg.wgsl` (the convolution with
/// subgroup-broadcast weights, CPU adapters with 8-lane subgroups).
pub static CONV_SG: Shader = Shader {
    name: "conv_sg",
    source: concat!(
        include_str!("../../../shaders/conv.wgsl"),
        include_str!("../../../shaders/conv_sg.wgsl")
    ),
    variants: Variants::Listed(crate::ops::CONV_SG_VARIANTS),
    subgroups: true,
};
/// `shaders/norm.wgsl` with its row reductions through workgroup memory.
pub static NORM: Shader = Shader {
    name: "norm",
    source: concat!(
        include_str!("../../../shaders/norm.wgsl"),
        include_str!("../../../shaders/norm_reduce.wgsl")
    ),
    variants: Variants::Listed(crate::ops::NORM_VARIANTS),
    subgroups: false,
};
/// `shaders/norm.wgsl` with its row reductions as subgroup operations (CPU adapters).
pub static NORM_SG: Shader = Shader {
    name: "norm_sg",
    source: concat!(
        include_str!("../../../shaders/norm.wgsl"),
        include_str!("../../../shaders/norm_reduce_sg.wgsl")
    ),
    variants: Variants::Listed(crate::ops::NORM_SG_VARIANTS),
    subgroups: true,
};
shader!(ROPE, "rope", crate::ops::ROPE_VARIANTS);
shader!(ATTENTION, "attention", crate::ops::ATTENTION_VARIANTS);
shader!(LAYOUT, "layout", crate::ops::VEC_VARIANTS);
shader!(DATA, "data", crate::ops::DATA_VARIANTS);
shader!(LOSS, "loss", crate::ops::LOSS_VARIANTS);
shader!(OPTIM, "optim", crate::ops::VEC_VARIANTS);
shader!(FLOW, "flow", crate::ops::FLOW_VARIANTS);
shader!(CONV_GRAD, "conv_grad", crate::ops::CONV_GRAD_VARIANTS);

/// Every shader, for validation and the pipeline warm-up.
pub fn all() -> Vec<&'static Shader> {
    vec![
        &ELEMENTWISE,
        &MATMUL,
        &MATMUL_SG,
        &NORM,
        &NORM_SG,
        &ROPE,
        &ATTENTION,
        &ATTENTION_SG,
        &LAYOUT,
        &DATA,
        &LOSS,
        &OPTIM,
        &FLOW,
        &CONV,
        &CONV_SG,
        &CONV_GRAD,
    ]
}

#[cfg(test)]
mod tests {
    use crate::gpu::source_with_defines;

    #[test]
    fn every_shader_variant_passes_naga_validation() {
        for shader in super::all() {
            for defines in shader.variants.sets() {
                let src = source_with_defines(shader, &defines);
                let module = naga::front::wgsl::parse_str(&src).unwrap_or_else(|e| {
                    panic!("{} {defines:?}: {}", shader.name, e.emit_to_string(&src))
                });
                let capabilities = if shader.subgroups {
                    naga::valid::Capabilities::SUBGROUP
                } else {
                    naga::valid::Capabilities::empty()
                };
                naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities)
                    .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
                    .subgroup_operations(naga::valid::SubgroupOperationSet::all())
                    .validate(&module)
                    .unwrap_or_else(|e| panic!("{} {defines:?}: {e:?}", shader.name));
            }
        }
    }
}
