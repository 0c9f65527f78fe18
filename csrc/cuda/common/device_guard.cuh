#pragma once
// Makes `device` current for one scope and restores the caller's device afterwards, so that
// calls into this module never change which device the rest of the program is using.
#include <cuda_runtime_api.h>

#include "common/check.cuh"

namespace dlcb::cuda {

class DeviceGuard {
 public:
  explicit DeviceGuard(int device) : device_(device) {
    check(cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ != device_) check(cudaSetDevice(device_), "cudaSetDevice");
  }
  ~DeviceGuard() {
    if (previous_ != device_) cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int device_;
  int previous_ = 0;
};

}  // namespace dlcb::cuda
