"""Communication: the ranks of an MPI job (world), collectives as problems, their benchmarks
over MPI and NCCL, and the α-β fits the scalability predictor reads from the table."""
