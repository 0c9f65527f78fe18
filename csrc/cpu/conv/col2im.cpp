// col2im: the scatter-add that turns the column gradient W^T dy of the general backward-data
// path into dx. Overlapping windows (stride < filter span) add into the same input element, so
// callers give each thread its own channels or its own image.
#include <algorithm>

#include "conv/im2col.h"

namespace dlcb::conv {

void col2im_add(const ImageWindow& g, const float* col, int64_t ld, int64_t j0, int64_t cols,
                int64_t c0, int64_t c1, float* dx) {
  const int64_t plane = g.h * g.w;
  const int64_t oh0 = j0 / g.q, ow0 = j0 % g.q;
  for (int64_t c = c0; c < c1; ++c) {
    float* dxc = dx + c * plane;
    for (int64_t r = 0; r < g.r; ++r) {
      for (int64_t s = 0; s < g.s; ++s) {
        const float* src = col + ((c * g.r + r) * g.s + s) * ld;
        const int64_t ih_off = r * g.dil_h - g.pad_h, iw_off = s * g.dil_w - g.pad_w;
        int64_t t = 0, oh = oh0, ow = ow0;
        while (t < cols) {
          const int64_t run = std::min(cols - t, g.q - ow);
          const int64_t ih = oh * g.stride_h + ih_off;
          if (ih >= 0 && ih < g.h) {
            float* row = dxc + ih * g.w;
            const int64_t iw0 = ow * g.stride_w + iw_off;
            const float* in = src + t;
            if (g.stride_w == 1) {
              const int64_t lo = std::clamp<int64_t>(-iw0, 0, run);
              const int64_t hi = std::clamp<int64_t>(g.w - iw0, lo, run);
              for (int64_t u = lo; u < hi; ++u) row[iw0 + u] += in[u];
            } else {
              for (int64_t u = 0; u < run; ++u) {
                const int64_t iw = iw0 + u * g.stride_w;
                if (iw >= 0 && iw < g.w) row[iw] += in[u];
              }
            }
          }
          t += run;
          ow = 0;
          ++oh;
        }
      }
    }
  }
}

}  // namespace dlcb::conv
