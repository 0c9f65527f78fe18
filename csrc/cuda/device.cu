// Runtime, driver and device queries (see device.h).
#include <cuda_runtime_api.h>

#include "common/check.cuh"
#include "common/device_guard.cuh"
#include "device.h"

#include <stdexcept>

namespace dlcb::cuda {

int runtime_version() {
  int v = 0;
  check(cudaRuntimeGetVersion(&v), "cudaRuntimeGetVersion");
  return v;
}

int driver_version() {
  int v = 0;
  check(cudaDriverGetVersion(&v), "cudaDriverGetVersion");
  return v;
}

DeviceCount device_count() {
  DeviceCount r;
  const cudaError_t e = cudaGetDeviceCount(&r.count);
  if (e != cudaSuccess) {
    cudaGetLastError();
    r.count = 0;
    r.error = error_text(e);
  }
  return r;
}

namespace {

int attribute(cudaDeviceAttr attr, int index, const char* what) {
  int v = 0;
  check(cudaDeviceGetAttribute(&v, attr, index), what);
  return v;
}

}  // namespace

DeviceProperties device_properties(int index) {
  cudaDeviceProp p{};
  check(cudaGetDeviceProperties(&p, index), "cudaGetDeviceProperties");
  DeviceProperties d;
  d.index = index;
  d.name = p.name;
  d.major = p.major;
  d.minor = p.minor;
  d.sm_count = p.multiProcessorCount;
  // CUDA 13 dropped clockRate and memoryClockRate from cudaDeviceProp; the attributes remain.
  d.max_sm_clock_khz = attribute(cudaDevAttrClockRate, index, "cudaDeviceGetAttribute(ClockRate)");
  d.memory_clock_khz =
      attribute(cudaDevAttrMemoryClockRate, index, "cudaDeviceGetAttribute(MemoryClockRate)");
  d.memory_bus_width_bits = p.memoryBusWidth;
  d.l2_cache_bytes = p.l2CacheSize;
  d.total_memory_bytes = static_cast<int64_t>(p.totalGlobalMem);
  d.shared_memory_per_sm_bytes = static_cast<int64_t>(p.sharedMemPerMultiprocessor);
  char bus_id[32] = {};
  check(cudaDeviceGetPCIBusId(bus_id, sizeof bus_id, index), "cudaDeviceGetPCIBusId");
  d.pci_bus_id = bus_id;
  return d;
}

int pointer_device(std::uintptr_t ptr) {
  cudaPointerAttributes attributes{};
  check(cudaPointerGetAttributes(&attributes, reinterpret_cast<const void*>(ptr)),
        "cudaPointerGetAttributes");
  if (attributes.type != cudaMemoryTypeDevice && attributes.type != cudaMemoryTypeManaged)
    throw std::runtime_error("the pointer is not device memory");
  return attributes.device;
}

void synchronize(int index) {
  DeviceGuard guard(index);
  check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
}

}  // namespace dlcb::cuda
