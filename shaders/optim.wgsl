// optim kernels.
