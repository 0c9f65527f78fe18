// BF16 dot-product throughput, AVX512_BF16: 16 independent chains of vdpbf16ps (zmm). Each
// instruction multiplies 32 pairs of bf16 and adds them, two per lane, into 16 fp32
// accumulators: 32 multiplies + 32 adds = 64 FLOP, twice an fp32 FMA of the same width.
//
// 16 chains cover its latency (about 6 cycles on Zen4) times its throughput with room to spare.
#include <immintrin.h>

#include "probe/probe.h"

namespace dlcb::probe {
namespace {

constexpr int kChains = 16;

float bf16_dot_chains(int64_t iterations) {
  // Each step adds 2 x 2^-20 per lane: after 10^10 steps an accumulator is still far from
  // overflow, and every product is a normal number.
  const __m512 x = _mm512_set1_ps(0x1p-10f);
  const __m512bh a = _mm512_cvtne2ps_pbh(x, x), b = _mm512_cvtne2ps_pbh(x, x);
  __m512 acc[kChains];
#pragma GCC unroll 16
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(static_cast<float>(c));
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 16
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_dpbf16_ps(acc[c], a, b);
  }
  __m512 sum = acc[0];
#pragma GCC unroll 16
  for (int c = 1; c < kChains; ++c) sum = _mm512_add_ps(sum, acc[c]);
  return _mm512_reduce_add_ps(sum);
}

const ThroughputKernel kBf16DotChains{
    "bf16", "avx512_bf16", "vdpbf16ps zmm (32 bf16 pairs into 16 x fp32)", kChains,
    kChains * 64, bf16_dot_chains,
};

}  // namespace

const ThroughputKernel* bf16_dot_chains_avx512() { return &kBf16DotChains; }

}  // namespace dlcb::probe
