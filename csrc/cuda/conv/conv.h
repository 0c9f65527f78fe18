#pragma once
// 2-D convolution on the GPU as implicit GEMM. Plain C++ (no CUDA headers).
//
// The three tensors are named by their shape, whatever the direction:
//   x: the layer input   NCHW: N x C x H x W        NHWC: N x H x W x C
//   w: the filters       NCHW: K x C/g x R x S      NHWC: K x R x S x C/g   (g = groups)
//   y: the layer output  NCHW: N x K x P x Q        NHWC: N x P x Q x K
// all dense (contiguous) in that order, all of `dtype`, accumulation in fp32.
//   forward:          reads x and w, writes y
//   backward_data:    reads y (dy) and w, writes x (dx)
//   backward_filter:  reads x and y (dy), writes w (dw)
// P = (H + 2 pad_h - dil_h (R - 1) - 1) / stride_h + 1, Q likewise (cross-correlation, as
// cuDNN and PyTorch). The output is overwritten (beta = 0). A variant that needs scratch space
// says how much through conv_workspace_bytes; the caller passes that many bytes of device
// memory in `workspace` (may be null when 0).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/dtype.h"

namespace dlcb::cuda {

enum class ConvLayout : int { nchw = 0, nhwc = 1 };
enum class ConvDirection : int { forward = 0, backward_data = 1, backward_filter = 2 };

struct ConvArgs {
  int n = 0, c = 0, h = 0, w = 0;  // input batch, channels, height, width
  int k = 0, r = 0, s = 0;         // filters, filter height, filter width
  int pad_h = 0, pad_w = 0, stride_h = 1, stride_w = 1, dil_h = 1, dil_w = 1;
  int groups = 1;
  ConvLayout layout = ConvLayout::nchw;
  ConvDirection direction = ConvDirection::forward;
  DType dtype = DType::f32;
  const void* x = nullptr;  // written instead when direction == backward_data
  // Named `filter`, not `w`: `w` is the input width above (the contract as first written
  // declared both and did not compile).
  const void* filter = nullptr;  // w; written instead when direction == backward_filter
  void* y = nullptr;        // read instead when direction != forward
  void* workspace = nullptr;
};

struct ConvVariantInfo {
  std::string name;
  DType dtype;
  std::string technique;  // one line
  int min_cc = 0;         // 10 * major + minor
};

std::vector<ConvVariantInfo> conv_variants();

// Output height and width (P, Q); both < 1 when the geometry is invalid.
int conv_output_h(const ConvArgs& a);
int conv_output_w(const ConvArgs& a);

// "" when `variant` can run `args` on compute capability cc.
std::string conv_unsupported_reason(const std::string& variant, const ConvArgs& args, int cc);

std::size_t conv_workspace_bytes(const std::string& variant, const ConvArgs& args);

// Queues the convolution on `stream` of `device`; throws std::invalid_argument for unsupported
// arguments, std::runtime_error for a CUDA error.
void conv(const std::string& variant, const ConvArgs& args, int device, std::uintptr_t stream);

}  // namespace dlcb::cuda
