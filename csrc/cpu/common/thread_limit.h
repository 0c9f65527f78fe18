#pragma once
// The most OpenMP threads a kernel may be asked for: 4 per CPU this process can run on, at most
// 1024. Far more than a core count only oversubscribes, and each thread costs a stack: libgomp
// aborts the process when it cannot create one (600 threads under a memory limit, or
// OMP_NUM_THREADS=100000), so every entry point refuses more with a ValueError instead.
#include <omp.h>

#include <algorithm>

namespace dlcb {

inline int thread_limit() { return std::clamp(4 * omp_get_num_procs(), 4, 1024); }

}  // namespace dlcb
