// AVX-512 im2col panel packing (nr = 32), forward and transposed.
//
// Panel columns (forward) or rows (transposed) are consecutive output pixels; they fall into a
// few runs along output rows (and images), and the run list is the same for every filter tap,
// so it is built once per block of 16 or 32 pixels. One tap's 16 pixels then fill a zmm with
// one masked load per run (unit stride: consecutive input columns), two loads and a permute
// (stride 2) or a masked gather (larger strides). The mask drops padding, whose addresses are
// never touched; zeros come free with the zeroed register. The generic version issues small
// memcpy/memset calls (forward) or scalar stores nr apart (transposed) per element row, which
// cost as much as the arithmetic when the GEMM has few rows.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "conv/im2col.h"
#include "gemm/transpose_avx512.h"

namespace dlcb::conv {
namespace {

constexpr int64_t NR = 32;

struct Run {
  int64_t j, len, oh, ow;  // pixels j .. j+len-1 of the block are (oh, ow .. ow+len-1)
  const float* x;          // the run's image
};

// Bits [lo, hi) of a 16-bit mask.
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

// 32-bit gather indices must not overflow: (column + 32) * stride + tap offset.
inline bool indices_fit(const ImageWindow& g) {
  return g.stride_w * (g.w + 64) + g.dil_w * g.s + g.pad_w < (int64_t{1} << 30);
}

// Pixels j0 .. j0+count-1 of the window's pixel sequence as runs; returns the run count
// (at most count + 1 <= 33).
int build_runs(const ImageWindow& g, int64_t j0, int64_t count, Run* runs) {
  const int64_t pq = g.p * g.q;
  int nruns = 0;
  for (int64_t j = 0, n = j0 / pq, oh = (j0 % pq) / g.q, ow = j0 % g.q; j < count; ow = 0) {
    const int64_t len = std::min(count - j, g.q - ow);
    runs[nruns++] = {j, len, oh, ow, g.x + n * g.image_stride};
    j += len;
    if (++oh == g.p) {
      oh = 0;
      ++n;
    }
  }
  return nruns;
}

struct TapLoader {
  const ImageWindow& g;
  const Run* runs;
  int nruns;
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);

  // Lanes l of the result = pixel 16 v + l of the block for tap (c, r, s); zero for padding and
  // for pixels beyond the block.
  __m512 load(int v, int64_t c, int64_t r, int64_t s) const {
    const int64_t sw = g.stride_w, plane = g.h * g.w;
    const int64_t ih_off = r * g.dil_h - g.pad_h, iw_off = s * g.dil_w - g.pad_w;
    __m512 out = _mm512_setzero_ps();
    for (int u = 0; u < nruns; ++u) {
      const Run& run = runs[u];
      if (run.j >= 16 * (v + 1) || run.j + run.len <= 16 * v) continue;
      const int64_t ih = run.oh * g.stride_h + ih_off;
      if (ih < 0 || ih >= g.h) continue;
      const float* row = run.x + c * plane + ih * g.w;
      const int64_t iw0 = run.ow * sw + iw_off;  // input column of the run's first pixel
      // Pixels t of the run with 0 <= iw0 + t * sw < w.
      const int64_t lo = iw0 >= 0 ? 0 : (-iw0 + sw - 1) / sw;
      const int64_t hi = g.w - iw0 <= 0 ? 0 : std::min(run.len, (g.w - iw0 + sw - 1) / sw);
      // Lane l is pixel t = 16 v + l - run.j of the run; lanes a .. b-1 are inside the image.
      const int64_t a = std::clamp<int64_t>(run.j + lo - 16 * v, 0, 16);
      const int64_t b = std::clamp<int64_t>(run.j + hi - 16 * v, 0, 16);
      if (b <= a) continue;
      const __mmask16 m = bits(a, b);
      if (sw == 1) {
        out = _mm512_mask_loadu_ps(out, m, offset(row, iw0 + 16 * v - run.j));
      } else if (sw == 2) {
        // Two contiguous loads cover source elements 2a .. 2b-2 (the odd ones between lie in
        // the row too) and a permute keeps the even ones: cheaper than a 16-element gather.
        const int64_t src0 = iw0 + 2 * (16 * v - run.j);
        const __m512 lo_half = _mm512_maskz_loadu_ps(bits(2 * a, 2 * b - 1), offset(row, src0));
        const __m512 hi_half = _mm512_maskz_loadu_ps(bits(2 * a - 16, 2 * b - 17), offset(row, src0 + 16));
        out = _mm512_mask_mov_ps(out, m, _mm512_permutex2var_ps(lo_half, even, hi_half));
      } else {
        const __m512i t = _mm512_add_epi32(lane, _mm512_set1_epi32(static_cast<int32_t>(16 * v - run.j)));
        const __m512i idx = _mm512_add_epi32(_mm512_mullo_epi32(t, _mm512_set1_epi32(static_cast<int32_t>(sw))),
                                             _mm512_set1_epi32(static_cast<int32_t>(iw0)));
        out = _mm512_mask_i32gather_ps(out, m, idx, row, 4);
      }
    }
    return out;
  }
};

// Steps (c, r, s) to the next filter tap.
inline void next_tap(const ImageWindow& g, int64_t& c, int64_t& r, int64_t& s) {
  if (++s == g.s) {
    s = 0;
    if (++r == g.r) {
      r = 0;
      ++c;
    }
  }
}

}  // namespace

void pack_im2col_avx512(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t cols, int64_t nr, float* dst) {
  const ImageWindow& g = *static_cast<const ImageWindow*>(ctx);
  if (nr != NR || !indices_fit(g)) {
    pack_im2col(ctx, k0, kc, j0, cols, nr, dst);
    return;
  }
  Run runs[NR + 1];
  const TapLoader taps{g, runs, build_runs(g, j0, cols, runs)};
  const int64_t rs = g.r * g.s;
  int64_t c = k0 / rs, r = (k0 % rs) / g.s, s = k0 % g.s;
  for (int64_t p = 0; p < kc; ++p) {
    _mm512_storeu_ps(dst + p * NR, taps.load(0, c, r, s));
    _mm512_storeu_ps(dst + p * NR + 16, taps.load(1, c, r, s));
    next_tap(g, c, r, s);
  }
}

void pack_im2col_t_avx512(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t cols, int64_t nr,
                          float* dst) {
  const ImageWindow& g = *static_cast<const ImageWindow*>(ctx);
  if (nr != NR || !indices_fit(g)) {
    pack_im2col_t(ctx, k0, kc, j0, cols, nr, dst);
    return;
  }
  // Panel rows are pixels k0 .. k0+kc-1, columns taps j0 .. j0+cols-1. Per block of 16 pixels
  // and 16 taps: one vector of 16 pixels per tap, a register transpose, 16 row stores.
  const int64_t rs = g.r * g.s;
  const int64_t c0 = j0 / rs, r0 = (j0 % rs) / g.s, s0 = j0 % g.s;
  Run runs[17];
  for (int64_t pb = 0; pb < kc; pb += 16) {
    const int64_t len = std::min<int64_t>(16, kc - pb);
    const TapLoader taps{g, runs, build_runs(g, k0 + pb, len, runs)};
    int64_t c = c0, r = r0, s = s0;
    for (int64_t jb = 0; jb < NR; jb += 16) {
      __m512 in[16], out[16];
      for (int64_t jj = 0; jj < 16; ++jj) {
        if (jb + jj < cols) {
          in[jj] = taps.load(0, c, r, s);
          next_tap(g, c, r, s);
        } else {
          in[jj] = _mm512_setzero_ps();
        }
      }
      gemm::transpose_16x16(in, out);
      for (int64_t t = 0; t < len; ++t) _mm512_storeu_ps(dst + (pb + t) * NR + jb, out[t]);
    }
  }
}

}  // namespace dlcb::conv
