//! Weight I/O over safetensors bytes (no file system: callers read and write the files):
//! parse and convert to f32, check names and shapes, upload (row-chunked when large), save.

mod check;
mod convert;
pub mod image;
mod pt;
mod save;
mod weights;

pub use check::check_expected;
pub use convert::{bf16_to_f32, f16_to_f32, f32_to_f16};
pub use pt::{read_state_dict, PtStateDict, PtTensor, Select};
pub use save::{encode_values, safetensors_header, save_safetensors, save_safetensors_f16};
pub use weights::{header_size, WeightFile};

#[cfg(test)]
mod tests;
