#pragma once
// What the CUDA runtime reports about itself, the driver and the devices. Plain C++ (no CUDA
// headers), so the Python binding is compiled by the host compiler alone. Failures throw
// std::runtime_error carrying the CUDA error name and string.
#include <cstdint>
#include <string>

namespace dlcb::cuda {

// Versions as 1000 * major + 10 * minor (13000 is CUDA 13.0).
int runtime_version();
int driver_version();  // 0 when no driver is installed

struct DeviceCount {
  int count = 0;
  std::string error;  // "cudaErrorName: description" when the runtime cannot see any device
};

// Never throws: a machine without a driver or a device is an answer, not a failure.
DeviceCount device_count();

struct DeviceProperties {
  int index = 0;
  std::string name;
  int major = 0;
  int minor = 0;
  int sm_count = 0;
  int max_sm_clock_khz = 0;
  int memory_clock_khz = 0;
  int memory_bus_width_bits = 0;
  int64_t l2_cache_bytes = 0;
  int64_t total_memory_bytes = 0;
  int64_t shared_memory_per_sm_bytes = 0;
  std::string pci_bus_id;  // domain:bus:device.function
};

DeviceProperties device_properties(int index);

// The device that owns the memory at `ptr` (a device or managed allocation); throws for host
// memory the runtime does not know.
int pointer_device(std::uintptr_t ptr);

// Waits for all work queued on the device; reports errors of kernels that already ran.
void synchronize(int index);

}  // namespace dlcb::cuda
