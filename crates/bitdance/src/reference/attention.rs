//! f64 references of the attention kernels.
