//! rope kernels (launchers).

/// Define sets of `shaders/rope.wgsl` the runtime uses (validated by naga).
pub const ROPE_VARIANTS: &[&[(&str, u32)]] = &[&[]];
