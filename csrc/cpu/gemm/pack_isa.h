#pragma once
// Packing of row-major A with a register transpose, per ISA (pack_avx2.cpp, pack_avx512.cpp):
// the KernelSet::pack_a of those kernel sets. Other layouts fall back to pack_a_panels.
#include <cstdint>

namespace dlcb::gemm {

void pack_a_avx2(int64_t rows, int64_t kc, const float* src, int64_t rs, int64_t cs, float alpha, float* dst);
void pack_a_avx512(int64_t rows, int64_t kc, const float* src, int64_t rs, int64_t cs, float alpha, float* dst);

}  // namespace dlcb::gemm
