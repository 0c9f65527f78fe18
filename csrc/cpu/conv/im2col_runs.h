#pragma once
// What the vectorized im2col packers (im2col_pack_avx512.cpp, im2col_pack_avx2.cpp) share: a
// block of consecutive output pixels cut into runs along output rows (and images), built once
// per block because it is the same for every filter tap, and the step from tap to tap.
#include <algorithm>
#include <cstdint>

#include "conv/im2col.h"

namespace dlcb::conv {

struct Run {
  int64_t j, len;    // pixels j .. j+len-1 of the block are one output row's ...
  int64_t ih0, iw0;  // ... whose first pixel's window starts at input (ih0, iw0) before the tap offset
  const float* x;    // the run's image
};

// Pixels j0 .. j0+count-1 of the window's pixel sequence as runs; returns the run count
// (at most count + 1).
inline int build_runs(const ImageWindow& g, int64_t j0, int64_t count, Run* runs) {
  const int64_t pq = g.p * g.q;
  int nruns = 0;
  for (int64_t j = 0, n = j0 / pq, oh = (j0 % pq) / g.q, ow = j0 % g.q; j < count; ow = 0) {
    const int64_t len = std::min(count - j, g.q - ow);
    runs[nruns++] = {j, len, oh * g.stride_h, ow * g.stride_w, g.x + n * g.image_stride};
    j += len;
    if (++oh == g.p) {
      oh = 0;
      ++n;
    }
  }
  return nruns;
}

// The address `elements` floats from base, for masked loads whose masked-off lanes may lie
// outside the image: computed without pointer arithmetic on an out-of-range pointer.
inline const float* offset(const float* base, int64_t elements) {
  return reinterpret_cast<const float*>(reinterpret_cast<uintptr_t>(base) + elements * 4);
}

// 32-bit gather indices must not overflow: (column + 32) * stride + tap offset.
inline bool indices_fit(const ImageWindow& g) {
  return g.stride_w * (g.w + 64) + g.dil_w * g.s + g.pad_w < (int64_t{1} << 30);
}

// The input columns of a run's pixels t (0 <= t < len) that lie inside the row, [lo, hi): pixel
// t reads column iw0 + t * sw. SW is the stride when it is 1 or 2 (no division), 0 for any.
template <int SW>
inline void columns_inside(int64_t iw0, int64_t sw, int64_t w, int64_t len, int64_t& lo, int64_t& hi) {
  if (SW == 1) {
    lo = std::max<int64_t>(0, -iw0);
    hi = std::min(len, w - iw0);
  } else if (SW == 2) {
    lo = iw0 >= 0 ? 0 : (1 - iw0) >> 1;
    hi = std::min(len, (w - iw0 + 1) >> 1);
  } else {
    lo = iw0 >= 0 ? 0 : (-iw0 + sw - 1) / sw;
    hi = w - iw0 <= 0 ? 0 : std::min(len, (w - iw0 + sw - 1) / sw);
  }
}

// Whether a forward panel's taps are better gathered lane by lane than loaded run by run. Run
// loads are planned once per filter position and block of channels, then cost a masked load
// (stride 1) or two (stride 2) per run; a gather costs about as much as three. Measured on
// Zen 4 (AVX2, whole convolutions, batch 8, 1 thread): gathers make TextCNN (one channel,
// one-pixel rows: 16 runs per panel and nothing to share their planning) 1.8x faster, and lose
// 10-25 % wherever a few channels share the planning, at stride 2 (28x28 -> 14x14) included.
inline bool gather_pays(const ImageWindow& g, int64_t kc) {
  const int64_t channels = std::max<int64_t>(1, kc / (g.r * g.s));
  return g.q * channels < 16;
}

// Each lane's window origin for a gathered panel of `nr` pixels from j0 (`cols` of them live):
// lane_data[0, nr) input row, [nr, 2 nr) input column, [2 nr, 3 nr) offset of that pixel from
// block_x (the panel's first image), [3 nr, 4 nr) -1 for a live lane, 0 past the panel. False
// when an offset would not fit a 32-bit gather index.
inline bool gather_lanes(const ImageWindow& g, int64_t j0, int64_t cols, int64_t nr, const float*& block_x,
                         int32_t* lane_data) {
  const int64_t pq = g.p * g.q, n0 = j0 / pq;
  block_x = g.x + n0 * g.image_stride;
  for (int64_t l = 0; l < nr; ++l) {
    const bool live = l < cols;
    const int64_t j = j0 + (live ? l : 0), n = j / pq, oh = (j % pq) / g.q, ow = j % g.q;
    const int64_t ih = oh * g.stride_h, iw = ow * g.stride_w;
    const int64_t base = (n - n0) * g.image_stride + ih * g.w + iw;
    if (base + g.image_stride >= (int64_t{1} << 30)) return false;
    lane_data[l] = static_cast<int32_t>(ih);
    lane_data[nr + l] = static_cast<int32_t>(iw);
    lane_data[2 * nr + l] = static_cast<int32_t>(base);
    lane_data[3 * nr + l] = live ? -1 : 0;
  }
  return true;
}

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

}  // namespace dlcb::conv
