// rope kernels.
