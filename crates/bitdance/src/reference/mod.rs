//! CPU references in f64 for every kernel family (each kept in `ops/<family>/reference.rs`,
//! re-exported here), and the helpers they share: finite-difference gradients, errors.

pub use crate::ops::references::*;

/// Vector-Jacobian product of `f` at `x` with cotangent `dy`, by central differences in f64.
pub fn finite_difference_vjp(f: impl Fn(&[f64]) -> Vec<f64>, x: &[f64], dy: &[f64]) -> Vec<f64> {
    let mut xp = x.to_vec();
    (0..x.len())
        .map(|i| {
            let h = 1e-6 * x[i].abs().max(1.0);
            xp[i] = x[i] + h;
            let fp: f64 = f(&xp).iter().zip(dy).map(|(a, b)| a * b).sum();
            xp[i] = x[i] - h;
            let fm: f64 = f(&xp).iter().zip(dy).map(|(a, b)| a * b).sum();
            xp[i] = x[i];
            (fp - fm) / (2.0 * h)
        })
        .collect()
}

/// Norm-wise relative error ‖out − ref‖ / ‖ref‖ (absolute when ‖ref‖ is 0); NaN if any NaN.
pub fn relative_error(out: &[f32], reference: &[f64]) -> f64 {
    if out.len() != reference.len() {
        return f64::INFINITY;
    }
    let mut diff = 0.0;
    let mut norm = 0.0;
    for (o, r) in out.iter().zip(reference) {
        let o = *o as f64;
        if !o.is_finite() {
            return f64::NAN;
        }
        diff += (o - r) * (o - r);
        norm += r * r;
    }
    if norm == 0.0 {
        diff.sqrt()
    } else {
        (diff / norm).sqrt()
    }
}

/// f32 slice widened to f64.
pub fn widen(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}
