//! f64 references of the norm kernels.
