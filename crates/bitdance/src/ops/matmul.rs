//! matmul kernels (launchers).

/// Define sets of `shaders/matmul.wgsl` the runtime uses (validated by naga).
pub const MATMUL_VARIANTS: &[&[(&str, u32)]] = &[&[]];
