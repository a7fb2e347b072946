//! BitDance on WebGPU: the GPU runtime, WGSL kernels with CPU references, autograd and
//! optimizers, shared by the CLI, the desktop app and the browser build.

pub mod autograd;
pub mod conformance;
pub mod error;
#[macro_use]
pub mod gpu;
pub mod io;
pub mod model;
pub mod ops;
pub mod optim;
pub mod reference;
pub mod rng;
pub mod studio;
pub mod tensor;
pub mod train;

pub use error::{Error, Result};
pub use gpu::{Gpu, GpuOptions, GpuStats};
pub use tensor::{DType, Tensor};
