// matmul kernels.
