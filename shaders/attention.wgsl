// attention kernels.
