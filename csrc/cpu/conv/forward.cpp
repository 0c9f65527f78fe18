// Forward convolution as GEMMs, one per group and batch of images:
//   y[n, g] (K/g x P*Q) = w_g (K/g x C/g*R*S) * B
// where B is x[n, g] itself (C/g x H*W) for a 1x1, stride-1, unpadded filter ("gemm-1x1"), and
// otherwise the im2col matrix, packed panel by panel from the image ("implicit-im2col-gemm").
//
// Small images are batched: with few output pixels per image, a GEMM per image would pack the
// whole weight matrix (A) again for every few columns of B. A GEMM over several images' pixels
// (columns image by image) packs it once per batch; its result goes to scratch and is copied
// into y, which costs little next to the arithmetic when images are small.
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "conv/conv.h"
#include "conv/im2col.h"
#include "conv/parallel.h"
#include "conv/pointwise.h"
#include "conv/scratch.h"

namespace dlcb::conv {
namespace {

// Images per GEMM: enough for about this many pixel columns when an image has fewer (measured
// on Zen 4, single thread: 3x3 layers on 7x7 images gain ~40%, 14x14 and 28x28 a little). A 1x1
// layer reads B in place when it is not batched, and batching its 14x14 or 28x28 images lost
// 10-20% (the scratch copy and larger B blocks), so only very small images are batched there.
int64_t env_or(const char* name, int64_t fallback) {
  const char* e = std::getenv(name);
  return e ? std::max<int64_t>(1, std::atoll(e)) : fallback;
}

int64_t batch_images(const ConvShape& sh, bool pointwise, int threads) {
  static const int64_t columns = env_or("DLCB_CONV_BATCH_COLUMNS", 2048);
  static const int64_t columns_1x1 = env_or("DLCB_CONV_BATCH_COLUMNS_1X1", 256);
  const int64_t target = pointwise ? columns_1x1 : columns;
  int64_t batch = std::clamp<int64_t>(target / sh.pq(), 1, sh.n);
  // Keep at least one batch per thread so whole batches can be shared out.
  if (threads > 1 && sh.n >= threads) batch = std::min(batch, (sh.n + threads - 1) / threads);
  return batch;
}

struct Forward {
  const gemm::KernelSet& ks;
  const ConvShape& sh;
  const float* x;
  const float* w;
  float* y;
  bool pointwise;
  int64_t batch;  // images per GEMM

  // Images n0 .. n0+count-1; tmp (K/g x batch*P*Q floats) when batch > 1.
  int run(int64_t n0, int64_t count, float* tmp, int threads) const {
    int used = 1;
    const int64_t pq = sh.pq(), cols = count * pq;
    for (int64_t g = 0; g < sh.groups; ++g) {
      const float* xg = x + (n0 * sh.c + g * sh.cg()) * sh.hw();
      float* yg = y + (n0 * sh.k + g * sh.kg()) * pq;
      gemm::SgemmArgs a{};
      a.m = sh.kg();
      a.n = cols;
      a.k = sh.crs();
      a.a = {w + g * sh.kg() * sh.crs(), sh.crs(), 1};
      a.c = batch > 1 ? tmp : yg;
      a.ldc = cols;
      a.alpha = 1.0f;
      a.beta = 0.0f;
      const ImageWindow win = pointwise ? pointwise_window(sh, xg) : image_window(sh, xg);
      const gemm::PanelSource src{im2col_packer(ks), &win};
      if (pointwise && batch == 1) {
        a.b = {xg, sh.hw(), 1};
      } else {
        a.b_source = &src;
      }
      used = std::max(used, gemm::sgemm(ks, a, threads));
      if (batch > 1) scatter(tmp, count, yg, threads);
    }
    return used;
  }

  // tmp (K/g x count*P*Q, image by image) -> y's images.
  void scatter(const float* tmp, int64_t count, float* yg, int threads) const {
    const int64_t kg = sh.kg(), pq = sh.pq(), k = sh.k;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
    for (int64_t i = 0; i < kg; ++i)
      for (int64_t b = 0; b < count; ++b)
        std::memcpy(yg + (b * k + i) * pq, tmp + (i * count + b) * pq, sizeof(float) * pq);
  }
};

}  // namespace

ConvRun forward(const gemm::KernelSet& ks, const ConvShape& sh, const float* x, const float* w, float* y,
                int threads) {
  const bool pw = is_pointwise(sh);
  const char* name = pw ? "gemm-1x1" : "implicit-im2col-gemm";
  if (sh.n == 0) return {name, 1, "gemm"};
  const int64_t batch = batch_images(sh, pw, threads);
  const int64_t units = (sh.n + batch - 1) / batch;
  const Forward f{ks, sh, x, w, y, pw, batch};
  const int64_t tmp_floats = batch > 1 ? sh.kg() * batch * sh.pq() : 0;
  if (split_images(units, threads)) {
    auto tmp = scratch_floats(threads * tmp_floats);
    for_each_image(units, threads, [&](int64_t u, int slot) {
      f.run(u * batch, std::min(batch, sh.n - u * batch), tmp.get() + slot * tmp_floats, 1);
    });
    return {name, threads, "images"};
  }
  auto tmp = scratch_floats(tmp_floats);
  int used = 1;
  for (int64_t u = 0; u < units; ++u)
    used = std::max(used, f.run(u * batch, std::min(batch, sh.n - u * batch), tmp.get(), threads));
  return {name, used, "gemm"};
}

}  // namespace dlcb::conv
