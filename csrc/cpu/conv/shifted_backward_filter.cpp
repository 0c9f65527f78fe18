// Backward filter over shifted windows ("padded-shifted-gemm"): the forward's padded copy of
// each image (shifted.h) turns every column of the transposed im2col matrix into a contiguous
// window of the planes. On the grid of the padded width (output pixel (p, q) at p * Wp + q),
//   dw (K x C*R*S) = sum over images of dy_grid (K x rows) * windows (rows x C*R*S),
//   windows(i, (c, r, s)) = planes[off(c, r, s) + i],  rows = (P - 1) * Wp + Q,
// where dy_grid is dy spread over the grid with zeros in the Wp - Q columns past each output row,
// so the pixels the grid adds contribute nothing. Packing a B panel (kc pixels x nr taps) is then
// nr contiguous loads per block of pixels and a register transpose, where the implicit im2col
// packer works out the runs, clipping and masks of every tap and block (on AVX2, 3x3 64-channel
// layers spent as long packing as multiplying).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "conv/parallel.h"
#include "conv/pointwise.h"
#include "conv/scratch.h"
#include "conv/shifted.h"

namespace dlcb::conv {

void pack_shifted_bt(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t cols, int64_t nr, float* dst) {
  const ShiftedWindow& win = *static_cast<const ShiftedWindow*>(ctx);
  const float* base = win.xp + win.first + k0;
  // Blocks of 8 pixels: the destination rows being filled stay in L1.
  for (int64_t pb = 0; pb < kc; pb += 8) {
    const int64_t len = std::min<int64_t>(8, kc - pb);
    for (int64_t j = 0; j < cols; ++j) {
      const float* src = base + win.off[j0 + j] + pb;
      for (int64_t t = 0; t < len; ++t) dst[(pb + t) * nr + j] = src[t];
    }
    if (cols < nr)
      for (int64_t t = 0; t < len; ++t) std::memset(dst + (pb + t) * nr + cols, 0, sizeof(float) * (nr - cols));
  }
}

namespace {

int64_t env_int(const char* name, int64_t fallback) {
  const char* e = std::getenv(name);
  return e ? std::atoll(e) : fallback;
}

// Strides up to 4, as the forward (shifted.cpp).
constexpr int64_t kMaxStride = 4;

// The grid's extra pixels cost arithmetic that the cheaper packing must win back. Per element
// of B (a pixel of one tap), the implicit GEMM packs at about 2.5x the cost of 7 multiply-adds
// and the windows at about 0.5x, while each element meets 2K flops: the windows pay when
//   rows * (0.5 + K/14) < P*Q * (2.5 + K/14),  i.e. useful fraction > (7 + K) / (35 + K).
// That is 0.90 for K = 256, 0.72 for 64 and 0.58 for 32 filters. Measured on Zen 4 (batch 8-16,
// 1 thread, AVX2 / AVX-512) against the implicit GEMM: 3x3 64-filter 56x56 (97 % real) +25 /
// +23 %, ResNet's 7x7/2 conv1 +40 / +31 %, 3x3 256-filter 14x14 (88 %) -6 / -11 %, 512-filter
// 7x7 (80 %) -13 %; DeepBench's 5x5 32-filter 28x28 (88 %) and 48-filter 14x14 (79 %) layers ran
// at 0.34 and 0.42x the best vendor on the implicit GEMM.
double min_useful_fraction(const ConvShape& sh) {
  const double k = static_cast<double>(sh.kg());
  return (7.0 + k) / (35.0 + k);
}

struct ShiftedFilter {
  const gemm::KernelSet& ks;
  const ConvShape& sh;
  const float* x;
  const float* dy;
  const int64_t* off;
  int64_t hp, wp, rows;
  gemm::PanelSource::Fn pack_b;

  // Adds image n's share into dw (beta 0: overwrites it); xp and dyg are scratch for the planes
  // and for dy on the grid (K x rows).
  int image(int64_t n, float* xp, float* dyg, float* dw, float beta, int threads) const {
    pad_phase_planes(sh, hp, wp, x + n * sh.c * sh.hw(), 0, hp, xp);
    const float* dyn = dy + n * sh.k * sh.pq();
    for (int64_t k = 0; k < sh.k; ++k) {
      float* d = dyg + k * rows;
      for (int64_t p = 0; p < sh.p; ++p) {
        std::memcpy(d + p * wp, dyn + (k * sh.p + p) * sh.q, sizeof(float) * sh.q);
        if (p + 1 < sh.p) std::memset(d + p * wp + sh.q, 0, sizeof(float) * (wp - sh.q));
      }
    }
    const ShiftedWindow win{xp, off, 0};
    const gemm::PanelSource src{pack_b, &win};
    gemm::SgemmArgs a{};
    a.m = sh.k;
    a.n = sh.crs();
    a.k = rows;
    a.a = {dyg, rows, 1};
    a.b = {nullptr, 0, 0};
    a.b_source = &src;
    a.c = dw;
    a.ldc = sh.crs();
    a.alpha = 1.0f;
    a.beta = beta;
    return gemm::sgemm(ks, a, threads);
  }
};

}  // namespace

bool use_shifted_backward_filter(const ConvShape& sh) {
  static const int64_t forced = env_int("DLCB_CONV_SHIFTED", -1);
  const bool possible = sh.groups == 1 && sh.stride_h <= kMaxStride && sh.stride_w <= kMaxStride &&
                        !(sh.r == 1 && sh.s == 1) && sh.p > 0 && sh.q > 0;
  if (!possible || forced == 0) return false;
  return forced > 0 || (shifted_useful_fraction(sh) >= min_useful_fraction(sh) && phase_planes_fit(sh));
}

ConvRun shifted_backward_filter(const gemm::KernelSet& ks, const ConvShape& sh, const float* x, const float* dy,
                                float* dw, int threads) {
  const char* name = sh.stride_h > 1 || sh.stride_w > 1 ? "padded-shifted-gemm (strided phase planes)"
                                                        : "padded-shifted-gemm";
  gemm::PanelSource::Fn pack_b = pack_shifted_bt;
#if defined(DLCB_X86)
  if (std::strcmp(ks.isa, "avx512") == 0) pack_b = pack_shifted_bt_avx512;
  if (std::strcmp(ks.isa, "avx2") == 0) pack_b = pack_shifted_bt_avx2;
#endif
  const int64_t hp = phase_rows(sh), wp = phase_cols(sh), rows = grid_rows(sh);
  const std::vector<int64_t> off = tap_offsets(sh);
  const ShiftedFilter f{ks, sh, x, dy, off.data(), hp, wp, rows, pack_b};
  const int64_t plane = sh.c * sh.stride_h * sh.stride_w * hp * wp, grid = sh.k * rows;
  const int64_t dw_size = sh.k * sh.crs();
  threads = std::max(1, threads);
  if (split_images(sh.n, threads)) {
    // Slot 0 accumulates into dw, slot t > 0 into partial t - 1; every slot has an image.
    float* const xp = scratch_floats(kPadded, threads * plane);
    float* const dyg = scratch_floats(kShifted, threads * grid);
    float* const parts = scratch_floats(kPartialSums, (threads - 1) * dw_size);
    for_each_image(sh.n, threads, [&](int64_t n, int t) {
      float* target = t == 0 ? dw : parts + (t - 1) * dw_size;
      const bool first = n == slot_begin(sh.n, t, threads);
      f.image(n, xp + t * plane, dyg + t * grid, target, first ? 0.0f : 1.0f, 1);
    });
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < dw_size; ++i) {
      float sum = dw[i];
      for (int t = 1; t < threads; ++t) sum += parts[(t - 1) * dw_size + i];
      dw[i] = sum;
    }
    return {name, threads, "images"};
  }
  float* const xp = scratch_floats(kPadded, plane);
  float* const dyg = scratch_floats(kShifted, grid);
  int used = 1;
  for (int64_t n = 0; n < sh.n; ++n) used = std::max(used, f.image(n, xp, dyg, dw, n == 0 ? 0.0f : 1.0f, threads));
  return {name, used, "gemm"};
}

}  // namespace dlcb::conv
