// Forward convolution as one GEMM per image and group:
//   y[n, g] (K/g x P*Q) = w_g (K/g x C/g*R*S) * B
// where B is x[n, g] itself (C/g x H*W) for a 1x1, stride-1, unpadded filter ("gemm-1x1"), and
// otherwise the im2col matrix, packed panel by panel from the image ("implicit-im2col-gemm").
#include <algorithm>

#include "conv/conv.h"
#include "conv/im2col.h"
#include "conv/parallel.h"
#include "conv/pointwise.h"

namespace dlcb::conv {
namespace {

int forward_image(const gemm::KernelSet& ks, const ConvShape& sh, bool pointwise, const float* x,
                  const float* w, float* y, int64_t n, int threads) {
  int used = 1;
  for (int64_t g = 0; g < sh.groups; ++g) {
    const float* xg = x + (n * sh.c + g * sh.cg()) * sh.hw();
    gemm::SgemmArgs a{};
    a.m = sh.kg();
    a.n = sh.pq();
    a.k = sh.crs();
    a.a = {w + g * sh.kg() * sh.crs(), sh.crs(), 1};
    a.c = y + (n * sh.k + g * sh.kg()) * sh.pq();
    a.ldc = sh.pq();
    a.alpha = 1.0f;
    a.beta = 0.0f;
    const ImageWindow win = image_window(sh, xg);
    const gemm::PanelSource src{im2col_packer(ks), &win};
    if (pointwise) {
      a.b = {xg, sh.hw(), 1};
    } else {
      a.b_source = &src;
    }
    used = std::max(used, gemm::sgemm(ks, a, threads));
  }
  return used;
}

}  // namespace

ConvRun forward(const gemm::KernelSet& ks, const ConvShape& sh, const float* x, const float* w, float* y,
                int threads) {
  const bool pw = is_pointwise(sh);
  const char* name = pw ? "gemm-1x1" : "implicit-im2col-gemm";
  if (sh.n == 0) return {name, 1, "gemm"};
  if (split_images(sh.n, threads)) {
    for_each_image(sh.n, threads, [&](int64_t n, int) { forward_image(ks, sh, pw, x, w, y, n, 1); });
    return {name, threads, "images"};
  }
  int used = 1;
  for (int64_t n = 0; n < sh.n; ++n) used = std::max(used, forward_image(ks, sh, pw, x, w, y, n, threads));
  return {name, used, "gemm"};
}

}  // namespace dlcb::conv
