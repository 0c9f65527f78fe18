// 1x1 layers with a stride or padding ("gemm-1x1-gathered"): every output pixel reads one input
// pixel, or only padding. The pixels that read the input form a rectangle of output rows
// [p0, p1) x columns [q0, q1) whose inputs are a strided grid of x; the rest of y is zero. So
// the layer is a plain 1x1 convolution between compact copies: x' (C x P' x Q', the strided
// grid gathered) and y' (K x P' x Q', copied into y's rectangle). Backward data and filter are
// the same 1x1 GEMMs on compact dy' and x'.
//
// Against the implicit im2col GEMM it saves the strided packing of every tap and the arithmetic
// on outputs that only read padding: DeepBench's 1x1, stride 2, pad 3 layer on 7x7 images has
// 16 of its 49 outputs reading the input, and ran at 0.4-0.5x the vendors that skip the rest.
#include <algorithm>
#include <cstring>

#include "conv/parallel.h"
#include "conv/pointwise.h"
#include "conv/scratch.h"

namespace dlcb::conv {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The output rows (or columns) whose input index o * stride - pad lies in [0, size): [lo, hi).
void inside(int64_t size, int64_t stride, int64_t pad, int64_t out, int64_t& lo, int64_t& hi) {
  lo = std::min(out, ceil_div(pad, stride));
  hi = std::max(lo, std::min(out, (size - 1 + pad) / stride + 1));
}

class Gathered {
 public:
  const ConvShape& sh;
  int64_t p0 = 0, q0 = 0;  // the rectangle's origin in the output
  ConvShape inner;         // the 1x1, stride-1, unpadded layer between the compact tensors

  explicit Gathered(const ConvShape& s) : sh(s), inner(s) {
    int64_t p1, q1;
    inside(sh.h, sh.stride_h, sh.pad_h, sh.p, p0, p1);
    inside(sh.w, sh.stride_w, sh.pad_w, sh.q, q0, q1);
    inner.h = std::max<int64_t>(1, p1 - p0);
    inner.w = std::max<int64_t>(1, q1 - q0);
    inner.stride_h = inner.stride_w = 1;
    inner.pad_h = inner.pad_w = 0;
    inner.dil_h = inner.dil_w = 1;
    empty_ = p1 == p0 || q1 == q0;
    finalize(inner);
  }

  bool empty() const { return empty_; }

  // Between input planes (h x w) and compact ones (P' x Q'), for `planes` planes: gathers the
  // strided grid of each input plane into its compact plane, or scatters it back.
  void gather_input(const float* grid, float* compact, int64_t planes, int threads) const {
    walk_input(planes, threads, [&](int64_t g_at, int64_t c_at, int64_t len, int64_t step) {
      for (int64_t j = 0; j < len; ++j) compact[c_at + j] = grid[g_at + j * step];
    });
  }
  void scatter_input(const float* compact, float* grid, int64_t planes, int threads) const {
    walk_input(planes, threads, [&](int64_t g_at, int64_t c_at, int64_t len, int64_t step) {
      for (int64_t j = 0; j < len; ++j) grid[g_at + j * step] = compact[c_at + j];
    });
  }

  // Calls row(grid offset, compact offset, length, grid step) for every row of the rectangle.
  template <class Row>
  void walk_input(int64_t planes, int threads, Row row) const {
    const int64_t ph = inner.h, pw = inner.w;
    const int64_t ih0 = p0 * sh.stride_h - sh.pad_h, iw0 = q0 * sh.stride_w - sh.pad_w;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
    for (int64_t pl = 0; pl < planes; ++pl)
      for (int64_t i = 0; i < ph; ++i)
        row(pl * sh.hw() + (ih0 + i * sh.stride_h) * sh.w + iw0, (pl * ph + i) * pw, pw, sh.stride_w);
  }

  // Between output planes (P x Q) and compact ones: the rectangle at (p0, q0) copied out of
  // each output plane, or into it.
  void output_to_compact(const float* out, float* compact, int64_t planes, int threads) const {
    walk_output(planes, threads, [&](int64_t o_at, int64_t c_at, int64_t len) {
      std::memcpy(compact + c_at, out + o_at, sizeof(float) * len);
    });
  }
  void compact_to_output(const float* compact, float* out, int64_t planes, int threads) const {
    walk_output(planes, threads, [&](int64_t o_at, int64_t c_at, int64_t len) {
      std::memcpy(out + o_at, compact + c_at, sizeof(float) * len);
    });
  }

  template <class Row>
  void walk_output(int64_t planes, int threads, Row row) const {
    const int64_t ph = inner.h, pw = inner.w;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
    for (int64_t pl = 0; pl < planes; ++pl)
      for (int64_t i = 0; i < ph; ++i) row(pl * sh.pq() + (p0 + i) * sh.q + q0, (pl * ph + i) * pw, pw);
  }

 private:
  bool empty_ = false;
};

constexpr const char* kName = "gemm-1x1-gathered";

}  // namespace

bool is_gathered_pointwise(const ConvShape& sh) { return sh.r == 1 && sh.s == 1 && !is_pointwise(sh); }

ConvRun gathered_forward(const gemm::KernelSet& ks, const ConvShape& sh, const float* x, const float* w,
                         WeightLayout wl, float* y, int threads) {
  const Gathered g(sh);
  std::memset(y, 0, sizeof(float) * sh.n * sh.k * sh.pq());
  if (sh.n == 0 || g.empty()) return {kName, 1, "gemm"};
  const int64_t compact = g.inner.pq();
  float* const xc = scratch_floats(kGatheredIn, sh.n * sh.c * compact);
  float* const yc = scratch_floats(kGatheredOut, sh.n * sh.k * compact);
  g.gather_input(x, xc, sh.n * sh.c, threads);
  const ConvRun run = forward(ks, g.inner, xc, w, wl, yc, threads);
  g.compact_to_output(yc, y, sh.n * sh.k, threads);
  return {kName, run.threads, run.parallel};
}

ConvRun gathered_backward_data(const gemm::KernelSet& ks, const ConvShape& sh, const float* dy, const float* w,
                               float* dx, int threads) {
  const Gathered g(sh);
  std::memset(dx, 0, sizeof(float) * sh.n * sh.c * sh.hw());
  if (sh.n == 0 || g.empty()) return {kName, 1, "gemm"};
  const int64_t compact = g.inner.pq();
  float* const dyc = scratch_floats(kGatheredOut, sh.n * sh.k * compact);
  float* const dxc = scratch_floats(kGatheredIn, sh.n * sh.c * compact);
  g.output_to_compact(dy, dyc, sh.n * sh.k, threads);
  const ConvRun run = backward_data(ks, g.inner, dyc, w, dxc, threads);
  g.scatter_input(dxc, dx, sh.n * sh.c, threads);
  return {kName, run.threads, run.parallel};
}

ConvRun gathered_backward_filter(const gemm::KernelSet& ks, const ConvShape& sh, const float* x, const float* dy,
                                 float* dw, int threads) {
  const Gathered g(sh);
  if (sh.n == 0 || g.empty()) {
    std::memset(dw, 0, sizeof(float) * sh.k * sh.crs());  // no pixel reads the input
    return {kName, 1, "gemm"};
  }
  const int64_t compact = g.inner.pq();
  float* const xc = scratch_floats(kGatheredIn, sh.n * sh.c * compact);
  float* const dyc = scratch_floats(kGatheredOut, sh.n * sh.k * compact);
  g.gather_input(x, xc, sh.n * sh.c, threads);
  g.output_to_compact(dy, dyc, sh.n * sh.k, threads);
  const ConvRun run = backward_filter(ks, g.inner, xc, dyc, dw, threads);
  return {kName, run.threads, run.parallel};
}

}  // namespace dlcb::conv
