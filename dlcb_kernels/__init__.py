"""dlcb-kernels: own CPU/CUDA kernels timed against vendor libraries."""
