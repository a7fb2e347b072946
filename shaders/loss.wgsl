// loss kernels.
