// Forward convolution as GEMMs, one per group and batch of images:
//   y[n, g] (K/g x P*Q) = w_g (K/g x C/g*R*S) * B
// where B is x[n, g] itself (C/g x H*W) for a 1x1, stride-1, unpadded filter ("gemm-1x1"), and
// otherwise the im2col matrix, packed panel by panel from the image ("implicit-im2col-gemm").
// Layers of stride <= 4 (not 1x1) with many output pixels and at most 128 filters take the
// transposed GEMM over a padded copy (phase planes when strided) of each image instead
// ("padded-shifted-gemm-t", shifted.h).
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
#include "conv/shifted.h"

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
  WeightLayout wl;
  float* y;
  bool pointwise;
  int64_t batch;  // images per GEMM

  // Pixel columns [j0, j1) (of count * P*Q) of images n0 .. n0+count-1; tmp holds
  // K/g x count*P*Q floats when batch > 1 (each caller writes and reads only its columns).
  int run(int64_t n0, int64_t count, float* tmp, int threads, int64_t j0, int64_t j1) const {
    int used = 1;
    const int64_t pq = sh.pq(), cols = count * pq;
    for (int64_t g = 0; g < sh.groups; ++g) {
      const float* xg = x + (n0 * sh.c + g * sh.cg()) * sh.hw();
      float* yg = y + (n0 * sh.k + g * sh.kg()) * pq;
      gemm::SgemmArgs a{};
      a.m = sh.kg();
      a.n = j1 - j0;
      a.k = sh.crs();
      a.a = {w + g * wl.group_stride, wl.row_stride, wl.col_stride};
      a.c = (batch > 1 ? tmp : yg) + j0;
      a.ldc = cols;
      a.alpha = 1.0f;
      a.beta = 0.0f;
      ImageWindow win = pointwise ? pointwise_window(sh, xg) : image_window(sh, xg);
      win.first = j0;
      const gemm::PanelSource src{im2col_packer(ks), &win};
      if (pointwise && batch == 1) {
        a.b = {xg + j0, sh.hw(), 1};
      } else {
        a.b_source = &src;
      }
      used = std::max(used, gemm::sgemm(ks, a, threads));
      if (batch > 1) scatter(tmp, count, yg, j0, j1, threads);
    }
    return used;
  }

  // Columns [j0, j1) of tmp (K/g x count*P*Q, image by image) -> y's images.
  void scatter(const float* tmp, int64_t count, float* yg, int64_t j0, int64_t j1, int threads) const {
    const int64_t kg = sh.kg(), pq = sh.pq(), k = sh.k, cols = count * pq;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
    for (int64_t i = 0; i < kg; ++i)
      for (int64_t j = j0; j < j1;) {
        const int64_t b = j / pq, len = std::min(j1, (b + 1) * pq) - j;
        std::memcpy(yg + (b * k + i) * pq + (j - b * pq), tmp + i * cols + j, sizeof(float) * len);
        j += len;
      }
  }
};

// Each thread's share of `cols` pixel columns, in whole 32-column panels where possible.
int64_t column_split(int64_t cols, int slot, int slots) {
  if (slot >= slots) return cols;
  return std::min(cols, (cols * slot / slots + 31) / 32 * 32);
}

// Pixel columns per thread below which splitting every GEMM by columns (each thread packing the
// whole weight matrix for its share) costs more than the driver's shared packing and barriers.
constexpr int64_t kMinColumnsPerThread = 256;

}  // namespace

ConvRun forward(const gemm::KernelSet& ks, const ConvShape& sh, const float* x, const float* w, float* y,
                int threads) {
  return forward(ks, sh, x, w, WeightLayout{sh.crs(), 1, sh.kg() * sh.crs()}, y, threads);
}

ConvRun forward(const gemm::KernelSet& ks, const ConvShape& sh, const float* x, const float* w, WeightLayout wl,
                float* y, int threads) {
  if (is_gathered_pointwise(sh)) return gathered_forward(ks, sh, x, w, wl, y, threads);
  if (use_shifted(sh)) return shifted_forward(ks, sh, x, w, wl, y, threads);
  const bool pw = is_pointwise(sh);
  const char* name = pw ? "gemm-1x1" : "implicit-im2col-gemm";
  if (sh.n == 0) return {name, 1, "gemm"};
  const int64_t batch = batch_images(sh, pw, threads);
  const int64_t units = (sh.n + batch - 1) / batch;
  const Forward f{ks, sh, x, w, wl, y, pw, batch};
  const int64_t tmp_floats = batch > 1 ? sh.kg() * batch * sh.pq() : 0;
  if (split_images(units, threads)) {
    float* const tmp = scratch_floats(kBatch, threads * tmp_floats);
    for_each_image(units, threads, [&](int64_t u, int slot) {
      const int64_t count = std::min(batch, sh.n - u * batch);
      f.run(u * batch, count, tmp + slot * tmp_floats, 1, 0, count * sh.pq());
    });
    return {name, threads, "images"};
  }
  const int64_t unit_columns = std::min(batch, sh.n) * sh.pq();
  const Parallel forced = forced_parallel();
  const bool by_pixels = forced == Parallel::kAuto ? unit_columns >= kMinColumnsPerThread * threads
                                                   : forced == Parallel::kPixels && unit_columns >= 32 * threads;
  if (threads > 1 && by_pixels) {
    // Too few images (or batches) to share evenly: every thread takes a slice of each one's
    // pixels and runs its GEMMs alone. Unlike splitting inside the driver there is no barrier,
    // which also keeps an oversubscribed machine from stalling both threads on one. Threads
    // move on to the next batch at their own pace, so each has its own scratch.
    float* const tmp = scratch_floats(kBatch, threads * tmp_floats);
    for_each_image(threads, threads, [&](int64_t t, int) {
      for (int64_t u = 0; u < units; ++u) {
        const int64_t count = std::min(batch, sh.n - u * batch), cols = count * sh.pq();
        const int64_t j0 = column_split(cols, static_cast<int>(t), threads);
        const int64_t j1 = column_split(cols, static_cast<int>(t) + 1, threads);
        if (j0 < j1) f.run(u * batch, count, tmp + t * tmp_floats, 1, j0, j1);
      }
    });
    return {name, threads, "pixels"};
  }
  float* const tmp = scratch_floats(kBatch, tmp_floats);
  int used = 1;
  for (int64_t u = 0; u < units; ++u) {
    const int64_t count = std::min(batch, sh.n - u * batch);
    used = std::max(used, f.run(u * batch, count, tmp, threads, 0, count * sh.pq()));
  }
  return {name, used, "gemm"};
}

}  // namespace dlcb::conv
