#pragma once
// "padded-shifted-gemm-t": forward convolution as one GEMM per image in the transposed
// orientation, over a zero-padded copy of the image.
//
// The image is copied once into planes xp (C x Hp x Wp, Hp = H + 2 pad_h, Wp = W + 2 pad_w;
// for strided layers, phase planes: see below).
// Output pixel (p, q) is flat index i = p * Wp + q of a grid as wide as the padded image, and
// tap (c, r, s) of it reads xp_flat[off(c, r, s) + i], off = c*Hp*Wp + r*dil_h*Wp + s*dil_w. So
// im2col^T (pixels x C*R*S) has element (i, t) = xp_flat[off[t] + i]: contiguous in i for every
// tap, with no padding logic at all. The GEMM
//   C^T (M x K) = im2col^T (M x C*R*S) * W^T (C*R*S x K),   M = (P-1)*Wp + Q
// packs A's micro-panels (mr pixels x kc taps, one short contiguous copy per tap) through
// SgemmArgs::a_source; the Wp - Q columns between output rows are computed and dropped when
// C^T is transposed into y (K x P x Q). With K = 64 the N dimension is two 32-wide panels and
// M is the long one (3248 rows for 56 x 56), so the micro-kernel has no edge tiles in K.
//
// Stride s_h x s_w (dilation d_h x d_w): the padded image is split into s_h * s_w phase planes
// per channel, plane (c, a, b)[i][j] = xpad[c][s_h*i + a][s_w*j + b] (i < Hp = P + (R-1)d_h/s_h,
// j < Wp = Q + (S-1)d_w/s_w, zero past the padded image). Tap (c, r, s) of output (p, q) reads
// plane (c, r d_h % s_h, s d_w % s_w) at (p + r d_h / s_h, q + s d_w / s_w): a stride-1 shifted
// window again, so the same A source and transposed store run with
//   off(c, r, s) = plane(c, r d_h % s_h, s d_w % s_w) * Hp * Wp + (r d_h / s_h) * Wp + s d_w / s_w.
// With stride 1 there is one plane per channel and it is the padded plane above.
#include <cstdint>
#include <vector>

#include "conv/conv.h"

namespace dlcb::conv {

// The phase planes' size (hp x wp), the GEMM rows of a whole image ((P-1) * Wp + Q), the offset
// of every filter tap's window (c, r, s) in the planes, and image x[n]'s planes rows [r0, r1):
// plane (c, a, b) (stride_h * stride_w per channel) holds xpad[c][stride_h i + a][stride_w j + b],
// zero where that is padding or past the padded image. Shared with the backward filter.
int64_t phase_rows(const ConvShape& sh);
int64_t phase_cols(const ConvShape& sh);
int64_t grid_rows(const ConvShape& sh);
std::vector<int64_t> tap_offsets(const ConvShape& sh);
bool phase_planes_fit(const ConvShape& sh);  // the planes within a few times the image and output
void pad_phase_planes(const ConvShape& sh, int64_t hp, int64_t wp, const float* xn, int64_t r0, int64_t r1,
                      float* xp);

// What an A source reads: the padded planes, the tap offsets, and the flat pixel of GEMM row 0.
struct ShiftedWindow {
  const float* xp;
  const int64_t* off;
  int64_t first;
};

// A micro-panel: dst[p * mr + i] = xp[off[k0 + p] + first + i0 + i], rows rows .. mr-1 zero.
void pack_shifted_a(const void* ctx, int64_t k0, int64_t kc, int64_t i0, int64_t rows, int64_t mr, float* dst);

// y[k * ldy + j] = ct[j * ldc + k] for j < cols, k < kn.
void store_transposed(const float* ct, int64_t ldc, int64_t kn, int64_t cols, float* y, int64_t ldy);

#if defined(DLCB_X86)
void pack_shifted_a_avx512(const void* ctx, int64_t k0, int64_t kc, int64_t i0, int64_t rows, int64_t mr,
                           float* dst);  // mr <= 16
void store_transposed_avx512(const float* ct, int64_t ldc, int64_t kn, int64_t cols, float* y, int64_t ldy);
void pack_shifted_a_avx2(const void* ctx, int64_t k0, int64_t kc, int64_t i0, int64_t rows, int64_t mr,
                         float* dst);  // mr <= 8
void store_transposed_avx2(const float* ct, int64_t ldc, int64_t kn, int64_t cols, float* y, int64_t ldy);
#endif

// Output pixels over GEMM rows computed: P*Q / ((P-1)*Wp + Q), 1 for a 1-wide padded grid.
double shifted_useful_fraction(const ConvShape& sh);

// The backward filter's B source (shifted_backward_filter.cpp): rows are grid pixels, columns
// filter taps, each column a contiguous window of the planes:
//   dst[p * nr + j] = xp[off[j0 + j] + first + k0 + p] for j < cols, zero for cols <= j < nr.
void pack_shifted_bt(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t cols, int64_t nr, float* dst);
#if defined(DLCB_X86)
void pack_shifted_bt_avx2(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t cols, int64_t nr,
                          float* dst);  // nr = 16, else the portable one
void pack_shifted_bt_avx512(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t cols, int64_t nr,
                            float* dst);  // nr = 32, else the portable one
#endif

// Whether backward_filter() takes the shifted path (one group, stride <= 4, not 1x1, enough of
// the grid's pixels real for the filter count: see min_useful_fraction; DLCB_CONV_SHIFTED=0/1
// overrides), and the path itself.
bool use_shifted_backward_filter(const ConvShape& sh);
ConvRun shifted_backward_filter(const gemm::KernelSet& ks, const ConvShape& sh, const float* x, const float* dy,
                                float* dw, int threads);

// Whether forward() takes this path for the shape (stride <= 4, one group, not 1x1-unpadded
// nor 1x1-strided, enough GEMM rows, at least 3/4 of them useful, and not too many filters;
// DLCB_CONV_SHIFTED=0/1 overrides).
bool use_shifted(const ConvShape& sh);

// y (N, K, P, Q) = conv(x, w); weights read through wl (see conv.h).
ConvRun shifted_forward(const gemm::KernelSet& ks, const ConvShape& sh, const float* x, const float* w,
                        WeightLayout wl, float* y, int threads);

}  // namespace dlcb::conv
