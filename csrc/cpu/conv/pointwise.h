#pragma once
#include "conv/conv.h"

namespace dlcb::conv {

// A 1x1 filter at stride 1 without padding: the im2col matrix is the image itself (C x H*W),
// so every direction is a plain GEMM on the tensors in place.
inline bool is_pointwise(const ConvShape& s) {
  return s.r == 1 && s.s == 1 && s.stride_h == 1 && s.stride_w == 1 && s.pad_h == 0 && s.pad_w == 0;
}

}  // namespace dlcb::conv
