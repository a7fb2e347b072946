//! loss kernels (launchers).

/// Define sets of `shaders/loss.wgsl` the runtime uses (validated by naga).
pub const LOSS_VARIANTS: &[&[(&str, u32)]] = &[&[]];
