//! data kernels (launchers).

/// Define sets of `shaders/data.wgsl` the runtime uses (validated by naga).
pub const DATA_VARIANTS: &[&[(&str, u32)]] = &[&[]];
