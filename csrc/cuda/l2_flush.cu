// L2 flush (see l2_flush.h): a grid-stride kernel stores zeros over a buffer twice the L2 size.
// Global stores go through the L2 and take lines there, so the lines the timed kernel left
// behind are evicted (written back first if dirty, which the flush, not the timed run, pays for).
#include <cuda_runtime.h>

#include <algorithm>

#include "common/check.cuh"
#include "common/device_guard.cuh"
#include "l2_flush.h"

namespace dlcb::cuda {

namespace {

constexpr int kThreads = 256;
constexpr std::size_t kWord = sizeof(uint4);  // 16-byte stores: full-width, fewest instructions

__global__ void overwrite(uint4* words, std::size_t n) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride)
    words[i] = make_uint4(0, 0, 0, 0);
}

}  // namespace

L2Flusher::L2Flusher(int device, std::size_t nbytes) : device_(device) {
  DeviceGuard guard(device);
  int l2_bytes = 0, sm_count = 0;
  check(cudaDeviceGetAttribute(&l2_bytes, cudaDevAttrL2CacheSize, device),
        "cudaDeviceGetAttribute(L2CacheSize)");
  check(cudaDeviceGetAttribute(&sm_count, cudaDevAttrMultiProcessorCount, device),
        "cudaDeviceGetAttribute(MultiProcessorCount)");
  if (nbytes == 0) nbytes = 2 * static_cast<std::size_t>(l2_bytes);
  if (nbytes == 0) throw std::runtime_error("the device reports no L2 cache: pass nbytes > 0");
  nbytes_ = (nbytes + kWord - 1) / kWord * kWord;
  // A few blocks per SM keep every SM storing; the grid-stride loop covers the rest.
  const std::size_t words = nbytes_ / kWord;
  blocks_ = static_cast<int>(std::min<std::size_t>(4 * static_cast<std::size_t>(sm_count),
                                                   (words + kThreads - 1) / kThreads));
  check(cudaMalloc(&buffer_, nbytes_), "cudaMalloc");
}

L2Flusher::~L2Flusher() {
  // A destructor must not throw: errors here (the runtime already shut down at exit, say) are
  // dropped, and the last-error slot is cleared so that they do not surface elsewhere.
  int previous = 0;
  if (cudaGetDevice(&previous) == cudaSuccess) {
    if (previous == device_ || cudaSetDevice(device_) == cudaSuccess) cudaFree(buffer_);
    if (previous != device_) cudaSetDevice(previous);
  }
  cudaGetLastError();
}

void L2Flusher::flush(std::uintptr_t stream) const {
  DeviceGuard guard(device_);
  overwrite<<<blocks_, kThreads, 0, reinterpret_cast<cudaStream_t>(stream)>>>(
      static_cast<uint4*>(buffer_), nbytes_ / kWord);
  check(cudaGetLastError(), "L2 flush kernel launch");
}

}  // namespace dlcb::cuda
