//! The binding contract: every kernel's launcher declaration (binding numbers and access) must
//! match what its WGSL entry point really uses, under every define set its shader is built
//! with, so a mismatch fails this test instead of a pipeline on some GPU.

use naga::valid::{GlobalUse, ShaderStages, SubgroupOperationSet, ValidationFlags};
use naga::{AddressSpace, StorageAccess, TypeInner};

use super::norm::subgroup_build;
use crate::gpu::Shader;
use crate::gpu::{source_with_defines, Access, Kernel};

/// Every declared kernel with the shaders it is dispatched with (the row kernels of the norm
/// family also run on their subgroup builds).
fn declared() -> Vec<(Kernel, Vec<&'static Shader>)> {
    let lists = super::declared_kernels();
    lists
        .iter()
        .flat_map(|list| list.iter())
        .map(|k| {
            let mut shaders = vec![k.shader];
            shaders.extend(subgroup_build(k.shader));
            (*k, shaders)
        })
        .collect()
}

/// The mismatches between `kernel`'s declaration and its entry point in `shader` built with
/// `defines` (empty when they agree).
fn mismatches(kernel: &Kernel, shader: &Shader, defines: &[(&str, u32)]) -> Vec<String> {
    let src = source_with_defines(shader, defines);
    let module = naga::front::wgsl::parse_str(&src).expect("validated by the shader test");
    let capabilities = crate::gpu::naga_capabilities(shader);
    let info = naga::valid::Validator::new(ValidationFlags::all(), capabilities)
        .subgroup_stages(ShaderStages::COMPUTE)
        .subgroup_operations(SubgroupOperationSet::all())
        .validate(&module)
        .expect("validated by the shader test");
    let Some(index) = module
        .entry_points
        .iter()
        .position(|e| e.name == kernel.entry)
    else {
        return vec![format!("no entry point '{}'", kernel.entry)];
    };
    let uses = info.get_entry_point(index);
    let mut problems = Vec::new();
    let mut used = vec![false; kernel.bindings.len()];
    for (handle, var) in module.global_variables.iter() {
        let (Some(binding), false) = (&var.binding, uses[handle].is_empty()) else {
            continue;
        };
        let name = var.name.as_deref().unwrap_or("?");
        if binding.group != 0 {
            problems.push(format!("'{name}' is in group {}", binding.group));
            continue;
        }
        match var.space {
            AddressSpace::Uniform if binding.binding == 0 => {
                problems.extend(uniform_mismatch(kernel, &module.types[var.ty].inner));
            }
            AddressSpace::Storage { access } if binding.binding >= 1 => {
                let slot = binding.binding as usize - 1;
                let wgsl = if access.contains(StorageAccess::STORE) {
                    Access::ReadWrite
                } else {
                    Access::Read
                };
                match kernel.bindings.get(slot) {
                    Some(&declared) if declared == wgsl => used[slot] = true,
                    declared => problems.push(format!(
                        "binding {} '{name}': the WGSL declares {wgsl:?}, the launcher {declared:?}",
                        binding.binding
                    )),
                }
                if uses[handle].contains(GlobalUse::WRITE) && wgsl == Access::Read {
                    problems.push(format!("'{name}' is written but read-only"));
                }
            }
            ref space => problems.push(format!(
                "binding {} '{name}' in {space:?}: the uniform is binding 0, storage 1..",
                binding.binding
            )),
        }
    }
    for (slot, access) in kernel.bindings.iter().enumerate() {
        if *access != Access::Skip && !used[slot] {
            problems.push(format!(
                "binding {} is declared {access:?} but the entry point does not use it",
                slot + 1
            ));
        }
    }
    problems
}

/// How the launcher's uniform struct differs from the WGSL one (field names, byte offsets and
/// size), if it does.
fn uniform_mismatch(kernel: &Kernel, wgsl: &TypeInner) -> Option<String> {
    let TypeInner::Struct { members, span } = wgsl else {
        return Some("the uniform is not a struct".into());
    };
    let fields: Vec<(&str, usize)> = members
        .iter()
        .map(|m| (m.name.as_deref().unwrap_or("?"), m.offset as usize))
        .collect();
    let declared = kernel.uniform;
    (fields != declared.fields || *span as usize != declared.size).then(|| {
        format!(
            "uniform: the WGSL struct is {fields:?} ({span} bytes), the launcher's {:?} ({} bytes)",
            declared.fields, declared.size
        )
    })
}

#[test]
fn launcher_bindings_match_every_entry_point() {
    let kernels = declared();
    assert!(
        kernels.len() > 60,
        "only {} kernels registered",
        kernels.len()
    );
    let mut failures = Vec::new();
    for (kernel, shaders) in &kernels {
        for shader in shaders {
            for defines in shader.define_sets() {
                for problem in mismatches(kernel, shader, &defines) {
                    failures.push(format!(
                        "{} in {}.wgsl {defines:?}: {problem}",
                        kernel.entry, shader.name
                    ));
                }
            }
        }
    }
    failures.dedup();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_wrong_declaration_is_reported() {
    let (kernel, shaders) = declared()
        .into_iter()
        .find(|(k, _)| k.entry == "rms_norm")
        .expect("rms_norm is declared");
    let defines = shaders[0].variants.sets().remove(0);
    assert!(mismatches(&kernel, shaders[0], &defines).is_empty());
    let swapped = Kernel {
        bindings: &[Access::Read, Access::Read, Access::ReadWrite, Access::Read],
        ..kernel
    };
    let problems = mismatches(&swapped, shaders[0], &defines).join("\n");
    for binding in ["binding 1 ", "binding 2 ", "binding 3 "] {
        assert!(problems.contains(binding), "{problems}");
    }
    let extra = Kernel {
        bindings: &[
            Access::ReadWrite,
            Access::ReadWrite,
            Access::Read,
            Access::Read,
            Access::Read,
        ],
        ..kernel
    };
    let problems = mismatches(&extra, shaders[0], &defines).join("\n");
    assert!(problems.contains("binding 5 is declared"), "{problems}");
    // A uniform whose fields are out of order, or one field short, is caught too.
    let swapped_fields = Kernel {
        uniform: crate::gpu::UniformLayout {
            size: 20,
            fields: &[
                ("rows", 0),
                ("d", 4),
                ("aux", 8),
                ("eps", 12),
                ("total", 16),
            ],
        },
        ..kernel
    };
    let problems = mismatches(&swapped_fields, shaders[0], &defines).join("\n");
    assert!(problems.contains("uniform: the WGSL struct"), "{problems}");
    let short = Kernel {
        uniform: crate::gpu::UniformLayout {
            size: 16,
            fields: &kernel.uniform.fields[..4],
        },
        ..kernel
    };
    assert!(!mismatches(&short, shaders[0], &defines).is_empty());
    let renamed = Kernel {
        entry: "rms_norm_typo",
        ..kernel
    };
    assert!(mismatches(&renamed, shaders[0], &defines)[0].contains("no entry point"));
}

#[test]
fn a_launch_with_another_kernels_uniform_is_refused() {
    let gpu = pollster::block_on(crate::Gpu::from_env()).expect("a GPU for the tests");
    let (fill, _) = declared()
        .into_iter()
        .find(|(k, _)| k.entry == "fill")
        .expect("fill is declared");
    let t = crate::Tensor::from_f32(&gpu, &[4], &[0.0; 4]).unwrap();
    let vec1 = [(crate::gpu::VEC, 1)];
    let norm_uniform = super::norm::Params::default();
    let e = gpu
        .dispatch(&fill, &vec1, &[&t], &norm_uniform, [1, 1, 1])
        .unwrap_err()
        .to_string();
    assert!(e.contains("kernel fill: launched with the uniform"), "{e}");
}
