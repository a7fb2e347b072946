//! Compute pipelines built from WGSL with `const` defines, cached by shader, entry and defines.

use std::collections::HashMap;

use crate::gpu::Shader;

/// How an entry point uses one of its storage bindings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `var<storage, read>`.
    Read,
    /// `var<storage, read_write>`.
    ReadWrite,
    /// The binding number exists in the shader file but this entry point does not use it:
    /// no layout entry, no tensor.
    Skip,
}

/// A compute entry point: binding 0 is its uniform `params`, bindings 1.. are `bindings`
/// (tensors are passed for the non-`Skip` ones, in order).
#[derive(Clone, Copy, Debug)]
pub struct Kernel {
    /// The shader file holding the entry point.
    pub shader: &'static Shader,
    /// WGSL entry point name.
    pub entry: &'static str,
    /// Access of storage bindings 1..=n, in order.
    pub bindings: &'static [Access],
    /// The uniform (binding 0) the entry point reads.
    pub uniform: super::UniformLayout,
}

/// The define that selects the element width of a shader written once for scalars and
/// vec4s: `VEC` = 1 or 4 also declares `V` (f32 or vec4<f32>), `VU` (u32 or vec4<u32>) and
/// `hsum(v: V) -> f32` (the sum of v's components).
pub const VEC: &str = "VEC";

/// WGSL source with the defines prepended as module-scope `const`s (and, for `VEC`, the
/// element types it selects), then the uniform's struct generated from its Rust declaration.
pub fn source_with_defines(shader: &Shader, defines: &[(&str, u32)]) -> String {
    let mut src = String::new();
    // An enable directive must precede every declaration.
    if shader.builds_f16_arrays(defines) {
        src.push_str("enable f16;\n");
    }
    for (name, value) in defines {
        src.push_str(&format!("const {name}: u32 = {value}u;\n"));
        if *name == VEC {
            src.push_str(vector_prelude(*value));
        }
    }
    src.push_str(shader.uniform);
    src.push_str(shader.source_for(defines));
    src
}

fn vector_prelude(width: u32) -> &'static str {
    assert!(
        matches!(width, 1 | 4),
        "VEC = {width}: element widths are 1 or 4"
    );
    if width == 4 {
        "alias V = vec4<f32>;\nalias VU = vec4<u32>;\n\
         fn hsum(v: V) -> f32 { return (v.x + v.y) + (v.z + v.w); }\n"
    } else {
        "alias V = f32;\nalias VU = u32;\nfn hsum(v: V) -> f32 { return v; }\n"
    }
}

type DefineKey = Vec<(String, u32)>;

/// A built pipeline and the key it was built for.
struct Built {
    shader: &'static str,
    entry: &'static str,
    defines: DefineKey,
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

impl Built {
    fn is(&self, kernel: &Kernel, defines: &[(&str, u32)]) -> bool {
        self.shader == kernel.shader.name
            && self.entry == kernel.entry
            && self.defines.len() == defines.len()
            && self
                .defines
                .iter()
                .zip(defines)
                .all(|(a, b)| a.0 == b.0 && a.1 == b.1)
    }
}

/// A hash of a pipeline's key, computed without allocating (`get` runs on every dispatch).
fn key_hash(kernel: &Kernel, defines: &[(&str, u32)]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    kernel.shader.name.hash(&mut h);
    kernel.entry.hash(&mut h);
    defines.hash(&mut h);
    h.finish()
}

#[derive(Default)]
pub(crate) struct PipelineCache {
    modules: HashMap<(&'static str, DefineKey), wgpu::ShaderModule>,
    /// Pipelines by `key_hash`, each bucket checked against the whole key.
    pipelines: HashMap<u64, Vec<Built>>,
}

impl PipelineCache {
    /// The pipeline and bind group layout of `kernel` under `defines`, built on first use.
    pub fn get(
        &mut self,
        device: &wgpu::Device,
        kernel: &Kernel,
        defines: &[(&str, u32)],
    ) -> (wgpu::ComputePipeline, wgpu::BindGroupLayout) {
        let hash = key_hash(kernel, defines);
        let bucket = self.pipelines.get(&hash).into_iter().flatten();
        if let Some(found) = bucket.into_iter().find(|b| b.is(kernel, defines)) {
            return (found.pipeline.clone(), found.layout.clone());
        }
        let key: DefineKey = defines.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let module = self
            .modules
            .entry((kernel.shader.name, key.clone()))
            .or_insert_with(|| {
                device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(kernel.shader.name),
                    source: wgpu::ShaderSource::Wgsl(
                        source_with_defines(kernel.shader, defines).into(),
                    ),
                })
            })
            .clone();
        let mut entries = vec![wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        }];
        for (i, access) in kernel.bindings.iter().enumerate() {
            if *access == Access::Skip {
                continue;
            }
            entries.push(wgpu::BindGroupLayoutEntry {
                binding: i as u32 + 1,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage {
                        read_only: *access == Access::Read,
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            });
        }
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(kernel.entry),
            entries: &entries,
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(kernel.entry),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(kernel.entry),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some(kernel.entry),
            compilation_options: Default::default(),
            cache: None,
        });
        self.pipelines.entry(hash).or_default().push(Built {
            shader: kernel.shader.name,
            entry: kernel.entry,
            defines: key,
            pipeline: pipeline.clone(),
            layout: layout.clone(),
        });
        (pipeline, layout)
    }
}
