//! Optimizers over named parameters: AdamW with decay / no-decay groups and global
//! grad-norm clipping (all on the GPU, no readback), the EMA of weights, and the
//! official warmup / constant / cosine learning-rate schedule.

use std::collections::BTreeMap;

use crate::ops::{self, AdamWStep};
use crate::{Error, Result, Tensor};

/// One parameter handed to the optimizer: its official name, value, gradient and group.
pub struct ParamGrad<'a> {
    /// Official parameter name (keys the moment buffers).
    pub name: &'a str,
    /// The parameter, updated in place.
    pub value: &'a Tensor,
    /// Its gradient, same shape.
    pub grad: &'a Tensor,
    /// Whether weight decay applies (matrices yes; norms, biases, embeddings no).
    pub decay: bool,
}

/// AdamW settings (defaults: the official BitDance recipe).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamWConfig {
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Denominator epsilon.
    pub eps: f32,
    /// Decoupled weight decay of the decay group.
    pub weight_decay: f32,
    /// Global gradient-norm bound (`None`: no clipping).
    pub max_grad_norm: Option<f32>,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.05,
            max_grad_norm: Some(1.0),
        }
    }
}

/// AdamW state: step count and the two moments of every parameter, by name.
pub struct AdamW {
    /// Settings.
    pub config: AdamWConfig,
    /// Steps taken so far.
    pub step: u64,
    /// (first moment, second moment) per parameter name.
    pub moments: BTreeMap<String, (Tensor, Tensor)>,
}

impl AdamW {
    /// A fresh optimizer (moments are created at zero on first use).
    pub fn new(config: AdamWConfig) -> Self {
        Self {
            config,
            step: 0,
            moments: BTreeMap::new(),
        }
    }

    /// One update of every parameter at learning rate `lr`, and of `ema`'s shadow of each in
    /// the same pass (a parameter without one gets a copy of its updated value). Returns a [2]
    /// GPU tensor [clip factor, global grad norm] (factor 1 without clipping) for logging.
    pub fn step(
        &mut self,
        params: &[ParamGrad<'_>],
        lr: f32,
        mut ema: Option<&mut Ema>,
    ) -> Result<Tensor> {
        let Some(first) = params.first() else {
            return Err(Error::Invalid("AdamW.step: no parameters".into()));
        };
        let gpu = first.value.gpu().clone();
        let grads: Vec<&Tensor> = params.iter().map(|p| p.grad).collect();
        let norm2 = ops::sum_squares(&grads)?;
        let clip = ops::clip_factor(&norm2, self.config.max_grad_norm.unwrap_or(f32::INFINITY))?;
        self.step += 1;
        for p in params {
            if p.grad.shape() != p.value.shape() {
                return Err(Error::Shape {
                    op: "AdamW.step",
                    detail: format!(
                        "{}: gradient {:?} for parameter {:?}",
                        p.name,
                        p.grad.shape(),
                        p.value.shape()
                    ),
                });
            }
            let (m, v) = match self.moments.get(p.name) {
                Some(mv) => mv.clone(),
                None => {
                    let mv = (
                        Tensor::zeros(&gpu, p.value.shape())?,
                        Tensor::zeros(&gpu, p.value.shape())?,
                    );
                    self.moments.insert(p.name.to_string(), mv.clone());
                    mv
                }
            };
            let h = AdamWStep {
                lr,
                beta1: self.config.beta1,
                beta2: self.config.beta2,
                eps: self.config.eps,
                weight_decay: if p.decay {
                    self.config.weight_decay
                } else {
                    0.0
                },
                step: self.step,
            };
            let shadow = ema
                .as_deref()
                .and_then(|e| Some((e.shadows.get(p.name)?.clone(), e.decay)));
            let fused = shadow.as_ref().map(|(t, decay)| (t, *decay));
            ops::adamw_update(p.value, &m, &v, p.grad, &clip, &h, fused)?;
            if let (Some(e), None) = (ema.as_deref_mut(), &shadow) {
                // A parameter new to the EMA starts it as a copy of its updated value.
                e.shadows
                    .insert(p.name.to_string(), ops::duplicate(p.value)?);
            }
        }
        Ok(clip)
    }
}

/// Exponential moving average of weights: shadow = decay * shadow + (1 - decay) * value.
pub struct Ema {
    /// Decay per update (0.9999 in the official recipe).
    pub decay: f32,
    /// Shadow copy per parameter name.
    pub shadows: BTreeMap<String, Tensor>,
}

impl Ema {
    /// An empty EMA; shadows start as copies on first update.
    pub fn new(decay: f32) -> Self {
        Self {
            decay,
            shadows: BTreeMap::new(),
        }
    }

    /// Updates the shadow of each (name, value) in its own pass (training fuses this into the
    /// AdamW update instead: `AdamW::step` with this EMA).
    pub fn update<'a>(
        &mut self,
        params: impl IntoIterator<Item = (&'a str, &'a Tensor)>,
    ) -> Result<()> {
        for (name, value) in params {
            match self.shadows.get(name) {
                Some(shadow) => ops::axpby_inplace(self.decay, shadow, 1.0 - self.decay, value)?,
                None => {
                    self.shadows
                        .insert(name.to_string(), ops::duplicate(value)?);
                }
            }
        }
        Ok(())
    }
}

/// The official learning-rate schedule: linear warmup from 0 over `warmup` steps, constant
/// until `decay_start`, then cosine decay to `min_lr` at `total` (steps are 0-based).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LrSchedule {
    /// Peak learning rate.
    pub peak: f32,
    /// Floor reached at `total`.
    pub min_lr: f32,
    /// Warmup steps (lr = peak * step / warmup before it).
    pub warmup: u64,
    /// First step of the cosine decay.
    pub decay_start: u64,
    /// Total steps.
    pub total: u64,
}

impl LrSchedule {
    /// Learning rate at 0-based `step`.
    pub fn at(&self, step: u64) -> f32 {
        if step < self.warmup {
            return (self.peak as f64 * step as f64 / self.warmup as f64) as f32;
        }
        if step >= self.decay_start && self.decay_start < self.total {
            let span = (self.total - self.decay_start) as f64;
            let progress = ((step - self.decay_start) as f64 / span).min(1.0);
            let cos = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
            return (self.min_lr as f64 + (self.peak - self.min_lr) as f64 * cos) as f32;
        }
        self.peak
    }
}

#[cfg(test)]
mod tests {
    use super::LrSchedule;

    #[test]
    fn schedule_warms_up_holds_then_decays_to_min() {
        let s = LrSchedule {
            peak: 1.0,
            min_lr: 0.1,
            warmup: 10,
            decay_start: 20,
            total: 120,
        };
        assert_eq!(s.at(0), 0.0);
        assert!((s.at(5) - 0.5).abs() < 1e-6);
        assert_eq!(s.at(10), 1.0);
        assert_eq!(s.at(19), 1.0);
        assert!((s.at(70) - 0.55).abs() < 1e-6);
        assert!((s.at(120) - 0.1).abs() < 1e-6);
        assert!(s.at(30) > s.at(31));
    }
}
