// FMA latency: a single chain of dependent scalar FMAs (vfmadd231ss), each waiting for the last.
// Time per FMA is the latency in nanoseconds; with the latency in cycles known for the core
// (4 on Zen 2-4 and Intel Skylake onwards) it gives a second reading of the clock.
#include <immintrin.h>

#include "probe/probe.h"

namespace dlcb::probe {
namespace {

float fma_latency_chain(int64_t iterations) {
  // x -> 0.999999 x + 1e-7 converges to 0.1: no overflow, no denormals, however long it runs.
  __m128 x = _mm_set_ss(1.0f);
  const __m128 mul = _mm_set_ss(0.999999f), add = _mm_set_ss(1e-7f);
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 16
    for (int k = 0; k < kFmasPerIteration; ++k) x = _mm_fmadd_ss(x, mul, add);
  }
  return _mm_cvtss_f32(x);
}

}  // namespace

ChainFn fma_latency_chain_avx2() { return fma_latency_chain; }

}  // namespace dlcb::probe
