// data kernels.
