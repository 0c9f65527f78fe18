// AVX2 halves of the padded shifted-window forward (see shifted.h): the AVX-512 ones
// (shifted_avx512.cpp) with 8-lane vectors.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "conv/shifted.h"
#include "gemm/transpose_avx2.h"

namespace dlcb::conv {
namespace {

// Lanes l < n, as the sign masks vmaskmovps reads.
inline __m256i first_lanes(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(std::clamp<int64_t>(n, 0, 8))),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

}  // namespace

void pack_shifted_a_avx2(const void* ctx, int64_t k0, int64_t kc, int64_t i0, int64_t rows, int64_t mr, float* dst) {
  const ShiftedWindow& win = *static_cast<const ShiftedWindow*>(ctx);
  const float* base = win.xp + win.first + i0;
  const int64_t* off = win.off + k0;
  // Masked loads never touch the pixels past `rows` (zeros instead); every tap but the last is
  // stored whole (8 floats), its extra lanes overwritten by the next tap's store.
  const __m256i load = first_lanes(rows), last = first_lanes(mr);
  int64_t p = 0;
  for (; p + 4 < kc; p += 4) {
    const __m256 v0 = _mm256_maskload_ps(base + off[p], load);
    const __m256 v1 = _mm256_maskload_ps(base + off[p + 1], load);
    const __m256 v2 = _mm256_maskload_ps(base + off[p + 2], load);
    const __m256 v3 = _mm256_maskload_ps(base + off[p + 3], load);
    _mm256_storeu_ps(dst + p * mr, v0);
    _mm256_storeu_ps(dst + (p + 1) * mr, v1);
    _mm256_storeu_ps(dst + (p + 2) * mr, v2);
    _mm256_storeu_ps(dst + (p + 3) * mr, v3);
  }
  for (; p + 1 < kc; ++p) _mm256_storeu_ps(dst + p * mr, _mm256_maskload_ps(base + off[p], load));
  _mm256_maskstore_ps(dst + p * mr, last, _mm256_maskload_ps(base + off[p], load));
}

void store_transposed_avx2(const float* ct, int64_t ldc, int64_t kn, int64_t cols, float* y, int64_t ldy) {
  for (int64_t j0 = 0; j0 < cols; j0 += 8) {
    const int64_t nj = std::min<int64_t>(8, cols - j0);
    const __m256i jm = first_lanes(nj);
    for (int64_t k0 = 0; k0 < kn; k0 += 8) {
      const int64_t nk = std::min<int64_t>(8, kn - k0);
      const __m256i km = first_lanes(nk);
      __m256 rows[8], out[8];
      for (int i = 0; i < 8; ++i)
        rows[i] = i < nj ? _mm256_maskload_ps(ct + (j0 + i) * ldc + k0, km) : _mm256_setzero_ps();
      gemm::transpose_8x8(rows, out);
      if (nj == 8) {
        for (int c = 0; c < nk; ++c) _mm256_storeu_ps(y + (k0 + c) * ldy + j0, out[c]);
      } else {
        for (int c = 0; c < nk; ++c) _mm256_maskstore_ps(y + (k0 + c) * ldy + j0, jm, out[c]);
      }
    }
  }
}

void pack_shifted_bt_avx2(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t cols, int64_t nr,
                          float* dst) {
  if (nr != 16) return pack_shifted_bt(ctx, k0, kc, j0, cols, nr, dst);
  const ShiftedWindow& win = *static_cast<const ShiftedWindow*>(ctx);
  const float* base = win.xp + win.first + k0;
  const int64_t* off = win.off + j0;
  // 8 pixels of 8 taps: one load per tap (a masked one for a last partial block, which must not
  // read past the grid), a register transpose, one 8-float store per pixel.
  for (int64_t pb = 0; pb < kc; pb += 8) {
    const int64_t len = std::min<int64_t>(8, kc - pb);
    const __m256i m = first_lanes(len);
    for (int64_t jb = 0; jb < 16; jb += 8) {
      __m256 in[8], out[8];
      for (int64_t jj = 0; jj < 8; ++jj) {
        const float* src = base + pb + (jb + jj < cols ? off[jb + jj] : 0);
        in[jj] = jb + jj >= cols ? _mm256_setzero_ps() : len == 8 ? _mm256_loadu_ps(src) : _mm256_maskload_ps(src, m);
      }
      gemm::transpose_8x8(in, out);
      for (int64_t t = 0; t < len; ++t) _mm256_storeu_ps(dst + (pb + t) * 16 + jb, out[t]);
    }
  }
}

}  // namespace dlcb::conv
