// FP32 FMA throughput, AVX2: 12 independent chains of vfmadd (ymm), 8 lanes x 2 FLOP each.
//
// Two 256-bit FMA pipes with a latency of 4 (Zen 2-4, Skylake) or 5 (Haswell) need 8 to 10
// chains in flight; 12 covers them and leaves 4 of the 16 ymm registers for the constants.
#include <immintrin.h>

#include "probe/probe.h"

namespace dlcb::probe {
namespace {

constexpr int kChains = 12;

float fma_chains(int64_t iterations) {
  // acc -> 0.999999 acc + 1e-7 stays normal and finite however long it runs.
  __m256 acc[kChains];
#pragma GCC unroll 12
  for (int c = 0; c < kChains; ++c) acc[c] = _mm256_set1_ps(1.0f + 0.01f * c);
  const __m256 mul = _mm256_set1_ps(0.999999f), add = _mm256_set1_ps(1e-7f);
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 12
    for (int c = 0; c < kChains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], mul, add);
  }
  __m256 sum = acc[0];
#pragma GCC unroll 12
  for (int c = 1; c < kChains; ++c) sum = _mm256_add_ps(sum, acc[c]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, sum);
  float total = 0.0f;
  for (float v : lanes) total += v;
  return total;
}

const ThroughputKernel kFmaChains{
    "fp32", "avx2", "vfmadd231ps ymm (8 x fp32)", kChains, kChains * 8 * 2, fma_chains,
};

}  // namespace

const ThroughputKernel* fma_chains_avx2() { return &kFmaChains; }

}  // namespace dlcb::probe
