//! The default model embedded in the binary: a small next-patch BitDance (the `tiny` config:
//! tokenizer and AR model) trained by this runtime on the bundled MNIST subset; see
//! assets/model/README.md for how it was trained.

/// The model file (safetensors, F16, official names, config in the metadata).
pub const BYTES: &[u8] = include_bytes!("../../../assets/model/default.safetensors");

/// The name shown for it in messages.
pub const LABEL: &str = "the default model (tiny, MNIST digits)";
