// norm kernels.
