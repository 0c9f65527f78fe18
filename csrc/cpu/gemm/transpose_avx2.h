#pragma once
// 8 x 8 float transpose in ymm registers, shared by the AVX2 packing routines (include only from
// *_avx2.cpp files).
#include <immintrin.h>

namespace dlcb::gemm {

// rows[i] (8 floats each) -> cols[c] = {rows[0][c], ..., rows[7][c]}.
inline void transpose_8x8(const __m256 rows[8], __m256 cols[8]) {
  __m256 pairs[8], quads[8];
  for (int i = 0; i < 4; ++i) {
    pairs[2 * i] = _mm256_unpacklo_ps(rows[2 * i], rows[2 * i + 1]);
    pairs[2 * i + 1] = _mm256_unpackhi_ps(rows[2 * i], rows[2 * i + 1]);
  }
  // quads[4g + j], 128-bit lane L: rows 4g..4g+3 of column 4L + j.
  for (int g = 0; g < 2; ++g) {
    quads[4 * g + 0] = _mm256_shuffle_ps(pairs[4 * g], pairs[4 * g + 2], 0x44);
    quads[4 * g + 1] = _mm256_shuffle_ps(pairs[4 * g], pairs[4 * g + 2], 0xEE);
    quads[4 * g + 2] = _mm256_shuffle_ps(pairs[4 * g + 1], pairs[4 * g + 3], 0x44);
    quads[4 * g + 3] = _mm256_shuffle_ps(pairs[4 * g + 1], pairs[4 * g + 3], 0xEE);
  }
  for (int j = 0; j < 4; ++j) {
    cols[j] = _mm256_permute2f128_ps(quads[j], quads[4 + j], 0x20);
    cols[4 + j] = _mm256_permute2f128_ps(quads[j], quads[4 + j], 0x31);
  }
}

}  // namespace dlcb::gemm
