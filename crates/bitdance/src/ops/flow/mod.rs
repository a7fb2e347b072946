//! The fused sampling update of the binary diffusion head (Euler-Maruyama with CFG).

pub(crate) mod check;
pub(crate) mod reference;

use crate::{Error, Result, Tensor};

shader! {
    /// `shaders/flow.wgsl`.
    FLOW = "flow", ["flow"], Params, crate::gpu::Variants::Listed(FLOW_VARIANTS), false;
}

/// The shaders of this family, for validation.
#[cfg(test)]
pub(crate) const SHADERS: &[&crate::gpu::Shader] = &[&FLOW];

/// Define sets of `shaders/flow.wgsl` the runtime uses (validated by naga).
pub const FLOW_VARIANTS: &[&[(&str, u32)]] = &[&[]];

uniform! {
    /// The uniform of `flow.wgsl`.
    struct Params {
        n: u32,
        /// 1: combine pred[i] (cond) and pred[n + i] (uncond) with cfg.
        guided: u32,
        t: f32,
        dt: f32,
        cfg: f32,
        /// sqrt(2 (1 - t) dt); 0 for the final Euler step.
        noise_scale: f32,
        /// 1: Euler-Maruyama drift v + (1 - t) score; 0: plain Euler.
        maruyama: u32,
    }
}

kernels! { FLOW_KERNELS = FLOW, Params;
    STEP = "flow_step", [rw, r, r];
}

/// One sampler step, in place on `x` [n]: v = (pred - x) / max(1 - t, 0.05), guided as
/// v_u + cfg (v_c - v_u) when `pred` holds [cond; uncond] rows (2n values); then
/// Euler-Maruyama x += (v + (1 - t) score) dt + sqrt(2 (1 - t) dt) noise with
/// score = (t v - x) / (1 - t), or plain Euler x += v dt when `noise` is None.
pub fn flow_step(
    x: &Tensor,
    pred: &Tensor,
    noise: Option<&Tensor>,
    t: f32,
    dt: f32,
    cfg: f32,
) -> Result<()> {
    let n = x.numel();
    let guided = match pred.numel() {
        m if m == n => false,
        m if m == 2 * n => true,
        m => {
            return Err(Error::Shape {
                op: "flow_step",
                detail: format!(
                    "prediction of {m} values for {n} samples (expected {n} or {})",
                    2 * n
                ),
            })
        }
    };
    if let Some(noise) = noise {
        super::same_shape("flow_step", x, noise)?;
    }
    let noise_scale = if noise.is_some() {
        (2.0 * (1.0 - t) * dt).max(0.0).sqrt()
    } else {
        0.0
    };
    let p = Params {
        n: n as u32,
        guided: guided as u32,
        t,
        dt,
        cfg,
        noise_scale,
        maruyama: noise.is_some() as u32,
    };
    let tensors = [x, pred, noise.unwrap_or(pred)];
    x.gpu().dispatch_items(&STEP, &[], &tensors, &p, n)
}

/// Every kernel this family declares, for the binding contract test.
#[cfg(test)]
pub(crate) const KERNELS: &[&[crate::gpu::Kernel]] = &[FLOW_KERNELS];
