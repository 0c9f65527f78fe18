"""Reports and run comparisons, read from throughput tables: they read tables (and call the
predictor) and nothing in dlcb_kernels imports them."""
