// Panel sources for the implicit-im2col GEMMs (see im2col.h).
//
// A panel row of the forward matrix is one filter tap (c, r, s) over up to nr consecutive
// output pixels; those pixels are a few runs along output rows, and with unit stride each run
// reads consecutive input columns: a bounds clip, then a straight copy. Stride > 1 gathers.
#include <algorithm>
#include <cstring>

#include "conv/im2col.h"

namespace dlcb::conv {
namespace {

// out[t * os] = row[iw0 + t * sw] for t < len, zero where the column is padding (outside
// [0, w)) or the whole row is (row == nullptr).
inline void gather_run(const float* row, int64_t iw0, int64_t sw, int64_t w, int64_t len, float* out,
                       int64_t os) {
  if (row == nullptr) {
    for (int64_t t = 0; t < len; ++t) out[t * os] = 0.0f;
    return;
  }
  if (sw == 1) {
    const int64_t lo = std::clamp<int64_t>(-iw0, 0, len);
    const int64_t hi = std::clamp<int64_t>(w - iw0, lo, len);
    if (os == 1) {
      std::memset(out, 0, lo * sizeof(float));
      std::memcpy(out + lo, row + iw0 + lo, (hi - lo) * sizeof(float));
      std::memset(out + hi, 0, (len - hi) * sizeof(float));
      return;
    }
    int64_t t = 0;
    for (; t < lo; ++t) out[t * os] = 0.0f;
    for (; t < hi; ++t) out[t * os] = row[iw0 + t];
    for (; t < len; ++t) out[t * os] = 0.0f;
    return;
  }
  for (int64_t t = 0; t < len; ++t) {
    const int64_t iw = iw0 + t * sw;
    out[t * os] = iw >= 0 && iw < w ? row[iw] : 0.0f;
  }
}

// Pixel columns j .. j+len-1 of filter tap (c, r, s), split into runs along output rows (and
// images); writes out[t * os].
inline void gather_pixels(const ImageWindow& g, int64_t c, int64_t r, int64_t s, int64_t j, int64_t len,
                          float* out, int64_t os) {
  const int64_t pq = g.p * g.q;
  int64_t n = j / pq, oh = (j % pq) / g.q, ow = j % g.q;
  const int64_t ih_off = r * g.dil_h - g.pad_h, iw_off = s * g.dil_w - g.pad_w;
  int64_t t = 0;
  while (t < len) {
    const int64_t run = std::min(len - t, g.q - ow);
    const int64_t ih = oh * g.stride_h + ih_off;
    const float* row = ih >= 0 && ih < g.h ? g.x + n * g.image_stride + (c * g.h + ih) * g.w : nullptr;
    gather_run(row, ow * g.stride_w + iw_off, g.stride_w, g.w, run, out + t * os, os);
    t += run;
    ow = 0;
    if (++oh == g.p) {
      oh = 0;
      ++n;
    }
  }
}

}  // namespace

void pack_im2col(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t cols, int64_t nr, float* dst) {
  const ImageWindow& g = *static_cast<const ImageWindow*>(ctx);
  const int64_t rs = g.r * g.s;
  int64_t c = k0 / rs, r = (k0 % rs) / g.s, s = k0 % g.s;
  for (int64_t p = 0; p < kc; ++p) {
    float* d = dst + p * nr;
    gather_pixels(g, c, r, s, g.first + j0, cols, d, 1);
    std::memset(d + cols, 0, (nr - cols) * sizeof(float));
    if (++s == g.s) {
      s = 0;
      if (++r == g.r) {
        r = 0;
        ++c;
      }
    }
  }
}

void pack_im2col_t(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t cols, int64_t nr, float* dst) {
  const ImageWindow& g = *static_cast<const ImageWindow*>(ctx);
  const int64_t rs = g.r * g.s;
  // Each panel column is one tap over consecutive pixels, written nr floats apart. A block of
  // kStep pixels at a time keeps the destination rows being filled (kStep x nr) in L1.
  constexpr int64_t kStep = 16;
  for (int64_t pb = 0; pb < kc; pb += kStep) {
    const int64_t len = std::min(kStep, kc - pb);
    int64_t c = j0 / rs, r = (j0 % rs) / g.s, s = j0 % g.s;
    float* d = dst + pb * nr;
    for (int64_t j = 0; j < cols; ++j) {
      gather_pixels(g, c, r, s, k0 + pb, len, d + j, nr);
      if (++s == g.s) {
        s = 0;
        if (++r == g.r) {
          r = 0;
          ++c;
        }
      }
    }
    if (cols < nr)
      for (int64_t t = 0; t < len; ++t) std::memset(d + t * nr + cols, 0, (nr - cols) * sizeof(float));
  }
}

}  // namespace dlcb::conv
