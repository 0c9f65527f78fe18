#pragma once
// A launch error (bad configuration, too much shared memory, no kernel image for this device)
// surfaces at the launch site as an exception naming the kernel, not at a later synchronize.
#include <cuda_runtime_api.h>

#include "common/check.cuh"

namespace dlcb::cuda {

inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

inline int ceil_div(int a, int b) { return (a + b - 1) / b; }
inline long long ceil_div(long long a, long long b) { return (a + b - 1) / b; }

}  // namespace dlcb::cuda
