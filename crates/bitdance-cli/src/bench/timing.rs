//! Repeated wall-clock timing for the benchmarks: untimed warm-up runs first (pipelines
//! compiled, buffers pooled), then timed runs, reported as their minimum and median.

use std::time::Instant;

/// Seconds of each timed run of one measurement (at least one run).
#[derive(Clone, Debug)]
pub struct Timing {
    runs: Vec<f64>,
}

impl Timing {
    /// A timing from measured run times in seconds (at least one).
    pub fn from_runs(runs: Vec<f64>) -> Self {
        assert!(!runs.is_empty(), "a timing needs at least one run");
        Self { runs }
    }

    /// The fastest run, seconds.
    pub fn min(&self) -> f64 {
        self.runs.iter().copied().fold(f64::INFINITY, f64::min)
    }

    /// The median run, seconds (the mean of the middle two for an even count).
    pub fn median(&self) -> f64 {
        let mut sorted = self.runs.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        if n % 2 == 1 {
            sorted[n / 2]
        } else {
            0.5 * (sorted[n / 2 - 1] + sorted[n / 2])
        }
    }

    /// The run times in the order measured, seconds.
    pub fn runs(&self) -> &[f64] {
        &self.runs
    }

    /// This timing with every run divided by `n` (per call, per image).
    pub fn per(&self, n: f64) -> Self {
        Self::from_runs(self.runs.iter().map(|s| s / n).collect())
    }
}

/// Runs `work` `warmup` times untimed, then `repeats` (at least 1) times timed. Each call of
/// `work` must return with its work finished (on a GPU: after a synchronize or a readback).
pub fn measure(
    warmup: usize,
    repeats: usize,
    mut work: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Timing> {
    for _ in 0..warmup {
        work()?;
    }
    let mut runs = Vec::with_capacity(repeats.max(1));
    for _ in 0..repeats.max(1) {
        let start = Instant::now();
        work()?;
        runs.push(start.elapsed().as_secs_f64());
    }
    Ok(Timing::from_runs(runs))
}

/// Per-call timing of a short operation: one warm-up call, a calibration call, then
/// `repeats` runs of as many calls as fill about `target_s` seconds each (at most 10,000).
/// `call(n)` performs n calls and returns when they are finished.
pub fn measure_calls(
    repeats: usize,
    target_s: f64,
    mut call: impl FnMut(usize) -> anyhow::Result<()>,
) -> anyhow::Result<Timing> {
    call(1)?;
    let start = Instant::now();
    call(1)?;
    let one = start.elapsed().as_secs_f64().max(1e-6);
    let calls = ((target_s / one).ceil() as usize).clamp(1, 10_000);
    Ok(measure(0, repeats, || call(calls))?.per(calls as f64))
}

#[cfg(test)]
mod tests {
    use super::{measure, Timing};

    #[test]
    fn min_and_median_of_odd_and_even_counts() {
        let t = Timing::from_runs(vec![3.0, 1.0, 2.0]);
        assert_eq!((t.min(), t.median()), (1.0, 2.0));
        let t = Timing::from_runs(vec![4.0, 1.0, 2.0, 3.0]);
        assert_eq!((t.min(), t.median()), (1.0, 2.5));
        assert_eq!(t.per(2.0).runs(), &[2.0, 0.5, 1.0, 1.5]);
    }

    #[test]
    fn warm_up_runs_are_not_timed() {
        let mut calls = 0;
        let t = measure(2, 3, || {
            calls += 1;
            if calls <= 2 {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Ok(())
        })
        .unwrap();
        assert_eq!((calls, t.runs().len()), (5, 3));
        assert!(t.min() < 0.04, "{:?}", t.runs());
    }
}
