//! norm kernels (launchers).

/// Define sets of `shaders/norm.wgsl` the runtime uses (validated by naga).
pub const NORM_VARIANTS: &[&[(&str, u32)]] = &[&[]];
