#pragma once
#include "conv/conv.h"

namespace dlcb::conv {

// A 1x1 filter at stride 1 without padding: the im2col matrix is the image itself (C x H*W),
// so every direction is a plain GEMM on the tensors in place.
inline bool is_pointwise(const ConvShape& s) {
  return s.r == 1 && s.s == 1 && s.stride_h == 1 && s.stride_w == 1 && s.pad_h == 0 && s.pad_w == 0;
}

// Any other 1x1 layer (a stride, or padding): run as the pointwise layer between compact copies
// of the pixels that read the input ("gemm-1x1-gathered", pointwise_gathered.cpp).
bool is_gathered_pointwise(const ConvShape& s);
ConvRun gathered_forward(const gemm::KernelSet& ks, const ConvShape& sh, const float* x, const float* w,
                         WeightLayout wl, float* y, int threads);
ConvRun gathered_backward_data(const gemm::KernelSet& ks, const ConvShape& sh, const float* dy, const float* w,
                               float* dx, int threads);
ConvRun gathered_backward_filter(const gemm::KernelSet& ks, const ConvShape& sh, const float* x, const float* dy,
                                 float* dw, int threads);

}  // namespace dlcb::conv
