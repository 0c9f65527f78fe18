// AVX-512 packing of row-major A (the common, untransposed case) into 14-row micro-panels.
//
// Each k step of a packed panel holds one element of 14 different rows, so packing a row-major
// A is a transpose. Done element by element it costs more than a cycle per float, which shows
// on skinny problems (DeepBench's batch-16 GEMMs spend as long packing A as multiplying).
// Here 14 rows x 16 k steps are loaded as 14 vectors, transposed in registers (16 x 16, two
// rows of zeros), and written as 16 masked 14-float stores.
#include <immintrin.h>

#include "gemm/pack.h"
#include "gemm/pack_avx512.h"

namespace dlcb::gemm {
namespace {

constexpr int64_t MR = 14;

// rows[i] (16 floats each) -> cols[c] = {rows[0][c], ..., rows[15][c]}.
inline void transpose_16x16(__m512 rows[16], __m512 cols[16]) {
  __m512 pairs[16];
  for (int i = 0; i < 8; ++i) {
    pairs[2 * i] = _mm512_unpacklo_ps(rows[2 * i], rows[2 * i + 1]);
    pairs[2 * i + 1] = _mm512_unpackhi_ps(rows[2 * i], rows[2 * i + 1]);
  }
  // quads[4g + j], 128-bit lane L: rows 4g..4g+3 of column 4L + j.
  __m512 quads[16];
  for (int g = 0; g < 4; ++g) {
    const __m512d lo = _mm512_castps_pd(pairs[4 * g]), lo2 = _mm512_castps_pd(pairs[4 * g + 2]);
    const __m512d hi = _mm512_castps_pd(pairs[4 * g + 1]), hi2 = _mm512_castps_pd(pairs[4 * g + 3]);
    quads[4 * g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo, lo2));
    quads[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo, lo2));
    quads[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(hi, hi2));
    quads[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(hi, hi2));
  }
  // Gather lane L of the four row groups into column 4L + j.
  for (int j = 0; j < 4; ++j) {
    const __m512 even01 = _mm512_shuffle_f32x4(quads[j], quads[4 + j], 0x88);   // L0,L2 | L0,L2
    const __m512 odd01 = _mm512_shuffle_f32x4(quads[j], quads[4 + j], 0xDD);    // L1,L3 | L1,L3
    const __m512 even23 = _mm512_shuffle_f32x4(quads[8 + j], quads[12 + j], 0x88);
    const __m512 odd23 = _mm512_shuffle_f32x4(quads[8 + j], quads[12 + j], 0xDD);
    cols[0 + j] = _mm512_shuffle_f32x4(even01, even23, 0x88);
    cols[8 + j] = _mm512_shuffle_f32x4(even01, even23, 0xDD);
    cols[4 + j] = _mm512_shuffle_f32x4(odd01, odd23, 0x88);
    cols[12 + j] = _mm512_shuffle_f32x4(odd01, odd23, 0xDD);
  }
}

}  // namespace

void pack_a_panel_avx512(int64_t rows, int64_t kc, const float* src, int64_t rs, int64_t cs,
                         float alpha, float* dst) {
  if (cs != 1 || rows != MR) {
    pack_a_panel<MR>(rows, kc, src, rs, cs, alpha, dst);
    return;
  }
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

}  // namespace dlcb::gemm
