#pragma once
// Measured device peaks, the figures kernel results are held against besides the theoretical
// ones. Plain C++ (no CUDA headers); failures throw std::runtime_error naming the CUDA error.
#include <cstddef>
#include <string>

namespace dlcb::cuda {

struct FmaThroughput {
  double flops = 0;    // FLOP of the best run (an FMA counts 2)
  double seconds = 0;  // its event-timed duration
  double gflops = 0;
  std::string method;
};

// CUDA-core FMA throughput: dtype "float32" (FFMA) or "float16" (HFMA2, two FMAs per lane).
// Many independent FMA chains per thread on every SM, timed with events, best of a few runs
// of about 20 ms each. Throws std::invalid_argument for another dtype.
FmaThroughput fma_throughput(int device, const std::string& dtype);

struct CopyBandwidth {
  double bytes_moved = 0;  // read + written by one copy
  double seconds = 0;      // the best copy's event-timed duration
  double gbs = 0;          // 1e9 bytes/s
  std::string method;
};

// Device-to-device cudaMemcpyAsync of nbytes (0: 1 GiB or a quarter of the free memory,
// whichever is smaller), timed with events, best of a few.
CopyBandwidth copy_bandwidth(int device, std::size_t nbytes);

}  // namespace dlcb::cuda
