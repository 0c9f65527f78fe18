// Owned non-blocking stream (see stream.h).
#include <cuda_runtime_api.h>

#include "common/check.cuh"
#include "common/device_guard.cuh"
#include "timing/release_on_device.cuh"
#include "timing/stream.h"

namespace dlcb::cuda {

Stream::Stream(int device) : device_(device) {
  DeviceGuard guard(device);
  cudaStream_t s = nullptr;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  handle_ = reinterpret_cast<std::uintptr_t>(s);
}

Stream::~Stream() {
  const auto s = reinterpret_cast<cudaStream_t>(handle_);
  release_on_device(device_, [s] { cudaStreamDestroy(s); });
}

void Stream::synchronize() const {
  DeviceGuard guard(device_);
  check(cudaStreamSynchronize(reinterpret_cast<cudaStream_t>(handle_)), "cudaStreamSynchronize");
}

}  // namespace dlcb::cuda
