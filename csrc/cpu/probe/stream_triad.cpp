// STREAM-style triad, a[i] = b[i] + s * c[i], over arrays far larger than the last-level cache:
// sustained memory bandwidth. Bytes are counted as STREAM counts them, 3 arrays x 4 bytes per
// element; the write-allocate read of a[] that most CPUs also perform is not counted.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <limits>
#include <memory>
#include <new>
#include <stdexcept>

#include "probe/probe.h"

namespace dlcb::probe {
namespace {

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};
using FloatBuffer = std::unique_ptr<float, FreeDeleter>;

// Not initialized here: the pages are first touched by the threads that use them later.
FloatBuffer allocate_untouched(int64_t floats) {
  const size_t bytes = (static_cast<size_t>(floats) * sizeof(float) + 63) / 64 * 64;
  FloatBuffer p(static_cast<float*>(std::aligned_alloc(64, bytes)));
  if (!p) throw std::bad_alloc();
  return p;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

TriadTiming stream_triad(int threads, int64_t n, int repeats) {
  FloatBuffer a_buf = allocate_untouched(n), b_buf = allocate_untouched(n), c_buf = allocate_untouched(n);
  float* const a = a_buf.get();
  float* const b = b_buf.get();
  float* const c = c_buf.get();
  const float s = 3.0f;

  // First touch with the same static schedule as the timed loop, so on a NUMA machine every
  // page sits on the node of the thread that streams it.
  int team = 1;
#pragma omp parallel num_threads(threads)
  {
#pragma omp master
    team = omp_get_num_threads();
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      a[i] = 0.0f;
      b[i] = 1.0f;
      c[i] = 2.0f;
    }
  }

  double best = std::numeric_limits<double>::infinity();
  for (int r = 0; r < repeats; ++r) {
    const double start = now_seconds();
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; ++i) a[i] = b[i] + s * c[i];
    best = std::min(best, now_seconds() - start);
  }
  // Reading the result back keeps the stores live and checks the loop did what it claims.
  if (a[0] != 1.0f + s * 2.0f || a[n - 1] != 1.0f + s * 2.0f)
    throw std::runtime_error("stream triad produced a wrong result");
  return TriadTiming{team, n, 3.0 * sizeof(float) * static_cast<double>(n), best};
}

}  // namespace dlcb::probe
