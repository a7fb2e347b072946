//! Kernel conformance: the harness (`Checker`, result rows, tolerances) that runs each kernel
//! family's checks (`ops/<family>/check.rs`): each GPU op against its f64 CPU reference on
//! random inputs, odd shapes and NaN-poisoned outputs; each backward against finite differences. The same
//! checks back `bitdance doctor`, the native test suite and the browser tests.

use crate::gpu::F16Form;
use crate::reference::relative_error;
use crate::rng::Rng;
use crate::{Gpu, Result, Tensor};

/// Tolerance for element-wise and short-reduction kernels (norm-wise relative error).
pub const TOL: f64 = 1e-5;
/// Tolerance for long reductions (matmul with large K, attention, norms of wide rows).
pub const TOL_LONG: f64 = 1e-4;
/// Tolerance for backward kernels against f64 finite differences.
pub const TOL_GRAD: f64 = 1e-4;

/// One row of the conformance table.
#[derive(Clone, Debug)]
pub struct CheckResult {
    /// Op (and direction) checked, e.g. "swiglu backward".
    pub op: String,
    /// The shapes, in words.
    pub shapes: String,
    /// Norm-wise relative error against the reference (NaN when the GPU wrote NaN).
    pub rel_error: f64,
    /// The bound it must stay under.
    pub tolerance: f64,
    /// Set when the op itself returned an error.
    pub error: Option<String>,
    /// Set when the check could not run on this adapter, with the reason (not a failure).
    pub skipped: Option<String>,
}

impl CheckResult {
    /// A row for a check this adapter cannot run (e.g. a kernel form that needs subgroups).
    pub fn skipped(
        op: impl Into<String>,
        shapes: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            op: op.into(),
            shapes: shapes.into(),
            rel_error: f64::NAN,
            tolerance: f64::NAN,
            error: None,
            skipped: Some(reason.into()),
        }
    }

    /// Whether the check passed (a skipped check did not fail).
    pub fn passed(&self) -> bool {
        self.skipped.is_some() || (self.error.is_none() && self.rel_error <= self.tolerance)
    }

    /// "ok", "FAIL" or "skipped: <reason>", for tables.
    pub fn status(&self) -> String {
        match &self.skipped {
            Some(why) => format!("skipped: {why}"),
            None if self.passed() => "ok".into(),
            None => "FAIL".into(),
        }
    }
}

/// Why checks of the subgroup kernel forms are skipped on an adapter without them.
pub(crate) const NO_SUBGROUPS: &str =
    "needs subgroups of 8+ lanes (none here, or BITDANCE_SUBGROUPS=0)";

/// A kernel family's checks: a name and an async runner appending rows.
pub struct Family {
    /// Family name, e.g. "elementwise".
    pub name: &'static str,
    pub(crate) run: for<'a> fn(&'a mut Checker) -> futures_lite::BoxFuture<'a>,
}

/// The state the checks share: the GPU, a seeded RNG and the rows so far.
pub struct Checker {
    /// The GPU under test (poison mode on while checks run).
    pub gpu: Gpu,
    /// Seeded random inputs.
    pub rng: Rng,
    /// Rows collected.
    pub results: Vec<CheckResult>,
}

/// A boxed future type for the family runners, without pulling a futures crate.
pub mod futures_lite {
    /// A pinned, boxed future of one family's checks.
    pub type BoxFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>>;
}

impl Checker {
    /// A checker over `gpu` with a fixed seed.
    pub fn new(gpu: &Gpu, seed: u64) -> Self {
        Self {
            gpu: gpu.clone(),
            rng: Rng::new(seed),
            results: Vec::new(),
        }
    }

    /// Random normal values uploaded as an f32 tensor; returns the tensor and its f64 copy.
    pub fn randn(&mut self, shape: &[usize]) -> Result<(Tensor, Vec<f64>)> {
        let data = self.rng.normal_vec(shape.iter().product());
        let t = Tensor::from_f32(&self.gpu, shape, &data)?;
        Ok((t, crate::reference::widen(&data)))
    }

    /// Reads `out` and records its error against `reference`; an op error becomes a failed row.
    pub async fn compare(
        &mut self,
        op: &str,
        shapes: String,
        out: Result<Tensor>,
        reference: &[f64],
        tolerance: f64,
    ) {
        let row = match out {
            Ok(t) => match t.to_vec_f32().await {
                Ok(v) => CheckResult {
                    op: op.into(),
                    shapes,
                    rel_error: relative_error(&v, reference),
                    tolerance,
                    error: None,
                    skipped: None,
                },
                Err(e) => Self::failed(op, shapes, tolerance, e),
            },
            Err(e) => Self::failed(op, shapes, tolerance, e),
        };
        self.results.push(row);
    }

    /// On a CPU adapter without 8-lane subgroups, records that the subgroup form `what` of a
    /// family's kernels could not be checked (on GPUs those forms are never used).
    pub(crate) fn skip_subgroup_form(&mut self, what: &str) {
        if self.gpu.is_cpu() && !self.gpu.has_subgroups(8) {
            let row = CheckResult::skipped(what, "every case", NO_SUBGROUPS);
            self.results.push(row);
        }
    }

    /// The forms of 16-bit reads to check on this device: packed, and f16 arrays where the
    /// device has `SHADER_F16`.
    pub fn f16_forms(&self) -> Vec<F16Form> {
        self.gpu.f16_forms()
    }

    /// Makes the checker's tensors, and the kernels run on them, read 16-bit tensors in `form`
    /// (this checker's handle only; `run` gives each family the device's own form again).
    pub fn use_f16_form(&mut self, form: F16Form) -> Result<()> {
        self.gpu = self.gpu.with_f16_form(form)?;
        Ok(())
    }

    /// Records a failed row for an op that returned an error.
    pub fn fail(&mut self, op: &str, shapes: String, e: crate::Error) {
        self.results.push(Self::failed(op, shapes, TOL, e));
    }

    fn failed(op: &str, shapes: String, tolerance: f64, e: crate::Error) -> CheckResult {
        CheckResult {
            op: op.into(),
            shapes,
            rel_error: f64::NAN,
            tolerance,
            error: Some(e.to_string()),
            skipped: None,
        }
    }
}

/// What a row of a 16-bit case adds to its name for `form`: nothing for the packed form (the
/// rows' names before f16 arrays), " (f16 arrays)" for arrays.
pub(crate) fn f16_form_suffix(form: F16Form) -> &'static str {
    match form {
        F16Form::Packed => "",
        F16Form::Arrays => " (f16 arrays)",
    }
}

/// Every family of checks, in dependency order (registered in `crate::ops`).
pub fn families() -> Vec<Family> {
    crate::ops::check_families()
}

/// Runs the named families (all when `only` is empty) on `gpu`; outputs are NaN-poisoned.
pub async fn run(gpu: &Gpu, only: &[&str]) -> Vec<CheckResult> {
    let mut checker = Checker::new(gpu, 0x5EED);
    let _poison = gpu.poison_outputs_guard();
    for family in families() {
        if only.is_empty() || only.contains(&family.name) {
            // Each family draws from its own seed, so its inputs do not depend on which
            // families ran before it (doctor, tests and the browser see the same cases).
            let seed = family
                .name
                .bytes()
                .fold(0x5EEDu64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
            checker.rng = Rng::new(seed);
            checker.gpu = gpu.clone();
            (family.run)(&mut checker).await;
        }
    }
    checker.results
}
