// AVX-512 halves of the padded shifted-window forward (see shifted.h).
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "conv/shifted.h"
#include "gemm/transpose_avx512.h"

namespace dlcb::conv {

void pack_shifted_a_avx512(const void* ctx, int64_t k0, int64_t kc, int64_t i0, int64_t rows, int64_t mr,
                           float* dst) {
  const ShiftedWindow& win = *static_cast<const ShiftedWindow*>(ctx);
  const float* base = win.xp + win.first + i0;
  const int64_t* off = win.off + k0;
  // Masked loads never touch the pixels past `rows` (zeros instead); every tap but the last is
  // stored whole (16 floats), its two extra lanes overwritten by the next tap's store.
  const __mmask16 load = static_cast<__mmask16>((1u << rows) - 1);
  const __mmask16 last = static_cast<__mmask16>((1u << mr) - 1);
  int64_t p = 0;
  for (; p + 4 < kc; p += 4) {
    const __m512 v0 = _mm512_maskz_loadu_ps(load, base + off[p]);
    const __m512 v1 = _mm512_maskz_loadu_ps(load, base + off[p + 1]);
    const __m512 v2 = _mm512_maskz_loadu_ps(load, base + off[p + 2]);
    const __m512 v3 = _mm512_maskz_loadu_ps(load, base + off[p + 3]);
    _mm512_storeu_ps(dst + p * mr, v0);
    _mm512_storeu_ps(dst + (p + 1) * mr, v1);
    _mm512_storeu_ps(dst + (p + 2) * mr, v2);
    _mm512_storeu_ps(dst + (p + 3) * mr, v3);
  }
  for (; p + 1 < kc; ++p) _mm512_storeu_ps(dst + p * mr, _mm512_maskz_loadu_ps(load, base + off[p]));
  _mm512_mask_storeu_ps(dst + p * mr, last, _mm512_maskz_loadu_ps(load, base + off[p]));
}

void store_transposed_avx512(const float* ct, int64_t ldc, int64_t kn, int64_t cols, float* y, int64_t ldy) {
  for (int64_t j0 = 0; j0 < cols; j0 += 16) {
    const int64_t nj = std::min<int64_t>(16, cols - j0);
    const __mmask16 jm = static_cast<__mmask16>((1u << nj) - 1);
    for (int64_t k0 = 0; k0 < kn; k0 += 16) {
      const int64_t nk = std::min<int64_t>(16, kn - k0);
      const __mmask16 km = static_cast<__mmask16>((1u << nk) - 1);
      __m512 rows[16], out[16];
      for (int i = 0; i < 16; ++i)
        rows[i] = i < nj ? _mm512_maskz_loadu_ps(km, ct + (j0 + i) * ldc + k0) : _mm512_setzero_ps();
      gemm::transpose_16x16(rows, out);
      if (nj == 16) {
        for (int c = 0; c < nk; ++c) _mm512_storeu_ps(y + (k0 + c) * ldy + j0, out[c]);
      } else {
        for (int c = 0; c < nk; ++c) _mm512_mask_storeu_ps(y + (k0 + c) * ldy + j0, jm, out[c]);
      }
    }
  }
}

void pack_shifted_bt_avx512(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t cols, int64_t nr,
                            float* dst) {
  if (nr != 32) return pack_shifted_bt(ctx, k0, kc, j0, cols, nr, dst);
  const ShiftedWindow& win = *static_cast<const ShiftedWindow*>(ctx);
  const float* base = win.xp + win.first + k0;
  const int64_t* off = win.off + j0;
  // 16 pixels of 16 taps: one load per tap (masked for a last partial block, which must not
  // read past the grid), a register transpose, one 16-float store per pixel.
  for (int64_t pb = 0; pb < kc; pb += 16) {
    const int64_t len = std::min<int64_t>(16, kc - pb);
    const __mmask16 m = static_cast<__mmask16>((1u << len) - 1);
    for (int64_t jb = 0; jb < 32; jb += 16) {
      __m512 in[16], out[16];
      for (int64_t jj = 0; jj < 16; ++jj)
        in[jj] = jb + jj < cols ? _mm512_maskz_loadu_ps(m, base + off[jb + jj] + pb) : _mm512_setzero_ps();
      gemm::transpose_16x16(in, out);
      for (int64_t t = 0; t < len; ++t) _mm512_storeu_ps(dst + (pb + t) * 32 + jb, out[t]);
    }
  }
}

}  // namespace dlcb::conv
