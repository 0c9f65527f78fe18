// AVX-512 forward im2col panel packing (nr = 32: two zmm per panel row).
//
// The 32 panel columns are output pixels; they fall into a few runs along output rows, and the
// run list is the same for every panel row (filter tap), so it is built once per panel. Each
// tap then fills each 16-column half with one masked load per run (unit stride: consecutive
// input columns), two loads and a permute (stride 2) or one masked gather (larger strides); the mask drops padding columns, whose
// addresses are never touched, and zero fill comes free with the zeroed register. The generic
// version issues a few small memcpy/memset calls per row, which cost as much as the arithmetic
// on narrow M.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "conv/im2col.h"

namespace dlcb::conv {
namespace {

constexpr int64_t NR = 32;

struct Run {
  int64_t j, len, oh, ow;  // panel columns j .. j+len-1 are pixels (oh, ow .. ow+len-1)
  const float* x;          // the run's image
};

// Bits [lo, hi) of a 16-bit mask (0 <= lo, hi <= 16).
inline __mmask16 bits(int64_t lo, int64_t hi) {
  lo = std::clamp<int64_t>(lo, 0, 16);
  hi = std::clamp<int64_t>(hi, 0, 16);
  if (hi <= lo) return 0;
  const uint32_t upto_hi = hi == 16 ? 0xFFFFu : (1u << hi) - 1, below_lo = (1u << lo) - 1;
  return static_cast<__mmask16>(upto_hi & ~below_lo);
}

inline const float* offset(const float* base, int64_t elements) {
  // Masked-off lanes may lie outside the image; compute the address without pointer arithmetic
  // on an out-of-range pointer.
  return reinterpret_cast<const float*>(reinterpret_cast<uintptr_t>(base) + elements * 4);
}

}  // namespace

void pack_im2col_avx512(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t cols, int64_t nr, float* dst) {
  const ImageWindow& g = *static_cast<const ImageWindow*>(ctx);
  const int64_t sw = g.stride_w;
  // 32-bit gather indices must not overflow: (column + 32) * stride + tap offset.
  const bool indices_fit = sw * (g.w + 64) + g.dil_w * g.s + g.pad_w < (int64_t{1} << 30);
  if (nr != NR || (sw != 1 && !indices_fit)) {
    pack_im2col(ctx, k0, kc, j0, cols, nr, dst);
    return;
  }
  Run runs[NR + 1];
  int nruns = 0;
  const int64_t pq = g.p * g.q;
  for (int64_t j = 0, n = j0 / pq, oh = (j0 % pq) / g.q, ow = j0 % g.q; j < cols; ow = 0) {
    const int64_t len = std::min(cols - j, g.q - ow);
    runs[nruns++] = {j, len, oh, ow, g.x + n * g.image_stride};
    j += len;
    if (++oh == g.p) {
      oh = 0;
      ++n;
    }
  }
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i vsw = _mm512_set1_epi32(static_cast<int32_t>(sw));
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const int64_t rs = g.r * g.s, plane = g.h * g.w;
  int64_t c = k0 / rs, r = (k0 % rs) / g.s, s = k0 % g.s;
  for (int64_t p = 0; p < kc; ++p) {
    const int64_t ih_off = r * g.dil_h - g.pad_h, iw_off = s * g.dil_w - g.pad_w;
    __m512 out[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int u = 0; u < nruns; ++u) {
      const Run& run = runs[u];
      const int64_t ih = run.oh * g.stride_h + ih_off;
      if (ih < 0 || ih >= g.h) continue;
      const float* row = run.x + c * plane + ih * g.w;
      const int64_t iw0 = run.ow * sw + iw_off;  // input column of the run's first pixel
      // Pixels t of the run with 0 <= iw0 + t * sw < w.
      const int64_t lo = iw0 >= 0 ? 0 : (-iw0 + sw - 1) / sw;
      const int64_t hi = g.w - iw0 <= 0 ? 0 : std::min(run.len, (g.w - iw0 + sw - 1) / sw);
      for (int v = 0; v < 2; ++v) {
        // Lane l of half v is panel column 16 v + l, pixel t = 16 v + l - run.j of the run;
        // lanes a .. b-1 hold the run's pixels inside the image.
        const int64_t a = std::clamp<int64_t>(run.j + lo - 16 * v, 0, 16);
        const int64_t b = std::clamp<int64_t>(run.j + hi - 16 * v, 0, 16);
        if (b <= a) continue;
        const __mmask16 m = bits(a, b);
        const int64_t src0 = iw0 + 2 * (16 * v - run.j);  // stride 2: lane l reads src0 + 2 l
        if (sw == 1) {
          out[v] = _mm512_mask_loadu_ps(out[v], m, offset(row, iw0 + 16 * v - run.j));
        } else if (sw == 2) {
          // Two contiguous loads cover source elements 2a .. 2b-2 (the odd ones between lie in
          // the row too) and a permute keeps the even ones: cheaper than a 16-element gather.
          const __m512 lo_half = _mm512_maskz_loadu_ps(bits(2 * a, 2 * b - 1), offset(row, src0));
          const __m512 hi_half = _mm512_maskz_loadu_ps(bits(2 * a - 16, 2 * b - 17), offset(row, src0 + 16));
          out[v] = _mm512_mask_mov_ps(out[v], m, _mm512_permutex2var_ps(lo_half, even, hi_half));
        } else {
          const __m512i t = _mm512_add_epi32(lane, _mm512_set1_epi32(static_cast<int32_t>(16 * v - run.j)));
          const __m512i idx = _mm512_add_epi32(_mm512_mullo_epi32(t, vsw), _mm512_set1_epi32(static_cast<int32_t>(iw0)));
          out[v] = _mm512_mask_i32gather_ps(out[v], m, idx, row, 4);
        }
      }
    }
    _mm512_storeu_ps(dst + p * NR, out[0]);
    _mm512_storeu_ps(dst + p * NR + 16, out[1]);
    if (++s == g.s) {
      s = 0;
      if (++r == g.r) {
        r = 0;
        ++c;
      }
    }
  }
}

}  // namespace dlcb::conv
