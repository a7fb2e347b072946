//! f64 references of the loss kernels.
