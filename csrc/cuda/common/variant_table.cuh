#pragma once
// What the kernel families' variant registries (gemm/, conv/, rnn/registry.cu) share: looking a
// variant up by name and dtype, and the device's compute capability its support check needs.
#include <cuda_runtime_api.h>

#include <string>
#include <vector>

#include "common/check.cuh"
#include "common/dtype.h"

namespace dlcb::cuda {

// The entry of `table` (each with .info.name and .info.dtype) named `name` for `dtype`, or null
// with `*reason` saying whether the name is unknown or does not run that dtype.
template <typename Entry>
const Entry* find_variant(const std::vector<Entry>& table, const std::string& name, DType dtype,
                          const char* family, std::string* reason) {
  bool known = false;
  for (const Entry& e : table) {
    if (e.info.name != name) continue;
    known = true;
    if (e.info.dtype == dtype) return &e;
  }
  *reason = known ? "variant " + name + " does not run " + dtype_name(dtype)
                  : "unknown " + std::string(family) + " variant '" + name + "'";
  return nullptr;
}

// 10 * major + minor (90 for an H100).
inline int compute_capability(int device) {
  int major = 0, minor = 0;
  check(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device),
        "cudaDeviceGetAttribute(ComputeCapabilityMajor)");
  check(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device),
        "cudaDeviceGetAttribute(ComputeCapabilityMinor)");
  return 10 * major + minor;
}

}  // namespace dlcb::cuda
