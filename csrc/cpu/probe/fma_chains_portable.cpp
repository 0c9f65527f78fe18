// FP32 multiply-add throughput in plain C++, for CPUs without AVX2 (and other architectures):
// 12 independent chains of 4-float lanes, which the compiler vectorizes with whatever the
// baseline target offers. On x86-64 that is SSE2, which has no FMA: each step is a multiply
// and a dependent add, still counted as 2 FLOP per lane. On aarch64 it is a fused NEON fmla.
#include "probe/probe.h"

namespace dlcb::probe {
namespace {

constexpr int kChains = 12;
constexpr int kLanes = 4;

float multiply_add_chains(int64_t iterations) {
  // acc -> 0.999999 acc + 1e-7 stays normal and finite however long it runs.
  float acc[kChains][kLanes];
  for (int c = 0; c < kChains; ++c)
    for (int l = 0; l < kLanes; ++l) acc[c][l] = 1.0f + 0.01f * c + 0.001f * l;
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 12
    for (int c = 0; c < kChains; ++c) {
#pragma GCC unroll 4
      for (int l = 0; l < kLanes; ++l) acc[c][l] = acc[c][l] * 0.999999f + 1e-7f;
    }
  }
  float total = 0.0f;
  for (const auto& chain : acc)
    for (float v : chain) total += v;
  return total;
}

const ThroughputKernel kMultiplyAddChains{
    "fp32", "portable", "a * b + c on 4-float lanes (compiler-vectorized for the baseline target)",
    kChains, kChains * kLanes * 2, multiply_add_chains,
};

}  // namespace

const ThroughputKernel& fma_chains_portable() { return kMultiplyAddChains; }

}  // namespace dlcb::probe
