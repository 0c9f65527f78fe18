// AVX2 packing of A into 6-row micro-panels.
//
// Each k step of a packed panel holds one element of 6 different rows, so packing a row-major A
// is a transpose; element by element it costs more than a cycle per float, which shows on
// skinny problems where packing A is a large share of the work. Here 6 rows x 8 k steps are
// loaded as 6 vectors and transposed in registers (the standard unpack/shuffle 8 x 8 transpose,
// without the two missing rows), then each k step is written as 4 + 2 floats.
#include <immintrin.h>

#include "gemm/pack.h"
#include "gemm/pack_isa.h"

namespace dlcb::gemm {
namespace {

constexpr int64_t MR = 6;

void pack_full_panel_row_major(int64_t kc, const float* src, int64_t rs, float alpha, float* dst) {
  const __m256 valpha = _mm256_set1_ps(alpha);
  int64_t p = 0;
  for (; p + 8 <= kc; p += 8) {
    __m256 r[MR];
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) r[i] = _mm256_mul_ps(valpha, _mm256_loadu_ps(src + i * rs + p));
    // Pairs of rows interleaved, then quads: low[j] holds rows 0..3 of k steps j (128-bit lane 0)
    // and j + 4 (lane 1); rows 4 and 5 come straight from the pairs of r4, r5.
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 low[4] = {_mm256_shuffle_ps(t0, t2, 0x44), _mm256_shuffle_ps(t0, t2, 0xEE),
                           _mm256_shuffle_ps(t1, t3, 0x44), _mm256_shuffle_ps(t1, t3, 0xEE)};
    const __m256 high[2] = {t4, t5};  // rows 4, 5 of k steps 2h, 2h + 1 per lane
    float* d = dst + p * MR;
#pragma GCC unroll 8
    for (int q = 0; q < 8; ++q) {
      const int lane = q / 4, j = q % 4;
      const __m128 rows03 = lane == 0 ? _mm256_castps256_ps128(low[j]) : _mm256_extractf128_ps(low[j], 1);
      const __m128 rows45 = lane == 0 ? _mm256_castps256_ps128(high[j / 2]) : _mm256_extractf128_ps(high[j / 2], 1);
      _mm_storeu_ps(d + q * MR, rows03);
      if (j % 2 == 0) {
        _mm_storel_pi(reinterpret_cast<__m64*>(d + q * MR + 4), rows45);
      } else {
        _mm_storeh_pi(reinterpret_cast<__m64*>(d + q * MR + 4), rows45);
      }
    }
  }
  for (; p < kc; ++p)
    for (int64_t i = 0; i < MR; ++i) dst[p * MR + i] = alpha * src[i * rs + p];
}

}  // namespace

void pack_a_avx2(int64_t rows, int64_t kc, const float* src, int64_t rs, int64_t cs, float alpha, float* dst) {
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
