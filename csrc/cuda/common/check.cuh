#pragma once
// CUDA errors become C++ exceptions (which pybind11 turns into RuntimeError) instead of aborts.
#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>

namespace dlcb::cuda {

inline std::string error_text(cudaError_t e) {
  return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
}

inline void check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return;
  // Clear the runtime's last-error slot, or the next launch check would report this error again.
  cudaGetLastError();
  throw std::runtime_error(std::string(what) + " failed: " + error_text(e));
}

}  // namespace dlcb::cuda
