//! f64 reference of AdamW (torch.optim.AdamW) and gradient-norm clipping.

/// One AdamW step in f64 on `p`, `m`, `v` with gradient `g` (already clipped).
#[allow(clippy::too_many_arguments)]
pub fn adamw_ref(
    p: &mut [f64],
    m: &mut [f64],
    v: &mut [f64],
    g: &[f64],
    lr: f64,
    betas: (f64, f64),
    eps: f64,
    wd: f64,
    step: i32,
) {
    let bc1 = 1.0 - betas.0.powi(step);
    let bc2 = 1.0 - betas.1.powi(step);
    for i in 0..p.len() {
        p[i] *= 1.0 - lr * wd;
        m[i] = betas.0 * m[i] + (1.0 - betas.0) * g[i];
        v[i] = betas.1 * v[i] + (1.0 - betas.1) * g[i] * g[i];
        p[i] -= lr / bc1 * m[i] / (v[i].sqrt() / bc2.sqrt() + eps);
    }
}

/// torch.nn.utils.clip_grad_norm_ factor: min(1, max_norm / (‖g‖ + 1e-6)) over all tensors.
pub fn clip_factor_ref(grads: &[&[f64]], max_norm: f64) -> f64 {
    let norm = grads
        .iter()
        .flat_map(|g| g.iter())
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt();
    (max_norm / (norm + 1e-6)).min(1.0)
}
