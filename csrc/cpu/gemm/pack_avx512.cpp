// AVX-512 packing of row-major A (the common, untransposed case) into 14-row micro-panels.
//
// Each k step of a packed panel holds one element of 14 different rows, so packing a row-major
// A is a transpose. Done element by element it costs more than a cycle per float, which shows
// on skinny problems (DeepBench's batch-16 GEMMs spend as long packing A as multiplying).
// Here 14 rows x 16 k steps are loaded as 14 vectors, transposed in registers (16 x 16, two
// rows of zeros), and written as 16 masked 14-float stores.
#include <immintrin.h>

#include "gemm/pack.h"
#include "gemm/pack_isa.h"
#include "gemm/transpose_avx512.h"

namespace dlcb::gemm {
namespace {

constexpr int64_t MR = 14;

void pack_full_panel_row_major(int64_t kc, const float* src, int64_t rs, float alpha, float* dst) {
  const __m512 valpha = _mm512_set1_ps(alpha);
  const __mmask16 fourteen = 0x3FFF;
  int64_t p = 0;
  for (; p + 16 <= kc; p += 16) {
    __m512 in[16], out[16];
    for (int i = 0; i < MR; ++i) in[i] = _mm512_mul_ps(valpha, _mm512_loadu_ps(src + i * rs + p));
    in[14] = in[15] = _mm512_setzero_ps();
    transpose_16x16(in, out);
    for (int q = 0; q < 16; ++q) _mm512_mask_storeu_ps(dst + (p + q) * MR, fourteen, out[q]);
  }
  for (; p < kc; ++p)
    for (int64_t i = 0; i < MR; ++i) dst[p * MR + i] = alpha * src[i * rs + p];
}

}  // namespace

void pack_a_avx512(int64_t rows, int64_t kc, const float* src, int64_t rs, int64_t cs, float alpha, float* dst) {
  if (cs != 1 || rows == 1) {
    pack_a_panels<MR>(rows, kc, src, rs, cs, alpha, dst);
    return;
  }
  for (int64_t i0 = 0; i0 < rows; i0 += MR) {
    if (rows - i0 >= MR) {
      pack_full_panel_row_major(kc, src + i0 * rs, rs, alpha, dst + i0 * kc);
    } else {
      pack_a_micro_panel<MR>(rows - i0, kc, src + i0 * rs, rs, cs, alpha, dst + i0 * kc);
    }
  }
}

}  // namespace dlcb::gemm
