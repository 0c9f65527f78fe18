#pragma once
// 16 x 16 float transpose in zmm registers, shared by the AVX-512 packing routines (include only
// from *_avx512.cpp files).
#include <immintrin.h>

namespace dlcb::gemm {

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

}  // namespace dlcb::gemm
