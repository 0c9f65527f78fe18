// Wall-clock spin kernel on the GPU's global nanosecond timer (see spin.h).
#include <cuda_runtime.h>

#include <stdexcept>

#include "common/device_guard.cuh"
#include "common/launch.cuh"
#include "timing/spin.h"

namespace dlcb::cuda {

namespace {

__device__ __forceinline__ unsigned long long global_timer_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

__global__ void spin_kernel(unsigned long long ns) {
  const unsigned long long start = global_timer_ns();
  // Sleeping between reads leaves the SM's issue slots to other streams' work.
  while (global_timer_ns() - start < ns) __nanosleep(500);
}

}  // namespace

void spin(int device, std::uintptr_t stream, double seconds) {
  if (!(seconds >= 0.0 && seconds <= 10.0))
    throw std::invalid_argument("spin seconds must be in [0, 10]");
  DeviceGuard guard(device);
  spin_kernel<<<1, 1, 0, reinterpret_cast<cudaStream_t>(stream)>>>(
      static_cast<unsigned long long>(seconds * 1e9));
  check_launch("spin_kernel");
}

}  // namespace dlcb::cuda
