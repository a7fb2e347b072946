//! Gaussian draws recorded in a safetensors file (e.g. by the PyTorch reference sampler), so a
//! run can be replayed draw for draw: `x0.{s}` [R, p, latent] and `eps.{s}` [steps, R, p, latent]
//! for each AR step `s`.

use super::{Draw, GaussianSource};
use crate::io::WeightFile;
use crate::{Error, Result};

/// A `GaussianSource` replaying recorded draws; each initial draw starts the next AR step.
pub struct RecordedNoise<'a> {
    file: &'a WeightFile<'a>,
    step: Option<usize>,
}

impl<'a> RecordedNoise<'a> {
    /// Replays the draws of `file`, starting at AR step 0.
    pub fn new(file: &'a WeightFile<'a>) -> Self {
        Self { file, step: None }
    }

    fn tensor(&self, name: &str, expected: &str) -> Result<&[usize]> {
        self.file.shape(name).map_err(|_| {
            Error::Invalid(format!(
                "{}: no recorded noise '{name}' (expected {expected})",
                self.file.label()
            ))
        })
    }
}

impl GaussianSource for RecordedNoise<'_> {
    fn draw(&mut self, draw: Draw, n: usize) -> Result<Vec<f32>> {
        let step = match (draw, self.step) {
            (Draw::Initial, s) => s.map_or(0, |s| s + 1),
            (Draw::Step(_), Some(s)) => s,
            (Draw::Step(_), None) => {
                return Err(Error::Invalid(
                    "recorded noise: a step draw came before any initial draw".into(),
                ))
            }
        };
        self.step = Some(step);
        let label = self.file.label();
        match draw {
            Draw::Initial => {
                let name = format!("x0.{step}");
                let shape = self.tensor(&name, &format!("{n} values [rows, p, latent]"))?;
                let found: usize = shape.iter().product();
                if found != n {
                    return Err(Error::Shape {
                        op: "recorded noise",
                        detail: format!(
                            "{label}: '{name}' has shape {shape:?} ({found} values), the sampler draws {n}"
                        ),
                    });
                }
                self.file.to_f32(&name)
            }
            Draw::Step(i) => {
                let name = format!("eps.{step}");
                let shape = self
                    .tensor(
                        &name,
                        &format!("[steps, rows, p, latent] with {n} values per step"),
                    )?
                    .to_vec();
                let per_step: usize = shape.iter().skip(1).product();
                let steps = shape.first().copied().unwrap_or(0);
                if per_step != n || i >= steps {
                    return Err(Error::Shape {
                        op: "recorded noise",
                        detail: format!(
                            "{label}: '{name}' has shape {shape:?}; the sampler draws {n} values at head step {i}"
                        ),
                    });
                }
                self.file.rows_f32(&name, i..i + 1)
            }
        }
    }
}
