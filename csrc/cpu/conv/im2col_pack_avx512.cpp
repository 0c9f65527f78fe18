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
#include "conv/im2col_runs.h"
#include "gemm/transpose_avx512.h"

namespace dlcb::conv {
namespace {

constexpr int64_t NR = 32;
// Prefetch distance in channels: the packing's loads miss L1 (an image of 64 channels of
// 56 x 56 is 800 KB), and the same window of the channel after next is read r*s taps later.
// Measured on Zen 4 (3x3, 64 channels): the packing's share of the time 18% -> 15%.
constexpr int64_t kPrefetchPlanes = 2;

// Bits [lo, hi) of a 32-bit mask, 0 <= lo < hi <= 32.
inline uint32_t bits32(int64_t lo, int64_t hi) {
  const uint32_t upto_hi = hi >= 32 ? 0xFFFFFFFFu : (1u << hi) - 1;
  return upto_hi & ~((1u << lo) - 1);
}

// Bits [lo, hi) of a 16-bit mask, clamped to [0, 16).
inline __mmask16 bits16(int64_t lo, int64_t hi) {
  lo = std::clamp<int64_t>(lo, 0, 16);
  hi = std::clamp<int64_t>(hi, 0, 16);
  return hi <= lo ? 0 : static_cast<__mmask16>(bits32(lo, hi));
}

// Loads one filter tap's pixels of a block (up to 32: two zmm, lane l of half v = pixel
// 16 v + l) for a stride kind: SW = 1 or 2, or 0 for any stride (gather). Padding and pixels
// beyond the block are zero. Everything that does not depend on the tap is in the runs; per
// tap and run it is a clip of the run to the image (no division for SW = 1, 2) and at most one
// masked load, load pair or gather per half.
template <int SW>
struct TapLoader {
  const ImageWindow& g;
  const Run* runs;
  int nruns;
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);

  template <int HALVES>
  void load(int64_t c, int64_t r, int64_t s, __m512* out) const {
    const int64_t sw = SW == 0 ? g.stride_w : SW, plane = g.h * g.w;
    const int64_t ih_off = r * g.dil_h - g.pad_h, iw_off = s * g.dil_w - g.pad_w;
    for (int v = 0; v < HALVES; ++v) out[v] = _mm512_setzero_ps();
    for (int u = 0; u < nruns; ++u) {
      const Run& run = runs[u];
      const int64_t ih = run.ih0 + ih_off;
      if (static_cast<uint64_t>(ih) >= static_cast<uint64_t>(g.h)) continue;
      const float* row = run.x + c * plane + ih * g.w;
      const int64_t iw0 = run.iw0 + iw_off;  // input column of the run's first pixel
      // Pixels t of the run with 0 <= iw0 + t * sw < w.
      int64_t lo, hi;
      columns_inside<SW>(iw0, sw, g.w, run.len, lo, hi);
      if (hi <= lo) continue;
      {
        // Prefetches never fault, so this may point past the last channel.
        const char* ahead = reinterpret_cast<const char*>(offset(row, iw0 + lo * sw + kPrefetchPlanes * plane));
        _mm_prefetch(ahead, _MM_HINT_T0);
        _mm_prefetch(ahead + 64 * sw, _MM_HINT_T0);
      }
      // Lane (16 v + l) is pixel t = 16 v + l - run.j of the run.
      const uint32_t m32 = bits32(run.j + lo, run.j + hi);
      for (int v = 0; v < HALVES; ++v) {
        const __mmask16 m = static_cast<__mmask16>(m32 >> (16 * v));
        if (m == 0) continue;
        const int64_t first = 16 * v - run.j;  // pixel index t of lane 0
        if (SW == 1) {
          out[v] = _mm512_mask_loadu_ps(out[v], m, offset(row, iw0 + first));
        } else if (SW == 2) {
          // Two contiguous loads cover the source elements of lanes a .. b-1 (2a .. 2b-2; the
          // odd ones between lie in the row too) and a permute keeps the even ones.
          const int64_t a = std::max<int64_t>(0, run.j + lo - 16 * v), b = std::min<int64_t>(16, run.j + hi - 16 * v);
          const int64_t src0 = iw0 + 2 * first;
          const __m512 lo_half = _mm512_maskz_loadu_ps(bits16(2 * a, 2 * b - 1), offset(row, src0));
          const __m512 hi_half = _mm512_maskz_loadu_ps(bits16(2 * a - 16, 2 * b - 17), offset(row, src0 + 16));
          out[v] = _mm512_mask_mov_ps(out[v], m, _mm512_permutex2var_ps(lo_half, even, hi_half));
        } else {
          const __m512i t = _mm512_add_epi32(lane, _mm512_set1_epi32(static_cast<int32_t>(first)));
          const __m512i idx = _mm512_add_epi32(_mm512_mullo_epi32(t, _mm512_set1_epi32(static_cast<int32_t>(sw))),
                                               _mm512_set1_epi32(static_cast<int32_t>(iw0)));
          out[v] = _mm512_mask_i32gather_ps(out[v], m, idx, row, 4);
        }
      }
    }
  }
};

template <int SW>
void pack_forward(const ImageWindow& g, int64_t k0, int64_t kc, int64_t j0, int64_t cols, float* dst) {
  Run runs[NR + 1];
  const TapLoader<SW> taps{g, runs, build_runs(g, g.first + j0, cols, runs)};
  const int64_t rs = g.r * g.s;
  int64_t c = k0 / rs, r = (k0 % rs) / g.s, s = k0 % g.s;
  for (int64_t p = 0; p < kc; ++p) {
    __m512 out[2];
    taps.template load<2>(c, r, s, out);
    _mm512_storeu_ps(dst + p * NR, out[0]);
    _mm512_storeu_ps(dst + p * NR + 16, out[1]);
    next_tap(g, c, r, s);
  }
}

template <int SW>
void pack_transposed(const ImageWindow& g, int64_t k0, int64_t kc, int64_t j0, int64_t cols, float* dst) {
  // Panel rows are pixels k0 .. k0+kc-1, columns taps j0 .. j0+cols-1. Per block of 16 pixels
  // and 16 taps: one vector of 16 pixels per tap, a register transpose, 16 row stores.
  const int64_t rs = g.r * g.s;
  const int64_t c0 = j0 / rs, r0 = (j0 % rs) / g.s, s0 = j0 % g.s;
  Run runs[17];
  for (int64_t pb = 0; pb < kc; pb += 16) {
    const int64_t len = std::min<int64_t>(16, kc - pb);
    const TapLoader<SW> taps{g, runs, build_runs(g, k0 + pb, len, runs)};
    int64_t c = c0, r = r0, s = s0;
    for (int64_t jb = 0; jb < NR; jb += 16) {
      __m512 in[16], out[16];
      for (int64_t jj = 0; jj < 16; ++jj) {
        if (jb + jj < cols) {
          taps.template load<1>(c, r, s, &in[jj]);
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

}  // namespace

void pack_im2col_avx512(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t cols, int64_t nr, float* dst) {
  const ImageWindow& g = *static_cast<const ImageWindow*>(ctx);
  if (nr != NR || !indices_fit(g)) return pack_im2col(ctx, k0, kc, j0, cols, nr, dst);
  if (g.stride_w == 1) return pack_forward<1>(g, k0, kc, j0, cols, dst);
  if (g.stride_w == 2) return pack_forward<2>(g, k0, kc, j0, cols, dst);
  pack_forward<0>(g, k0, kc, j0, cols, dst);
}

void pack_im2col_t_avx512(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t cols, int64_t nr,
                          float* dst) {
  const ImageWindow& g = *static_cast<const ImageWindow*>(ctx);
  if (nr != NR || !indices_fit(g)) return pack_im2col_t(ctx, k0, kc, j0, cols, nr, dst);
  if (g.stride_w == 1) return pack_transposed<1>(g, k0, kc, j0, cols, dst);
  if (g.stride_w == 2) return pack_transposed<2>(g, k0, kc, j0, cols, dst);
  pack_transposed<0>(g, k0, kc, j0, cols, dst);
}

}  // namespace dlcb::conv
