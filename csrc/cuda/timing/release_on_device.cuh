#pragma once
// Destructors free CUDA resources on their own device without throwing: errors there (the
// runtime already shut down at exit, say) are dropped, the last-error slot is cleared so they do
// not surface at an unrelated call, and the caller's current device is restored.
#include <cuda_runtime_api.h>

namespace dlcb::cuda {

template <typename Release>
void release_on_device(int device, Release release) noexcept {
  int previous = 0;
  if (cudaGetDevice(&previous) == cudaSuccess) {
    if (previous == device || cudaSetDevice(device) == cudaSuccess) release();
    if (previous != device) cudaSetDevice(previous);
  }
  cudaGetLastError();
}

}  // namespace dlcb::cuda
