#pragma once
// The GEMM ladder: one technique a file, each a launch function and a support check.
// support_* returns nullptr when the variant can run the arguments on compute capability cc,
// else a static string saying why not (layout, alignment, architecture). launch_* may assume
// support_* returned nullptr, args.m/n/k >= 1, and that the current device is the right one.
#include <cuda_runtime_api.h>

#include "gemm/gemm.h"

namespace dlcb::cuda::gemm_variants_impl {

#define DLCB_GEMM_VARIANT(fn)                                  \
  const char* support_##fn(const GemmArgs& args, int cc);      \
  void launch_##fn(const GemmArgs& args, cudaStream_t stream);

// fp32 on CUDA cores (sgemm_*.cu), simplest first.
DLCB_GEMM_VARIANT(sgemm_naive)                      // one thread per C element
DLCB_GEMM_VARIANT(sgemm_smem_tiled)                 // shared-memory tiles of A and B
DLCB_GEMM_VARIANT(sgemm_register_blocked)           // each thread a 2-D block of C in registers
DLCB_GEMM_VARIANT(sgemm_vectorized)                 // + float4 loads, transposed A tile in smem
DLCB_GEMM_VARIANT(sgemm_warp_tiled_double_buffered) // + warp tiles, two smem stages

// fp16/bf16 on tensor cores, fp32 accumulate.
DLCB_GEMM_VARIANT(tc_mma_sync_multistage)  // mma.sync + ldmatrix + cp.async pipeline (sm_80+)
DLCB_GEMM_VARIANT(tc_wgmma_tma)            // wgmma + TMA, warp-specialized (sm_90a only)

#undef DLCB_GEMM_VARIANT

}  // namespace dlcb::cuda::gemm_variants_impl
