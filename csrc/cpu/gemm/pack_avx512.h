#pragma once
#include <cstdint>

namespace dlcb::gemm {

// pack_a_panel<14> with a register transpose for row-major A; other layouts fall back to it.
void pack_a_panel_avx512(int64_t rows, int64_t kc, const float* src, int64_t rs, int64_t cs,
                         float alpha, float* dst);

}  // namespace dlcb::gemm
