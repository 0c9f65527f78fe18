// Backward data, dx = conv_transpose(dy, w), three ways:
//  - "gemm-1x1": 1x1, stride 1, no padding: dx[n, g] (C/g x H*W) = w_g^T (C/g x K/g) * dy[n, g],
//    run as the forward 1x1 convolution with the transposed weights; "gemm-1x1-gathered" for a
//    padded 1x1 layer, the same between the pixels that read the input (pointwise_gathered.cpp).
//  - "flipped-forward": stride 1 (any dilation) and pad <= dil*(R-1) on both axes: the gradient
//    is a forward convolution of dy with the filters flipped in space and transposed in
//    channels, padded dil*(R-1) - pad, so it runs the implicit-im2col GEMM with no scatter.
//  - "gemm-col2im" otherwise (stride > 1, or padding wider than the filter span, where the
//    flipped form would need negative padding): the column gradient W_g^T dy[n, g]
//    (C/g*R*S x P*Q) by GEMM, a block of columns at a time, then scatter-added into dx.
#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "conv/conv.h"
#include "conv/im2col.h"
#include "conv/parallel.h"
#include "conv/pointwise.h"
#include "conv/scratch.h"

namespace dlcb::conv {
namespace {

// Column-gradient blocks of at most this many floats (8 MiB) per thread: large layers would
// otherwise need R*S times dx's size in scratch.
constexpr int64_t kColFloats = int64_t{1} << 21;

bool flippable(const ConvShape& sh) {
  return sh.stride_h == 1 && sh.stride_w == 1 && sh.pad_h <= sh.dil_h * (sh.r - 1) &&
         sh.pad_w <= sh.dil_w * (sh.s - 1);
}

// The transposed problem: dy (n, k, p, q) as the input, dx as the output, stride 1, the padding
// that makes the output h x w.
ConvShape transposed_shape(const ConvShape& sh) {
  ConvShape f{sh.n, sh.k, sh.p, sh.q, sh.c, sh.r, sh.s, sh.groups, 1, 1,
              sh.dil_h * (sh.r - 1) - sh.pad_h, sh.dil_w * (sh.s - 1) - sh.pad_w, sh.dil_h, sh.dil_w};
  finalize(f);
  if (f.p != sh.h || f.q != sh.w) throw std::logic_error("flipped-forward: output size mismatch");
  return f;
}

// 1x1: the forward GEMMs read w_g^T in place (element (c, k) at w[g*kg*cg + k*cg + c]).
ConvRun pointwise(const gemm::KernelSet& ks, const ConvShape& sh, const float* dy, const float* w, float* dx,
                  int threads) {
  const WeightLayout transposed{1, sh.cg(), sh.kg() * sh.cg()};
  const ConvRun run = forward(ks, transposed_shape(sh), dy, w, transposed, dx, threads);
  return {"gemm-1x1", run.threads, run.parallel};
}

ConvRun flipped_forward(const gemm::KernelSet& ks, const ConvShape& sh, const float* dy, const float* w,
                        float* dx, int threads) {
  const ConvShape f = transposed_shape(sh);
  const int64_t cg = sh.cg(), kg = sh.kg(), rs = sh.r * sh.s, rows = sh.c;
  // wf (C, K/g, R, S): wf[g*cg + c][k][R-1-r][S-1-s] = w[g*kg + k][c][r][s]. A block of 16
  // rows (channels c) at a time, k inner: the reads are 16 consecutive filters of w[k] (one
  // contiguous stretch) and the writes 16 streams; a row at a time, every read would be K/g
  // filters apart, a TLB miss each for large layers.
  float* const wfp = scratch_floats(kFlippedWeights, sh.c * kg * rs);
  const int64_t blocks = (rows + 15) / 16;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t row_end = std::min(rows, (b + 1) * 16);
    for (int64_t k = 0; k < kg; ++k)
      for (int64_t row = b * 16; row < row_end; ++row) {
        const int64_t g = row / cg, c = row % cg;
        const float* src = w + ((g * kg + k) * cg + c) * rs;
        float* dst = wfp + (row * kg + k) * rs;
        for (int64_t i = 0; i < rs; ++i) dst[rs - 1 - i] = src[i];
      }
  }
  const ConvRun run = forward(ks, f, dy, wfp, dx, threads);
  return {"flipped-forward", run.threads, run.parallel};
}

// dx[n] = col2im(W^T dy[n]) for one image; `col` holds crs x block floats. With threads > 1
// the GEMM is split by the driver and the scatter by channels.
int col2im_image(const gemm::KernelSet& ks, const ConvShape& sh, const float* dy, const float* w, float* dx,
                 int64_t n, int64_t block, float* col, int threads) {
  int used = 1;
  float* dxn = dx + n * sh.c * sh.hw();
  std::memset(dxn, 0, sizeof(float) * sh.c * sh.hw());
  for (int64_t g = 0; g < sh.groups; ++g) {
    const ImageWindow win = image_window(sh, nullptr);
    float* dxg = dxn + g * sh.cg() * sh.hw();
    for (int64_t j0 = 0; j0 < sh.pq(); j0 += block) {
      const int64_t cols = std::min(block, sh.pq() - j0);
      gemm::SgemmArgs a{};
      a.m = sh.crs();
      a.n = cols;
      a.k = sh.kg();
      a.a = {w + g * sh.kg() * sh.crs(), 1, sh.crs()};  // w_g^T
      a.b = {dy + (n * sh.k + g * sh.kg()) * sh.pq() + j0, sh.pq(), 1};
      a.c = col;
      a.ldc = cols;
      a.alpha = 1.0f;
      a.beta = 0.0f;
      used = std::max(used, gemm::sgemm(ks, a, threads));
      if (threads == 1) {
        col2im_add(win, col, cols, j0, cols, 0, sh.cg(), dxg);
      } else {
        const int64_t cg = sh.cg();
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int64_t c = 0; c < cg; ++c) col2im_add(win, col, cols, j0, cols, c, c + 1, dxg);
      }
    }
  }
  return used;
}

}  // namespace

ConvRun backward_data(const gemm::KernelSet& ks, const ConvShape& sh, const float* dy, const float* w,
                      float* dx, int threads) {
  // A 1x1 layer's gradient is the 1x1 forward convolution with the transposed weights (read in
  // place), so it shares the forward's batching of small images and its thread split.
  if (is_pointwise(sh)) return pointwise(ks, sh, dy, w, dx, threads);
  // Strided 1x1 layers without padding stay on GEMM + col2im below: the compact copies cost
  // 10-20 % more there (Zen 4, 256 -> 128 channels 56x56/2), and only padding has work to skip.
  if (is_gathered_pointwise(sh) && (sh.pad_h > 0 || sh.pad_w > 0))
    return gathered_backward_data(ks, sh, dy, w, dx, threads);
  if (flippable(sh)) return flipped_forward(ks, sh, dy, w, dx, threads);

  if (sh.n == 0) return {"gemm-col2im", 1, "gemm"};
  // Column blocks: all of P*Q when it fits, else a multiple of 32 pixels (the GEMM's panel width).
  int64_t block = sh.pq();
  if (sh.crs() * block > kColFloats) block = std::min(sh.pq(), std::max<int64_t>(32, kColFloats / sh.crs() / 32 * 32));
  const bool images = split_images(sh.n, threads);
  const int workers = images ? threads : 1;
  float* const col = scratch_floats(kColumns, workers * sh.crs() * block);
  if (images) {
    for_each_image(sh.n, threads, [&](int64_t n, int t) {
      col2im_image(ks, sh, dy, w, dx, n, block, col + t * sh.crs() * block, 1);
    });
    return {"gemm-col2im", threads, "images"};
  }
  int used = 1;
  for (int64_t n = 0; n < sh.n; ++n) used = std::max(used, col2im_image(ks, sh, dy, w, dx, n, block, col, threads));
  return {"gemm-col2im", std::max(used, threads), "gemm"};
}

}  // namespace dlcb::conv
