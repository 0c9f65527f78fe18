// Device-to-device copy bandwidth (see probe.h). The copy engine path cudaMemcpyAsync takes for
// device memory reads every byte once and writes it once, so one copy of n bytes moves 2n.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <string>

#include "common/check.cuh"
#include "common/device_guard.cuh"
#include "probe/probe.h"
#include "timing/event_timer.h"
#include "timing/release_on_device.cuh"
#include "timing/spin.h"
#include "timing/stream.h"

namespace dlcb::cuda {

namespace {

constexpr std::size_t kGiB = std::size_t{1} << 30;
constexpr int kRuns = 10;
// Head start before each start event: longer than queueing the copy, so the stream is busy
// from the start event on and the interval holds no host launch gap.
constexpr double kHeadStartSeconds = 50e-6;

class DeviceBuffer {
 public:
  DeviceBuffer(int device, std::size_t nbytes) : device_(device) {
    check(cudaMalloc(&data_, nbytes), "cudaMalloc");
  }
  ~DeviceBuffer() {
    void* data = data_;
    release_on_device(device_, [data] { cudaFree(data); });
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* data() const { return data_; }

 private:
  int device_;
  void* data_ = nullptr;
};

}  // namespace

CopyBandwidth copy_bandwidth(int device, std::size_t nbytes) {
  DeviceGuard guard(device);
  if (nbytes == 0) {
    std::size_t free_bytes = 0, total_bytes = 0;
    check(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");
    nbytes = std::max<std::size_t>(std::min(kGiB, free_bytes / 4), 1);
  }
  const DeviceBuffer source(device, nbytes), destination(device, nbytes);
  const Stream stream(device);
  EventTimer timer(device);
  const auto s = reinterpret_cast<cudaStream_t>(stream.handle());
  // Defined contents, and a first copy that pays for any one-time setup outside the timed runs.
  check(cudaMemsetAsync(source.data(), 1, nbytes, s), "cudaMemsetAsync");
  check(cudaMemcpyAsync(destination.data(), source.data(), nbytes, cudaMemcpyDeviceToDevice, s),
        "cudaMemcpyAsync");
  double best = 0;
  for (int run = 0; run < kRuns; ++run) {
    spin(device, stream.handle(), kHeadStartSeconds);
    timer.start(stream.handle());
    check(cudaMemcpyAsync(destination.data(), source.data(), nbytes, cudaMemcpyDeviceToDevice, s),
          "cudaMemcpyAsync");
    timer.stop(stream.handle());
    const double seconds = timer.elapsed();
    if (run == 0 || seconds < best) best = seconds;
  }
  CopyBandwidth r;
  r.bytes_moved = 2.0 * static_cast<double>(nbytes);
  r.seconds = best;
  r.gbs = r.bytes_moved / best * 1e-9;
  r.method = "device-to-device cudaMemcpyAsync of " + std::to_string(nbytes) + " bytes (" +
             std::to_string(nbytes >> 20) + " MiB); bytes moved = 2 x size (read + write); " +
             "CUDA events after a 50 us spin kernel, best of " + std::to_string(kRuns) +
             " copies; GB/s = 1e9 bytes/s";
  return r;
}

}  // namespace dlcb::cuda
