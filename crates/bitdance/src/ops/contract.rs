//! The binding contract: every kernel's launcher declaration (binding numbers and access) must
//! match what its WGSL entry point really uses, under every define set its shader is built
//! with, so a mismatch fails this test instead of a pipeline on some GPU.

use naga::valid::{Capabilities, GlobalUse, ShaderStages, SubgroupOperationSet, ValidationFlags};
use naga::{AddressSpace, StorageAccess};

use super::norm::{NORM, NORM_SG};
use crate::gpu::Shader;
use crate::gpu::{source_with_defines, Access, Kernel};

/// Every declared kernel with the shaders it is dispatched with (the norm kernels also run on
/// `norm_sg`, the same entry points with subgroup row sums).
fn declared() -> Vec<(Kernel, Vec<&'static Shader>)> {
    let lists = super::declared_kernels();
    lists
        .iter()
        .flat_map(|list| list.iter())
        .map(|k| {
            let mut shaders = vec![k.shader];
            if std::ptr::eq(k.shader, &NORM) {
                shaders.push(&NORM_SG);
            }
            (*k, shaders)
        })
        .collect()
}

/// The mismatches between `kernel`'s declaration and its entry point in `shader` built with
/// `defines` (empty when they agree).
fn mismatches(kernel: &Kernel, shader: &Shader, defines: &[(&str, u32)]) -> Vec<String> {
    let src = source_with_defines(shader, defines);
    let module = naga::front::wgsl::parse_str(&src).expect("validated by the shader test");
    let capabilities = if shader.subgroups {
        Capabilities::SUBGROUP
    } else {
        Capabilities::empty()
    };
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
            AddressSpace::Uniform if binding.binding == 0 => {}
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
            for defines in shader.variants.sets() {
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
    let renamed = Kernel {
        entry: "rms_norm_typo",
        ..kernel
    };
    assert!(mismatches(&renamed, shaders[0], &defines)[0].contains("no entry point"));
}
