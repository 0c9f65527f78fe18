// AVX2 im2col panel packing (nr = 16), forward and transposed: the design of the AVX-512
// packers (im2col_pack_avx512.cpp explains it) with 8-lane vectors. One filter tap's 16 pixels
// fill two ymm, one vmaskmovps per run and half (masked-off lanes, padding included, are never
// read and come out zero); stride 2 takes two masked loads and a shuffle, larger strides a
// masked gather. The portable packer instead issues a memcpy and two memsets per tap and run,
// which on the 16-wide AVX2 panels costs more than the arithmetic they feed. Which lanes each
// tap reads, and from where, depends on its filter position only: the forward packer works it
// out once per position and reuses it for every channel.
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
// Channels whose taps are packed together (see pack_forward). Measured on Zen 4 (AVX2, batch 8,
// 1 thread) against planning every tap: 1 channel 0.6-0.8x, 8 channels 1.0-1.2x, 64 channels
// 1.03-1.4x (3x3 layers on 7x7 to 56x56 images, stride 1 and 2).
constexpr int64_t kChannelBlock = 64;


// Lanes l with lo <= l < hi, as the sign masks vmaskmovps and the gathers read.
inline __m256i lanes_between(int64_t lo, int64_t hi) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const int32_t l = static_cast<int32_t>(std::clamp<int64_t>(lo, 0, 8));
  const int32_t h = static_cast<int32_t>(std::clamp<int64_t>(hi, 0, 8));
  return _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(l), lane),
                             _mm256_cmpgt_epi32(_mm256_set1_epi32(h), lane));
}

// A block's pixels for one filter tap (r, s) are the same loads in every channel, a plane
// apart: a masked load per run and half (two and a shuffle for stride 2, a gather for larger
// strides). They are worked out once per tap (plan) and then run for each channel.
struct Load {
  int64_t offset;  // from the channel's plane to lane 0's source element (may lie outside it:
                   // masked-off lanes are never read)
  __m256i mask;    // lanes read; stride 2: of the first source vector
  __m256i extra;   // stride 2: lanes read of the second; other strides: gather indices
};

template <int SW>
struct TapLoads {
  const ImageWindow& g;
  const Run* runs;
  int nruns;

  // The loads of tap (r, s) for a block of 8 * HALVES pixels, half by half: those of half v are
  // loads[ends[v - 1] .. ends[v]) (ends[-1] = 0). At most nruns per half.
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
        int64_t lo, hi;
        columns_inside<SW>(iw0, sw, g.w, run.len, lo, hi);
        // Lanes a .. b-1 of this half are pixels t = 8 v + l - run.j inside the row.
        const int64_t a = std::max<int64_t>(0, run.j + lo - 8 * v), b = std::min<int64_t>(8, run.j + hi - 8 * v);
        if (b <= a) continue;
        const int64_t row = (run.x - g.x) + ih * g.w;  // the run's row, from the first image's plane
        const int64_t first = 8 * v - run.j;            // pixel index t of lane 0
        Load& load = loads[count++];
        load.mask = lanes_between(a, b);
        if (SW == 1) {
          load.offset = row + iw0 + first;
        } else if (SW == 2) {
          load.offset = row + iw0 + 2 * first;
          load.mask = lanes_between(2 * a, 2 * b - 1);
          load.extra = lanes_between(2 * a - 8, 2 * b - 9);
        } else {
          load.offset = row;
          const __m256i t = _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                             _mm256_set1_epi32(static_cast<int32_t>(first)));
          load.extra = _mm256_add_epi32(_mm256_mullo_epi32(t, _mm256_set1_epi32(static_cast<int32_t>(sw))),
                                        _mm256_set1_epi32(static_cast<int32_t>(iw0)));
        }
      }
      ends[v] = count;
    }
  }

  // The planned loads from the plane at `plane` into out[0 .. HALVES-1]; padding is zero. Each
  // half accumulates in a register of its own (an output indexed at run time would go through
  // memory, one store-forwarding stall per load).
  template <int HALVES>
  void run(const Load* loads, const int* ends, const float* plane, __m256* out) const {
    int i = 0;
    for (int v = 0; v < HALVES; ++v) {
      __m256 acc = _mm256_setzero_ps();
      for (; i < ends[v]; ++i) acc = _mm256_or_ps(acc, load(loads[i], plane));  // disjoint lanes, zero elsewhere
      out[v] = acc;
    }
  }

  __m256 load(const Load& load, const float* plane) const {
    if (SW == 1) return _mm256_maskload_ps(offset(plane, load.offset), load.mask);
    if (SW == 2) {
      // Lane l reads source element 2 l: two masked loads cover 2a .. 2b-2 and a shuffle keeps
      // the even elements, [0 2 4 6 | 8 10 12 14] after the 64-bit permute.
      const __m256 lo_half = _mm256_maskload_ps(offset(plane, load.offset), load.mask);
      const __m256 hi_half = _mm256_maskload_ps(offset(plane, load.offset + 8), load.extra);
      const __m256 evens = _mm256_shuffle_ps(lo_half, hi_half, 0x88);
      return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(evens), 0xD8));
    }
    return _mm256_mask_i32gather_ps(_mm256_setzero_ps(), offset(plane, load.offset), load.extra,
                                    _mm256_castsi256_ps(load.mask), 4);
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
            _mm_prefetch(ahead + 32 * SW, _MM_HINT_T0);
          }
          __m256 out[2];
          taps.template run<2>(loads, ends, channel, out);
          float* d = dst + p * NR;
          _mm256_storeu_ps(d, out[0]);
          _mm256_storeu_ps(d + 8, out[1]);
        }
      }
}

// Many short runs (output rows narrower than the block: 7x7 images, TextCNN's one-pixel rows)
// would take a masked load each per tap. Instead each lane's window origin is worked out once
// per panel, and per tap a vector add and compares give every lane's source and whether it is
// inside the image: one gather per half, whatever the runs.
void pack_forward_gathered(const ImageWindow& g, const float* block_x, const int32_t* lane_data, int64_t k0,
                           int64_t kc, float* dst) {
  const int32_t* ih0 = lane_data;  // per lane: window origin row, column, offset from block_x
  const int32_t* iw0 = lane_data + NR;
  const int32_t* base = lane_data + 2 * NR;
  const int32_t* live = lane_data + 3 * NR;
  const __m256i h = _mm256_set1_epi32(static_cast<int32_t>(g.h)), w = _mm256_set1_epi32(static_cast<int32_t>(g.w));
  const __m256i minus_one = _mm256_set1_epi32(-1);
  __m256i vih[2], viw[2], vbase[2], vlive[2];
  for (int v = 0; v < 2; ++v) {
    vih[v] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ih0 + 8 * v));
    viw[v] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(iw0 + 8 * v));
    vbase[v] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(base + 8 * v));
    vlive[v] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(live + 8 * v));
  }
  const int64_t rs = g.r * g.s, plane = g.h * g.w;
  int64_t c = k0 / rs, r = (k0 % rs) / g.s, s = k0 % g.s;
  for (int64_t p = 0; p < kc; ++p) {
    const int32_t dh = static_cast<int32_t>(r * g.dil_h - g.pad_h), dw = static_cast<int32_t>(s * g.dil_w - g.pad_w);
    const __m256i vdh = _mm256_set1_epi32(dh), vdw = _mm256_set1_epi32(dw), shift = _mm256_set1_epi32(dh * static_cast<int32_t>(g.w) + dw);
    const float* channel = block_x + c * plane;
    for (int v = 0; v < 2; ++v) {
      const __m256i ih = _mm256_add_epi32(vih[v], vdh), iw = _mm256_add_epi32(viw[v], vdw);
      const __m256i inside = _mm256_and_si256(
          _mm256_and_si256(_mm256_cmpgt_epi32(ih, minus_one), _mm256_cmpgt_epi32(h, ih)),
          _mm256_and_si256(_mm256_cmpgt_epi32(iw, minus_one), _mm256_cmpgt_epi32(w, iw)));
      const __m256i ok = _mm256_and_si256(inside, vlive[v]);
      const __m256 got = _mm256_mask_i32gather_ps(_mm256_setzero_ps(), channel, _mm256_add_epi32(vbase[v], shift),
                                                  _mm256_castsi256_ps(ok), 4);
      _mm256_storeu_ps(dst + p * NR + 8 * v, got);
    }
    next_tap(g, c, r, s);
  }
}

template <int SW>
void pack_transposed(const ImageWindow& g, int64_t k0, int64_t kc, int64_t j0, int64_t cols, float* dst) {
  // Panel rows are pixels k0 .. k0+kc-1, columns taps j0 .. j0+cols-1. Per block of 8 pixels
  // and 8 taps: one vector of 8 pixels per tap, a register transpose, 8 row stores.
  const int64_t rs = g.r * g.s, plane = g.h * g.w;
  const int64_t c0 = j0 / rs, r0 = (j0 % rs) / g.s, s0 = j0 % g.s;
  Run runs[9];
  Load loads[9];
  int ends[1];
  for (int64_t pb = 0; pb < kc; pb += 8) {
    const int64_t len = std::min<int64_t>(8, kc - pb);
    const TapLoads<SW> taps{g, runs, build_runs(g, k0 + pb, len, runs)};
    int64_t c = c0, r = r0, s = s0;
    for (int64_t jb = 0; jb < NR; jb += 8) {
      __m256 in[8], out[8];
      for (int64_t jj = 0; jj < 8; ++jj) {
        if (jb + jj < cols) {
          taps.template plan<1>(r, s, loads, ends);
          taps.template run<1>(loads, ends, g.x + c * plane, &in[jj]);
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
  if (gather_pays(g, kc)) {
    const float* block_x = nullptr;
    alignas(32) int32_t lanes[4 * NR];
    if (gather_lanes(g, g.first + j0, cols, NR, block_x, lanes)) return pack_forward_gathered(g, block_x, lanes, k0, kc, dst);
  }
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
