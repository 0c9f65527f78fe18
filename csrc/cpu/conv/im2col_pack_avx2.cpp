// AVX2 im2col panel packing (nr = 16), forward and transposed: the design of the AVX-512
// packers (im2col_pack_avx512.cpp explains it) with 8-lane vectors. One filter tap's 16 pixels
// fill two ymm, one vmaskmovps per run and half (masked-off lanes, padding included, are never
// read and come out zero); stride 2 takes two masked loads and a shuffle, larger strides a
// masked gather. The portable packer instead issues a memcpy and two memsets per tap and run,
// which on the 16-wide AVX2 panels costs more than the arithmetic they feed.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "conv/im2col.h"
#include "conv/im2col_runs.h"
#include "gemm/transpose_avx2.h"

namespace dlcb::conv {
namespace {

constexpr int64_t NR = 16;
// Prefetch distance in channels, as in the AVX-512 packer.
constexpr int64_t kPrefetchPlanes = 2;

// Lanes l with lo <= l < hi, as the sign masks vmaskmovps and the gathers read.
inline __m256i lanes_between(int64_t lo, int64_t hi) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const int32_t l = static_cast<int32_t>(std::clamp<int64_t>(lo, 0, 8));
  const int32_t h = static_cast<int32_t>(std::clamp<int64_t>(hi, 0, 8));
  return _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(l), lane),
                             _mm256_cmpgt_epi32(_mm256_set1_epi32(h), lane));
}

// One filter tap's pixels of a block of up to 8 * HALVES (lane l of half v = pixel 8 v + l),
// for SW = 1 or 2, or 0 for any stride. Padding and pixels beyond the block are zero.
template <int SW>
struct TapLoader {
  const ImageWindow& g;
  const Run* runs;
  int nruns;

  template <int HALVES>
  void load(int64_t c, int64_t r, int64_t s, __m256* out) const {
    const int64_t sw = SW == 0 ? g.stride_w : SW, plane = g.h * g.w;
    const int64_t ih_off = r * g.dil_h - g.pad_h, iw_off = s * g.dil_w - g.pad_w;
    for (int v = 0; v < HALVES; ++v) out[v] = _mm256_setzero_ps();
    for (int u = 0; u < nruns; ++u) {
      const Run& run = runs[u];
      const int64_t ih = run.ih0 + ih_off;
      if (static_cast<uint64_t>(ih) >= static_cast<uint64_t>(g.h)) continue;
      const float* row = run.x + c * plane + ih * g.w;
      const int64_t iw0 = run.iw0 + iw_off;  // input column of the run's first pixel
      int64_t lo, hi;
      columns_inside<SW>(iw0, sw, g.w, run.len, lo, hi);
      if (hi <= lo) continue;
      {
        // Prefetches never fault, so this may point past the last channel.
        const char* ahead = reinterpret_cast<const char*>(offset(row, iw0 + lo * sw + kPrefetchPlanes * plane));
        _mm_prefetch(ahead, _MM_HINT_T0);
        _mm_prefetch(ahead + 32 * sw, _MM_HINT_T0);
      }
      for (int v = 0; v < HALVES; ++v) {
        // Lanes a .. b-1 of this half are pixels t = 8 v + l - run.j inside the row.
        const int64_t a = std::max<int64_t>(0, run.j + lo - 8 * v), b = std::min<int64_t>(8, run.j + hi - 8 * v);
        if (b <= a) continue;
        const __m256i m = lanes_between(a, b);
        const int64_t first = 8 * v - run.j;  // pixel index t of lane 0
        __m256 got;
        if (SW == 1) {
          got = _mm256_maskload_ps(offset(row, iw0 + first), m);
        } else if (SW == 2) {
          // Lane l reads source element 2 l: two masked loads cover 2a .. 2b-2 and a shuffle
          // keeps the even elements, [0 2 4 6 | 8 10 12 14] after the 64-bit permute.
          const int64_t src0 = iw0 + 2 * first;
          const __m256 lo_half = _mm256_maskload_ps(offset(row, src0), lanes_between(2 * a, 2 * b - 1));
          const __m256 hi_half = _mm256_maskload_ps(offset(row, src0 + 8), lanes_between(2 * a - 8, 2 * b - 9));
          const __m256 evens = _mm256_shuffle_ps(lo_half, hi_half, 0x88);
          got = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(evens), 0xD8));
        } else {
          const __m256i t = _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                             _mm256_set1_epi32(static_cast<int32_t>(first)));
          const __m256i idx = _mm256_add_epi32(_mm256_mullo_epi32(t, _mm256_set1_epi32(static_cast<int32_t>(sw))),
                                               _mm256_set1_epi32(static_cast<int32_t>(iw0)));
          got = _mm256_mask_i32gather_ps(_mm256_setzero_ps(), row, idx, _mm256_castsi256_ps(m), 4);
        }
        // Runs cover disjoint lanes and every other lane of `got` is zero.
        out[v] = _mm256_or_ps(out[v], got);
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
    __m256 out[2];
    taps.template load<2>(c, r, s, out);
    _mm256_storeu_ps(dst + p * NR, out[0]);
    _mm256_storeu_ps(dst + p * NR + 8, out[1]);
    next_tap(g, c, r, s);
  }
}

template <int SW>
void pack_transposed(const ImageWindow& g, int64_t k0, int64_t kc, int64_t j0, int64_t cols, float* dst) {
  // Panel rows are pixels k0 .. k0+kc-1, columns taps j0 .. j0+cols-1. Per block of 8 pixels
  // and 8 taps: one vector of 8 pixels per tap, a register transpose, 8 row stores.
  const int64_t rs = g.r * g.s;
  const int64_t c0 = j0 / rs, r0 = (j0 % rs) / g.s, s0 = j0 % g.s;
  Run runs[9];
  for (int64_t pb = 0; pb < kc; pb += 8) {
    const int64_t len = std::min<int64_t>(8, kc - pb);
    const TapLoader<SW> taps{g, runs, build_runs(g, k0 + pb, len, runs)};
    int64_t c = c0, r = r0, s = s0;
    for (int64_t jb = 0; jb < NR; jb += 8) {
      __m256 in[8], out[8];
      for (int64_t jj = 0; jj < 8; ++jj) {
        if (jb + jj < cols) {
          taps.template load<1>(c, r, s, &in[jj]);
          next_tap(g, c, r, s);
        } else {
          in[jj] = _mm256_setzero_ps();
        }
      }
      gemm::transpose_8x8(in, out);
      for (int64_t t = 0; t < len; ++t) _mm256_storeu_ps(dst + (pb + t) * NR + jb, out[t]);
    }
  }
}

}  // namespace

void pack_im2col_avx2(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t cols, int64_t nr, float* dst) {
  const ImageWindow& g = *static_cast<const ImageWindow*>(ctx);
  if (nr != NR || !indices_fit(g)) return pack_im2col(ctx, k0, kc, j0, cols, nr, dst);
  if (g.stride_w == 1) return pack_forward<1>(g, k0, kc, j0, cols, dst);
  if (g.stride_w == 2) return pack_forward<2>(g, k0, kc, j0, cols, dst);
  pack_forward<0>(g, k0, kc, j0, cols, dst);
}

void pack_im2col_t_avx2(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t cols, int64_t nr,
                        float* dst) {
  const ImageWindow& g = *static_cast<const ImageWindow*>(ctx);
  if (nr != NR || !indices_fit(g)) return pack_im2col_t(ctx, k0, kc, j0, cols, nr, dst);
  if (g.stride_w == 1) return pack_transposed<1>(g, k0, kc, j0, cols, dst);
  if (g.stride_w == 2) return pack_transposed<2>(g, k0, kc, j0, cols, dst);
  pack_transposed<0>(g, k0, kc, j0, cols, dst);
}

}  // namespace dlcb::conv
