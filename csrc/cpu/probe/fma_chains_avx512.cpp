// FP32 FMA throughput, AVX-512: 16 independent chains of vfmadd (zmm), 16 lanes x 2 FLOP each.
//
// To keep every FMA pipe busy a core needs latency x pipes chains in flight: 4 x 1 on Zen4
// (each 512-bit FMA occupies both 256-bit pipes), 4 x 2 on Intel cores with two 512-bit FMA
// units. 16 chains cover both with room to spare and still fit the 32 zmm registers.
#include <immintrin.h>

#include "probe/probe.h"

namespace dlcb::probe {
namespace {

constexpr int kChains = 16;

float fma_chains(int64_t iterations) {
  // acc -> 0.999999 acc + 1e-7 stays normal and finite however long it runs.
  __m512 acc[kChains];
#pragma GCC unroll 16
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(1.0f + 0.01f * c);
  const __m512 mul = _mm512_set1_ps(0.999999f), add = _mm512_set1_ps(1e-7f);
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 16
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], mul, add);
  }
  __m512 sum = acc[0];
#pragma GCC unroll 16
  for (int c = 1; c < kChains; ++c) sum = _mm512_add_ps(sum, acc[c]);
  return _mm512_reduce_add_ps(sum);
}

const ThroughputKernel kFmaChains{
    "fp32", "avx512", "vfmadd231ps zmm (16 x fp32)", kChains, kChains * 16 * 2, fma_chains,
};

}  // namespace

const ThroughputKernel* fma_chains_avx512() { return &kFmaChains; }

}  // namespace dlcb::probe
