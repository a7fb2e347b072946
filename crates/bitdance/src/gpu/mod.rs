//! The GPU runtime: adapter choice, buffer pool, pipeline cache, batched dispatch, readback.

mod adapter;
mod context;
mod f16_form;
mod pipelines;
mod pool;
mod profile;
mod readback;
mod recorder;
#[macro_use]
mod shader;
#[macro_use]
mod uniform;

pub use adapter::{
    available_adapters, AdapterSummary, GpuOptions, DEFAULT_MEMORY_BUDGET, LIMITS_VAR,
    MEMORY_BUDGET_VAR,
};
pub use context::{Gpu, GpuStats, PoisonGuard, PoolPhase, ITEM_WORKGROUP};
pub use f16_form::{F16Form, F16_FORM_VAR};
pub use pipelines::{source_with_defines, Access, Kernel, VEC};
pub use profile::KernelTime;
#[cfg(not(target_arch = "wasm32"))]
pub use readback::block_on;
#[cfg(test)]
pub(crate) use shader::naga_capabilities;
pub use shader::{Shader, Variants, F16_ARRAYS};
pub use uniform::{Uniform, UniformLayout};
pub use wgpu::Features;
