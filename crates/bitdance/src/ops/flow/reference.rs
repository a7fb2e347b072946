//! f64 reference of the head sampler's update.

/// One Euler-Maruyama step (or plain Euler without `noise`) with optional CFG: see `ops::flow_step`.
pub fn flow_step_ref(
    x: &[f64],
    pred: &[f64],
    noise: Option<&[f64]>,
    t: f64,
    dt: f64,
    cfg: f64,
) -> Vec<f64> {
    let n = x.len();
    let denom = (1.0 - t).max(0.05);
    (0..n)
        .map(|i| {
            let mut v = (pred[i] - x[i]) / denom;
            if pred.len() == 2 * n {
                let vu = (pred[n + i] - x[i]) / denom;
                v = vu + cfg * (v - vu);
            }
            match noise {
                Some(e) => {
                    let score = (t * v - x[i]) / (1.0 - t);
                    x[i] + (v + (1.0 - t) * score) * dt + (2.0 * (1.0 - t) * dt).sqrt() * e[i]
                }
                None => x[i] + v * dt,
            }
        })
        .collect()
}
