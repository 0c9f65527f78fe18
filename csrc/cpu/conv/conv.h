#pragma once
// 2-D convolution, NCHW float32, on top of the blocked GEMM driver (see gemm/gemm.h).
//
//   forward          y  (N, K, P, Q) = conv(x (N, C, H, W), w (K, C/groups, R, S))
//   backward data    dx (N, C, H, W) = conv_transpose(dy (N, K, P, Q), w)
//   backward filter  dw (K, C/groups, R, S) = sum over images of dy[n] * im2col(x[n])^T
//
// Tuning overrides, read once per process (for experiments; the defaults are the measured
// choices): DLCB_CONV_PARALLEL=images|gemm|pixels (how threads share the work, see parallel.h),
// DLCB_CONV_BATCH_COLUMNS / DLCB_CONV_BATCH_COLUMNS_1X1 (images per GEMM, see forward.cpp),
// DLCB_CONV_SHIFTED=0|1 (never / always, where possible, the padded shifted-window forward,
// strided layers through phase planes, see shifted.h).
//
// Every size is int64_t. The entry points throw std::invalid_argument for an inconsistent
// shape and std::bad_alloc when scratch cannot be allocated; either happens before or after
// the parallel regions, never inside one.
#include <cstdint>

#include "gemm/gemm.h"

namespace dlcb::conv {

struct ConvShape {
  int64_t n, c, h, w;                // input
  int64_t k, r, s;                   // filters: (k, c / groups, r, s)
  int64_t groups;
  int64_t stride_h, stride_w;
  int64_t pad_h, pad_w;              // symmetric: pad_h rows above and below
  int64_t dil_h, dil_w;
  int64_t p = 0, q = 0;              // output size, filled in by finalize()

  int64_t cg() const { return c / groups; }   // input channels per group
  int64_t kg() const { return k / groups; }   // output channels per group
  int64_t crs() const { return cg() * r * s; }  // im2col rows per group
  int64_t hw() const { return h * w; }
  int64_t pq() const { return p * q; }
};

// Checks the parameters, computes p and q; throws std::invalid_argument when they are invalid
// or any tensor would have more than 2^62 elements.
void finalize(ConvShape& shape);

// What ran: the algorithm, the thread count and how the threads shared the work ("images":
// whole images per thread, each GEMM single-threaded; "gemm": every GEMM split over the threads).
struct ConvRun {
  const char* algorithm;
  int threads;
  const char* parallel;
};

// x, w, y contiguous NCHW; shape finalized. y is overwritten.
ConvRun forward(const gemm::KernelSet& ks, const ConvShape& shape, const float* x, const float* w,
                float* y, int threads);
// Where forward's A operand (weights) comes from: group g's K/g x C/g*R*S matrix has element
// (i, p) at w[g * group_stride + i * row_stride + p * col_stride]. Contiguous (K, C/g, R, S)
// weights are {C/g*R*S, 1, K/g*C/g*R*S}; backward data's 1x1 case reads them transposed.
struct WeightLayout {
  int64_t row_stride, col_stride, group_stride;
};
ConvRun forward(const gemm::KernelSet& ks, const ConvShape& shape, const float* x, const float* w,
                WeightLayout layout, float* y, int threads);

// dy (n, k, p, q) -> dx (n, c, h, w), overwritten.
ConvRun backward_data(const gemm::KernelSet& ks, const ConvShape& shape, const float* dy,
                      const float* w, float* dx, int threads);
// x, dy -> dw (k, c / groups, r, s), overwritten.
ConvRun backward_filter(const gemm::KernelSet& ks, const ConvShape& shape, const float* x,
                        const float* dy, float* dw, int threads);

}  // namespace dlcb::conv
