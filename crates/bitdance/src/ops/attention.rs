//! attention kernels (launchers).

/// Define sets of `shaders/attention.wgsl` the runtime uses (validated by naga).
pub const ATTENTION_VARIANTS: &[&[(&str, u32)]] = &[&[]];
