//! The one error type of the core crate: every failure names what was wrong.

/// Errors raised by the runtime, the kernels and the models.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No adapter matched the requested backend / name filter; lists what was seen.
    #[error("no GPU adapter fits ({wanted}); adapters seen: {seen}")]
    NoAdapter {
        /// What was asked for (backend and name filter).
        wanted: String,
        /// Adapters enumerated, as "name (backend, type)".
        seen: String,
    },
    /// `WGPU_BACKEND` or an option named a backend this build does not know.
    #[error("unknown backend '{0}': expected one of vulkan, metal, dx12, gl, webgpu")]
    UnknownBackend(String),
    /// The device could not be created.
    #[error("could not create the GPU device on '{adapter}': {reason}")]
    DeviceRequest {
        /// Adapter name.
        adapter: String,
        /// The driver's reason.
        reason: String,
    },
    /// An op received tensors whose shapes do not fit together.
    #[error("{op}: shape mismatch: {detail}")]
    Shape {
        /// The op that refused its inputs.
        op: &'static str,
        /// Expected and found shapes, in words.
        detail: String,
    },
    /// An op received a tensor of the wrong dtype.
    #[error("{op}: expected dtype {expected:?} for '{what}', found {found:?}")]
    DType {
        /// The op.
        op: &'static str,
        /// Which operand.
        what: &'static str,
        /// Dtype expected.
        expected: crate::DType,
        /// Dtype found.
        found: crate::DType,
    },
    /// A buffer or dispatch would exceed one of the adapter's limits.
    #[error("{what}: {requested} exceeds the adapter limit {limit_name} = {limit}")]
    Limit {
        /// What was being created (op or tensor).
        what: String,
        /// The size or count requested.
        requested: u64,
        /// Name of the wgpu limit.
        limit_name: &'static str,
        /// The adapter's value of that limit.
        limit: u64,
    },
    /// A job's estimated memory is above the budget (`GpuOptions::memory_budget`).
    #[error(
        "{what} needs about {} ({parameters} parameters), more than the memory budget of {} \
         (set BITDANCE_MEMORY_BUDGET_GIB to change it)",
        gib(*needed),
        gib(*budget)
    )]
    Memory {
        /// The job, in words.
        what: String,
        /// Parameters of the models it holds.
        parameters: u64,
        /// Estimated bytes.
        needed: u64,
        /// The budget in bytes.
        budget: u64,
    },
    /// Host data does not match the declared shape.
    #[error("{what}: {found} values given for shape {shape:?} ({expected} expected)")]
    DataLength {
        /// What was being uploaded.
        what: String,
        /// Shape declared.
        shape: Vec<usize>,
        /// Element count expected.
        expected: usize,
        /// Element count found.
        found: usize,
    },
    /// The GPU reported a validation or out-of-memory error, or readback failed.
    #[error("GPU error: {0}")]
    Gpu(String),
    /// The device is gone (a driver reset, a GPU unplugged, the browser reclaiming it): every
    /// tensor on it is lost; open a new `Gpu` and load the model again.
    #[error("the GPU device was lost ({0}); reopen it and load the model again")]
    DeviceLost(String),
    /// An argument outside its valid range.
    #[error("{0}")]
    Invalid(String),
}

/// Bytes as GiB with two decimals (or MiB below one GiB), for messages.
fn gib(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    }
}

/// Result alias of the core crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
