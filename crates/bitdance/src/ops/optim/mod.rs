//! Optimizer kernels: the fused AdamW update (optionally with the weights' EMA) and the
//! gradient-clipping factor.

pub(crate) mod check;
pub(crate) mod reference;

use crate::gpu::VEC;
use crate::{Error, Result, Tensor};

shader! {
    /// `shaders/optim.wgsl`.
    OPTIM = "optim", ["optim"], Params,
        crate::gpu::Variants::Listed(crate::ops::VEC_VARIANTS), false;
}

/// The shaders of this family, for validation.
#[cfg(test)]
pub(crate) const SHADERS: &[&crate::gpu::Shader] = &[&OPTIM];

uniform! {
    /// The uniform of `optim.wgsl`.
    struct Params {
        n: u32,
        lr: f32, beta1: f32, beta2: f32, eps: f32, weight_decay: f32,
        /// 1 - beta1^t and 1 - beta2^t.
        bias_correction1: f32, bias_correction2: f32,
        /// clip_factor only.
        max_norm: f32,
        /// adamw_ema only.
        ema_decay: f32,
    }
}

kernels! { OPTIM_KERNELS = OPTIM, Params;
    ADAMW = "adamw", [rw, rw, rw, r, r];
    ADAMW_EMA = "adamw_ema", [rw, rw, rw, r, r, rw];
    CLIP_FACTOR = "clip_factor", [rw, r];
}

/// Hyper-parameters of one AdamW update (torch.optim.AdamW semantics).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWStep {
    /// Learning rate of this step.
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Denominator epsilon.
    pub eps: f32,
    /// Decoupled weight decay (0 for the no-decay group).
    pub weight_decay: f32,
    /// 1-based step number, for bias correction.
    pub step: u64,
}

/// In place: one AdamW update of `param` with moments `m`, `v`, gradient `grad * clip[0]`,
/// and, given `ema` = (shadow, decay), `shadow = decay * shadow + (1 - decay) * param` with the
/// updated parameter in the same pass. All tensors but `clip` of param's shape; `clip` is a
/// [>=1] tensor whose element 0 scales the gradient.
pub fn adamw_update(
    param: &Tensor,
    m: &Tensor,
    v: &Tensor,
    grad: &Tensor,
    clip: &Tensor,
    h: &AdamWStep,
    ema: Option<(&Tensor, f32)>,
) -> Result<()> {
    let shadow = ema.map(|(t, _)| ("ema", t));
    for (what, t) in [("m", m), ("v", v), ("grad", grad)]
        .into_iter()
        .chain(shadow)
    {
        if t.shape() != param.shape() {
            return Err(Error::Shape {
                op: "adamw",
                detail: format!(
                    "{what} {:?} differs from param {:?}",
                    t.shape(),
                    param.shape()
                ),
            });
        }
    }
    // Two read-write bindings of one buffer would race (or fail at submit, next to a read one).
    let named = [("param", param), ("m", m), ("v", v), ("grad", grad)];
    for (i, (a, ta)) in named.iter().chain(shadow.iter()).enumerate() {
        for (b, tb) in named.iter().chain(shadow.iter()).skip(i + 1) {
            if ta.same_storage(tb) {
                return Err(Error::Invalid(format!("adamw: {a} and {b} share storage")));
            }
        }
    }
    if h.step == 0 {
        return Err(Error::Invalid("adamw: step numbers start at 1".into()));
    }
    let t = h.step.min(i32::MAX as u64) as i32;
    let bc1 = 1.0 - (h.beta1 as f64).powi(t);
    let bc2 = 1.0 - (h.beta2 as f64).powi(t);
    // A multiple of 4 elements updates as vec4s.
    let width = if param.numel().is_multiple_of(4) {
        4
    } else {
        1
    };
    let n = param.numel() / width;
    let p = Params {
        n: n as u32,
        lr: h.lr,
        beta1: h.beta1,
        beta2: h.beta2,
        eps: h.eps,
        weight_decay: h.weight_decay,
        bias_correction1: bc1 as f32,
        bias_correction2: bc2 as f32,
        max_norm: 0.0,
        ema_decay: ema.map_or(0.0, |(_, decay)| decay),
    };
    let defines = [(VEC, width as u32)];
    let gpu = param.gpu();
    match ema {
        Some((shadow, _)) => {
            let tensors = [param, m, v, grad, clip, shadow];
            gpu.dispatch_items(&ADAMW_EMA, &defines, &tensors, &p, n)
        }
        None => gpu.dispatch_items(&ADAMW, &defines, &[param, m, v, grad, clip], &p, n),
    }
}

/// From a [1] tensor holding the squared global gradient norm, a [2] tensor
/// [min(1, max_norm / (norm + 1e-6)), norm] computed on the GPU (no readback); element 0 is
/// what `adamw_update` takes as `clip`.
pub fn clip_factor(norm_squared: &Tensor, max_norm: f32) -> Result<Tensor> {
    if norm_squared.numel() != 1 {
        return Err(Error::Shape {
            op: "clip_factor",
            detail: format!("expected a [1] norm², found {:?}", norm_squared.shape()),
        });
    }
    let out = Tensor::empty(norm_squared.gpu(), &[2], crate::DType::F32)?;
    let p = Params {
        max_norm,
        ..Params::default()
    };
    norm_squared.gpu().dispatch(
        &CLIP_FACTOR,
        &[(VEC, 1)],
        &[&out, norm_squared],
        &p,
        [1, 1, 1],
    )?;
    Ok(out)
}

/// Every kernel this family declares, for the binding contract test.
#[cfg(test)]
pub(crate) const KERNELS: &[&[crate::gpu::Kernel]] = &[OPTIM_KERNELS];
