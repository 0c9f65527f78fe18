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
// Channels whose taps are packed together (see pack_forward). Measured on Zen 4 (AVX2, batch 8,
// 1 thread) against planning every tap: 1 channel 0.6-0.8x, 8 channels 1.0-1.2x, 64 channels
// 1.03-1.4x (3x3 layers on 7x7 to 56x56 images, stride 1 and 2).
constexpr int64_t kChannelBlock = 64;

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

// A block's pixels for one filter tap (r, s) (up to 32: two zmm, lane l of half v = pixel
// 16 v + l) are the same loads in every channel, a plane apart: per run and half one masked
// load, load pair and permute (stride 2) or masked gather (larger strides). They are worked out
// once per tap (plan: the clip of each run to the image, no division for SW = 1, 2) and run for
// each channel. Padding and pixels beyond the block are zero.
struct Load {
  int64_t offset;    // from the channel's plane to lane 0's source element (may lie outside it)
  __mmask16 mask;    // lanes written
  __mmask16 lo, hi;  // stride 2: lanes read of the two source vectors
  __m512i index;     // other strides: gather indices
};

template <int SW>
struct TapLoads {
  const ImageWindow& g;
  const Run* runs;
  int nruns;

  // The loads of tap (r, s) for a block of 16 * HALVES pixels, half by half: those of half v
  // are loads[ends[v - 1] .. ends[v]) (ends[-1] = 0). At most nruns per half.
  template <int HALVES>
  void plan(int64_t r, int64_t s, Load* loads, int* ends) const {
    const int64_t sw = SW == 0 ? g.stride_w : SW;
    const int64_t ih_off = r * g.dil_h - g.pad_h, iw_off = s * g.dil_w - g.pad_w;
    int count = 0;
    for (int v = 0; v < HALVES; ++v) {
      for (int u = 0; u < nruns; ++u) {
        const Run& run = runs[u];
        const int64_t ih = run.ih0 + ih_off;
        if (static_cast<uint64_t>(ih) >= static_cast<uint64_t>(g.h)) continue;
        const int64_t iw0 = run.iw0 + iw_off;  // input column of the run's first pixel
        // Pixels t of the run with 0 <= iw0 + t * sw < w.
        int64_t lo, hi;
        columns_inside<SW>(iw0, sw, g.w, run.len, lo, hi);
        if (hi <= lo) continue;
        // Lane (16 v + l) is pixel t = 16 v + l - run.j of the run.
        const __mmask16 m = static_cast<__mmask16>(bits32(run.j + lo, run.j + hi) >> (16 * v));
        if (m == 0) continue;
        const int64_t row = (run.x - g.x) + ih * g.w;  // the run's row, from the first image's plane
        const int64_t first = 16 * v - run.j;           // pixel index t of lane 0
        Load& load = loads[count++];
        load.mask = m;
        if (SW == 1) {
          load.offset = row + iw0 + first;
        } else if (SW == 2) {
          // Two contiguous loads cover the source elements of lanes a .. b-1 (2a .. 2b-2; the
          // odd ones between lie in the row too) and a permute keeps the even ones.
          const int64_t a = std::max<int64_t>(0, run.j + lo - 16 * v), b = std::min<int64_t>(16, run.j + hi - 16 * v);
          load.offset = row + iw0 + 2 * first;
          load.lo = bits16(2 * a, 2 * b - 1);
          load.hi = bits16(2 * a - 16, 2 * b - 17);
        } else {
          const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
          const __m512i t = _mm512_add_epi32(lane, _mm512_set1_epi32(static_cast<int32_t>(first)));
          load.offset = row;
          load.index = _mm512_add_epi32(_mm512_mullo_epi32(t, _mm512_set1_epi32(static_cast<int32_t>(sw))),
                                        _mm512_set1_epi32(static_cast<int32_t>(iw0)));
        }
      }
      ends[v] = count;
    }
  }

  // The planned loads from the plane at `plane` into out[0 .. HALVES-1]; each half accumulates
  // in a register of its own (an output indexed at run time would go through memory).
  template <int HALVES>
  void run(const Load* loads, const int* ends, const float* plane, __m512* out) const {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    int i = 0;
    for (int v = 0; v < HALVES; ++v) {
      __m512 o = _mm512_setzero_ps();
      for (; i < ends[v]; ++i) {
        const Load& load = loads[i];
        if (SW == 1) {
          o = _mm512_mask_loadu_ps(o, load.mask, offset(plane, load.offset));
        } else if (SW == 2) {
          const __m512 lo_half = _mm512_maskz_loadu_ps(load.lo, offset(plane, load.offset));
          const __m512 hi_half = _mm512_maskz_loadu_ps(load.hi, offset(plane, load.offset + 16));
          o = _mm512_mask_mov_ps(o, load.mask, _mm512_permutex2var_ps(lo_half, even, hi_half));
        } else {
          o = _mm512_mask_i32gather_ps(o, load.mask, load.index, offset(plane, load.offset), 4);
        }
      }
      out[v] = o;
    }
  }
};

// Taps are visited a block of channels at a time, filter position by filter position within
// it: each position's loads are planned once per block and run for its channels.
template <int SW>
void pack_forward(const ImageWindow& g, int64_t k0, int64_t kc, int64_t j0, int64_t cols, float* dst) {
  Run runs[NR + 1];
  const TapLoads<SW> taps{g, runs, build_runs(g, g.first + j0, cols, runs)};
  Load loads[2 * (NR + 1)];
  int ends[2];
  const int64_t rs = g.r * g.s, plane = g.h * g.w;
  const int64_t c_first = k0 / rs, c_last = (k0 + kc - 1) / rs;
  for (int64_t cb = c_first; cb <= c_last; cb += kChannelBlock)
    for (int64_t r = 0; r < g.r; ++r)
      for (int64_t s = 0; s < g.s; ++s) {
        taps.template plan<2>(r, s, loads, ends);
        const int64_t pos = r * g.s + s;
        for (int64_t c = cb; c < cb + kChannelBlock && c <= c_last; ++c) {
          const int64_t p = c * rs + pos - k0;  // the tap's row of the panel
          if (p < 0 || p >= kc) continue;
          const float* channel = g.x + c * plane;
          // Prefetches never fault, so this may point past the last channel.
          if (ends[1] > 0) {
            const char* ahead = reinterpret_cast<const char*>(offset(channel, loads[0].offset + kPrefetchPlanes * plane));
            _mm_prefetch(ahead, _MM_HINT_T0);
            _mm_prefetch(ahead + 64 * SW, _MM_HINT_T0);
          }
          __m512 out[2];
          taps.template run<2>(loads, ends, channel, out);
          float* d = dst + p * NR;
          _mm512_storeu_ps(d, out[0]);
          _mm512_storeu_ps(d + 16, out[1]);
        }
      }
}

// Many short runs, or runs whose loads are dearer than a gather (see gather_pays): each lane's
// window origin is worked out once per panel (gather_lanes), and per tap a vector add and
// compares give every lane's source and whether it is inside the image: one gather per half.
void pack_forward_gathered(const ImageWindow& g, const float* block_x, const int32_t* lane_data, int64_t k0,
                           int64_t kc, float* dst) {
  const __m512i h = _mm512_set1_epi32(static_cast<int32_t>(g.h)), w = _mm512_set1_epi32(static_cast<int32_t>(g.w));
  __m512i vih[2], viw[2], vbase[2];
  __mmask16 live[2];
  for (int v = 0; v < 2; ++v) {
    vih[v] = _mm512_loadu_si512(lane_data + 16 * v);
    viw[v] = _mm512_loadu_si512(lane_data + NR + 16 * v);
    vbase[v] = _mm512_loadu_si512(lane_data + 2 * NR + 16 * v);
    live[v] = _mm512_test_epi32_mask(_mm512_loadu_si512(lane_data + 3 * NR + 16 * v), _mm512_set1_epi32(-1));
  }
  const int64_t rs = g.r * g.s, plane = g.h * g.w;
  int64_t c = k0 / rs, r = (k0 % rs) / g.s, s = k0 % g.s;
  for (int64_t p = 0; p < kc; ++p) {
    const int32_t dh = static_cast<int32_t>(r * g.dil_h - g.pad_h), dw = static_cast<int32_t>(s * g.dil_w - g.pad_w);
    const __m512i vdh = _mm512_set1_epi32(dh), vdw = _mm512_set1_epi32(dw);
    const __m512i shift = _mm512_set1_epi32(dh * static_cast<int32_t>(g.w) + dw);
    const float* channel = block_x + c * plane;
    for (int v = 0; v < 2; ++v) {
      const __m512i ih = _mm512_add_epi32(vih[v], vdh), iw = _mm512_add_epi32(viw[v], vdw);
      // 0 <= ih < h and 0 <= iw < w, as unsigned compares.
      const __mmask16 ok = live[v] & _mm512_cmplt_epu32_mask(ih, h) & _mm512_cmplt_epu32_mask(iw, w);
      const __m512 got = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), ok, _mm512_add_epi32(vbase[v], shift), channel, 4);
      _mm512_storeu_ps(dst + p * NR + 16 * v, got);
    }
    next_tap(g, c, r, s);
  }
}

template <int SW>
void pack_transposed(const ImageWindow& g, int64_t k0, int64_t kc, int64_t j0, int64_t cols, float* dst) {
  // Panel rows are pixels k0 .. k0+kc-1, columns taps j0 .. j0+cols-1. Per block of 16 pixels
  // and 16 taps: one vector of 16 pixels per tap, a register transpose, 16 row stores.
  const int64_t rs = g.r * g.s, plane = g.h * g.w;
  const int64_t c0 = j0 / rs, r0 = (j0 % rs) / g.s, s0 = j0 % g.s;
  Run runs[17];
  Load loads[17];
  int ends[1];
  for (int64_t pb = 0; pb < kc; pb += 16) {
    const int64_t len = std::min<int64_t>(16, kc - pb);
    const TapLoads<SW> taps{g, runs, build_runs(g, k0 + pb, len, runs)};
    int64_t c = c0, r = r0, s = s0;
    for (int64_t jb = 0; jb < NR; jb += 16) {
      __m512 in[16], out[16];
      for (int64_t jj = 0; jj < 16; ++jj) {
        if (jb + jj < cols) {
          taps.template plan<1>(r, s, loads, ends);
          taps.template run<1>(loads, ends, g.x + c * plane, &in[jj]);
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
  if (gather_pays(g, kc)) {
    const float* block_x = nullptr;
    alignas(64) int32_t lanes[4 * NR];
    if (gather_lanes(g, g.first + j0, cols, NR, block_x, lanes)) return pack_forward_gathered(g, block_x, lanes, k0, kc, dst);
  }
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
