#pragma once
// The convolution variants: one technique a file, each a support check, a workspace size and a
// launch. support_* returns nullptr when the variant can run the arguments on compute
// capability cc, else a static string saying why not. workspace_* and launch_* may assume the
// common geometry check (registry.cu) and support_* passed, and that the device is current.
#include <cuda_runtime_api.h>

#include <cstddef>

#include "conv/conv.h"

namespace dlcb::cuda::conv_variants_impl {

#define DLCB_CONV_VARIANT(fn)                                   \
  const char* support_##fn(const ConvArgs& args, int cc);       \
  std::size_t workspace_##fn(const ConvArgs& args);             \
  void launch_##fn(const ConvArgs& args, cudaStream_t stream);

// CUDA cores, any geometry, all directions and layouts (implicit_gemm_simt.cu).
DLCB_CONV_VARIANT(implicit_gemm_simt)
// Tensor cores, mma.sync + ldmatrix + cp.async, NHWC, all directions (implicit_gemm_tc.cu).
DLCB_CONV_VARIANT(implicit_gemm_tc)
// Hopper tensor cores, wgmma fed by a cp.async producer warpgroup, NHWC forward, sm_90a only
// (implicit_gemm_wgmma.cu).
DLCB_CONV_VARIANT(implicit_gemm_wgmma)

#undef DLCB_CONV_VARIANT

}  // namespace dlcb::cuda::conv_variants_impl
