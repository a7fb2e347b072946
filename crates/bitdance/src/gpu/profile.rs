//! Per-kernel time (a diagnostic for benchmarks): while profiling is on, every dispatch is
//! submitted and waited for on its own and its wall time is added to its kernel's total. The
//! times include each dispatch's submit and wait, and work is never overlapped, so they rank
//! kernels rather than predict the unprofiled total. Native only (the web cannot wait).

use std::collections::BTreeMap;
use std::time::Duration;

/// Time spent in one kernel variant while profiling.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelTime {
    /// Entry point and the shader defines of the variant, e.g. `mm_rb[WG16 T8 RP12]`.
    pub kernel: String,
    /// Dispatches recorded.
    pub calls: u64,
    /// Wall seconds from recording each dispatch to its completion, summed.
    pub seconds: f64,
}

/// Accumulated times per kernel label.
#[derive(Default)]
pub(crate) struct Profile {
    totals: BTreeMap<String, (u64, Duration)>,
}

impl Profile {
    /// Adds one dispatch of `entry` with `defines` that took `time`.
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))] // the web never times dispatches
    pub fn add(&mut self, entry: &str, defines: &[(&str, u32)], time: Duration) {
        let label = if defines.is_empty() {
            entry.to_string()
        } else {
            let d: Vec<String> = defines.iter().map(|(k, v)| format!("{k}{v}")).collect();
            format!("{entry}[{}]", d.join(" "))
        };
        let slot = self.totals.entry(label).or_default();
        slot.0 += 1;
        slot.1 += time;
    }

    /// The kernels, most time first.
    pub fn report(self) -> Vec<KernelTime> {
        let mut rows: Vec<KernelTime> = self
            .totals
            .into_iter()
            .map(|(kernel, (calls, time))| KernelTime {
                kernel,
                calls,
                seconds: time.as_secs_f64(),
            })
            .collect();
        rows.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_are_per_variant_and_sorted_by_time() {
        let mut p = Profile::default();
        p.add("mm_rb", &[("WG", 16), ("T", 8)], Duration::from_millis(3));
        p.add("silu", &[], Duration::from_millis(1));
        p.add("mm_rb", &[("WG", 16), ("T", 8)], Duration::from_millis(4));
        p.add("mm_rb", &[("WG", 16), ("T", 16)], Duration::from_millis(2));
        let r = p.report();
        let names: Vec<&str> = r.iter().map(|k| k.kernel.as_str()).collect();
        assert_eq!(names, ["mm_rb[WG16 T8]", "mm_rb[WG16 T16]", "silu"]);
        assert_eq!(r[0].calls, 2);
        assert!((r[0].seconds - 0.007).abs() < 1e-9);
    }
}
