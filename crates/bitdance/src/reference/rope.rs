//! f64 references of the rope kernels.
