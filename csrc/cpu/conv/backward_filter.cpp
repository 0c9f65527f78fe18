// Backward filter: dw_g (K/g x C/g*R*S) = sum over images of dy[n, g] (K/g x P*Q) * B, where
// B = x[n, g]^T (H*W x C/g) for a 1x1, stride-1, unpadded filter ("gemm-1x1") and otherwise the
// transposed im2col matrix, packed panel by panel from the image ("implicit-im2col-gemm"), or
// read as shifted windows of a padded copy where that applies ("padded-shifted-gemm",
// shifted_backward_filter.cpp).
// The sum over images is the GEMM's beta = 1 accumulation; when threads take whole images, each
// accumulates into its own copy of dw and the copies are added at the end (dw is small next to
// the images).
#include <algorithm>
#include <cstring>

#include "conv/conv.h"
#include "conv/im2col.h"
#include "conv/parallel.h"
#include "conv/pointwise.h"
#include "conv/scratch.h"
#include "conv/shifted.h"

namespace dlcb::conv {
namespace {

int filter_image(const gemm::KernelSet& ks, const ConvShape& sh, bool pointwise, const float* x,
                 const float* dy, float* dw, int64_t n, float beta, int threads) {
  int used = 1;
  for (int64_t g = 0; g < sh.groups; ++g) {
    const float* xg = x + (n * sh.c + g * sh.cg()) * sh.hw();
    gemm::SgemmArgs a{};
    a.m = sh.kg();
    a.n = sh.crs();
    a.k = sh.pq();
    a.a = {dy + (n * sh.k + g * sh.kg()) * sh.pq(), sh.pq(), 1};
    a.c = dw + g * sh.kg() * sh.crs();
    a.ldc = sh.crs();
    a.alpha = 1.0f;
    a.beta = beta;
    const ImageWindow win = image_window(sh, xg);
    const gemm::PanelSource src{im2col_t_packer(ks), &win};
    if (pointwise) {
      a.b = {xg, 1, sh.hw()};  // x[n, g]^T
    } else {
      a.b_source = &src;
    }
    used = std::max(used, gemm::sgemm(ks, a, threads));
  }
  return used;
}

}  // namespace

ConvRun backward_filter(const gemm::KernelSet& ks, const ConvShape& sh, const float* x, const float* dy,
                        float* dw, int threads) {
  if (sh.n > 0 && use_shifted_backward_filter(sh)) return shifted_backward_filter(ks, sh, x, dy, dw, threads);
  const bool pw = is_pointwise(sh);
  const char* name = pw ? "gemm-1x1" : "implicit-im2col-gemm";
  const int64_t dw_size = sh.k * sh.crs();
  if (sh.n == 0) {
    std::memset(dw, 0, sizeof(float) * dw_size);  // an empty sum
    return {name, 1, "gemm"};
  }
  if (split_images(sh.n, threads)) {
    // Slot 0 accumulates into dw, slot t > 0 into partial t - 1; every slot has an image.
    float* const parts = scratch_floats(kPartialSums, (threads - 1) * dw_size);
    for_each_image(sh.n, threads, [&](int64_t n, int t) {
      float* target = t == 0 ? dw : parts + (t - 1) * dw_size;
      const bool first = n == slot_begin(sh.n, t, threads);
      filter_image(ks, sh, pw, x, dy, target, n, first ? 0.0f : 1.0f, 1);
    });
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < dw_size; ++i) {
      float sum = dw[i];
      for (int t = 1; t < threads; ++t) sum += parts[(t - 1) * dw_size + i];
      dw[i] = sum;
    }
    return {name, threads, "images"};
  }
  int used = 1;
  for (int64_t n = 0; n < sh.n; ++n) used = std::max(used, filter_image(ks, sh, pw, x, dy, dw, n, n == 0 ? 0.0f : 1.0f, threads));
  return {name, used, "gemm"};
}

}  // namespace dlcb::conv
