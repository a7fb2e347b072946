//! f64 references of the optim kernels.
