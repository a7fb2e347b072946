//! optim kernels (launchers).

/// Define sets of `shaders/optim.wgsl` the runtime uses (validated by naga).
pub const OPTIM_VARIANTS: &[&[(&str, u32)]] = &[&[]];
