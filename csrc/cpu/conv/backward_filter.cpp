// Backward filter: dw_g (K/g x C/g*R*S) = sum over images of dy[n, g] (K/g x P*Q) * B, where
// B = x[n, g]^T (H*W x C/g) for a 1x1, stride-1, unpadded filter ("gemm-1x1") and otherwise the
// transposed im2col matrix, packed panel by panel from the image ("implicit-im2col-gemm"), or
// read as shifted windows of a padded copy where that applies ("padded-shifted-gemm",
// shifted_backward_filter.cpp).
// The sum over images is the GEMM's k dimension and its beta = 1 accumulation. Small images are
// batched: with a GEMM per image, k would be P*Q (49 for 7x7) and dw (up to megabytes) would be
// read and written again for every image; a batch of images is one GEMM whose k runs over all
// their pixels (dy's rows copied side by side, the im2col packer walking from image to image).
// When threads take whole images, each accumulates into its own copy of dw and the copies are
// added at the end (dw is small next to the images).
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

// Pixels per GEMM that batching images aims for: enough for a deep k block.
constexpr int64_t kBatchPixels = 1024;

struct Filter {
  const gemm::KernelSet& ks;
  const ConvShape& sh;
  const float* x;
  const float* dy;
  bool pointwise;
  int64_t batch;  // images per GEMM (1 for the pointwise path, which reads dy and x in place)

  // Adds images n0 .. n0+count-1 into dw (beta 0: overwrites it); dyb is scratch for dy's rows
  // of a batch side by side (K/g x count*P*Q).
  int images(int64_t n0, int64_t count, float* dyb, float* dw, float beta, int threads) const {
    int used = 1;
    const int64_t pq = sh.pq(), cols = count * pq;
    for (int64_t g = 0; g < sh.groups; ++g) {
      const float* xg = x + (n0 * sh.c + g * sh.cg()) * sh.hw();
      const float* dyg = dy + (n0 * sh.k + g * sh.kg()) * pq;
      gemm::SgemmArgs a{};
      a.m = sh.kg();
      a.n = sh.crs();
      a.k = cols;
      a.c = dw + g * sh.kg() * sh.crs();
      a.ldc = sh.crs();
      a.alpha = 1.0f;
      a.beta = beta;
      if (count == 1) {
        a.a = {dyg, pq, 1};
      } else {
        for (int64_t i = 0; i < sh.kg(); ++i)
          for (int64_t b = 0; b < count; ++b)
            std::memcpy(dyb + i * cols + b * pq, dyg + b * sh.k * pq + i * pq, sizeof(float) * pq);
        a.a = {dyb, cols, 1};
      }
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
};

}  // namespace

ConvRun backward_filter(const gemm::KernelSet& ks, const ConvShape& sh, const float* x, const float* dy,
                        float* dw, int threads) {
  if (is_gathered_pointwise(sh)) return gathered_backward_filter(ks, sh, x, dy, dw, threads);
  if (sh.n > 0 && use_shifted_backward_filter(sh)) return shifted_backward_filter(ks, sh, x, dy, dw, threads);
  const bool pw = is_pointwise(sh);
  const char* name = pw ? "gemm-1x1" : "implicit-im2col-gemm";
  const int64_t dw_size = sh.k * sh.crs();
  if (sh.n == 0) {
    std::memset(dw, 0, sizeof(float) * dw_size);  // an empty sum
    return {name, 1, "gemm"};
  }
  const bool by_images = split_images(sh.n, threads);
  // Batches never straddle two threads' images.
  const int64_t per_slot = by_images ? (sh.n + threads - 1) / threads : sh.n;
  const int64_t batch = pw ? 1 : std::clamp<int64_t>(kBatchPixels / std::max<int64_t>(1, sh.pq()), 1, per_slot);
  const Filter f{ks, sh, x, dy, pw, batch};
  const int64_t dyb_floats = batch > 1 ? sh.kg() * batch * sh.pq() : 0;
  if (by_images) {
    // Slot 0 accumulates into dw, slot t > 0 into partial t - 1; every slot has an image.
    float* const parts = scratch_floats(kPartialSums, (threads - 1) * dw_size);
    float* const dyb = scratch_floats(kBatch, threads * dyb_floats);
    for_each_slot(sh.n, threads, [&](int64_t first, int64_t end, int t) {
      float* target = t == 0 ? dw : parts + (t - 1) * dw_size;
      for (int64_t n = first; n < end; n += batch)
        f.images(n, std::min(batch, end - n), dyb + t * dyb_floats, target, n == first ? 0.0f : 1.0f, 1);
    });
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < dw_size; ++i) {
      float sum = dw[i];
      for (int t = 1; t < threads; ++t) sum += parts[(t - 1) * dw_size + i];
      dw[i] = sum;
    }
    return {name, threads, "images"};
  }
  float* const dyb = scratch_floats(kBatch, dyb_floats);
  int used = 1;
  for (int64_t n = 0; n < sh.n; n += batch)
    used = std::max(used, f.images(n, std::min(batch, sh.n - n), dyb, dw, n == 0 ? 0.0f : 1.0f, threads));
  return {name, used, "gemm"};
}

}  // namespace dlcb::conv
