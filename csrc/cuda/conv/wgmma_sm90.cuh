#pragma once
// Hopper (sm_90a) building blocks of the wgmma convolution: the shared Hopper primitives
// (common/hopper_tma.cuh: mbarriers; common/hopper_wgmma.cuh: descriptors and the wgmma fence /
// commit / wait protocol), the generic-to-async proxy fence its cp.async producer needs, and
// warpgroup MMAs wgmma.mma_async m64n64k16 / m64n128k16 with fp32 accumulators, both operands
// K-major. Device code only: include it from code compiled for compute_90a, under
// __CUDA_ARCH_FEAT_SM90_ALL.
#include <cstdint>

#include "common/hopper_tma.cuh"
#include "common/hopper_wgmma.cuh"

namespace dlcb::cuda::conv_sm90 {

using hopper::fence_accumulator;
using hopper::mbarrier_arrive;
using hopper::mbarrier_init;
using hopper::mbarrier_init_fence;
using hopper::mbarrier_wait;
using hopper::smem_address;
using hopper::wgmma_commit_group;
using hopper::wgmma_fence;
using hopper::wgmma_wait_group;

// cp.async and st.shared write shared memory through the generic proxy, wgmma reads it through
// the async proxy: the writing thread orders the two with this fence, after its writes have
// completed and before it signals the readers.
__device__ __forceinline__ void fence_proxy_async_shared() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// A K-major operand of 128-byte rows (64 K-elements), 16-byte chunk c of row r stored at chunk
// c ^ (r % 8), 8-row groups 1024 bytes apart (see hopper::smem_desc_sw128; the leading offset
// is unused for swizzled K-major layouts and encoded as 1). The k-th 16-deep slice starts
// 32 k bytes further.
__device__ __forceinline__ uint64_t kmajor_sw128_desc(uint32_t smem_addr) {
  return hopper::smem_desc_sw128(smem_addr, 16, 1024);
}

#define DLCB_CONV_WGMMA_D32_REGS \
  "{" \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31" \
  "}"

#define DLCB_CONV_WGMMA_D32_OPERANDS \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
  "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
  "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
  "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])

#define DLCB_CONV_WGMMA_D64_REGS \
  "{" \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63" \
  "}"

#define DLCB_CONV_WGMMA_D64_OPERANDS \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
  "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
  "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
  "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
  "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
  "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
  "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
  "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
// D (64 x N, fp32) = A (64 x 16) * B (N x 16)^T + (accumulate ? D : 0), A and B K-major in
// shared memory (imm-trans-a = imm-trans-b = 0), scale-a = scale-b = 1. D fragment (PTX ISA,
// wgmma .m64nNk16): warp w of the warpgroup, lane l, 8-column block j:
// d[4j + 0..1] = D[16w + l/4][8j + 2(l%4) + 0..1], d[4j + 2..3] = D[16w + 8 + l/4][same].
template <int N, bool kBf16>
__device__ __forceinline__ void wgmma_kmajor(float (&d)[N / 2], uint64_t desc_a, uint64_t desc_b,
                                             bool accumulate);

// One specialization per (N, type); A_, B_, P_ are the operand numbers after the N/2 outputs.
#define DLCB_CONV_WGMMA_KMAJOR(N, BF16, TYPE, REGS, OPERANDS, A_, B_, P_)                    \
  template <>                                                                               \
  __device__ __forceinline__ void wgmma_kmajor<N, BF16>(float (&d)[N / 2], uint64_t desc_a, \
                                                        uint64_t desc_b, bool accumulate) { \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %" #P_ ", 0;\n"                          \
                 "wgmma.mma_async.sync.aligned.m64n" #N "k16.f32." TYPE "." TYPE " " REGS   \
                 ", %" #A_ ", %" #B_ ", p, 1, 1, 0, 0;\n}\n"                                \
                 : OPERANDS                                                                 \
                 : "l"(desc_a), "l"(desc_b), "r"(accumulate ? 1 : 0));                      \
  }

DLCB_CONV_WGMMA_KMAJOR(64, true, "bf16", DLCB_CONV_WGMMA_D32_REGS, DLCB_CONV_WGMMA_D32_OPERANDS,
                       32, 33, 34)
DLCB_CONV_WGMMA_KMAJOR(64, false, "f16", DLCB_CONV_WGMMA_D32_REGS, DLCB_CONV_WGMMA_D32_OPERANDS,
                       32, 33, 34)
DLCB_CONV_WGMMA_KMAJOR(128, true, "bf16", DLCB_CONV_WGMMA_D64_REGS, DLCB_CONV_WGMMA_D64_OPERANDS,
                       64, 65, 66)
DLCB_CONV_WGMMA_KMAJOR(128, false, "f16", DLCB_CONV_WGMMA_D64_REGS, DLCB_CONV_WGMMA_D64_OPERANDS,
                       64, 65, 66)

#undef DLCB_CONV_WGMMA_KMAJOR
#undef DLCB_CONV_WGMMA_D32_REGS
#undef DLCB_CONV_WGMMA_D32_OPERANDS
#undef DLCB_CONV_WGMMA_D64_REGS
#undef DLCB_CONV_WGMMA_D64_OPERANDS

}  // namespace dlcb::cuda::conv_sm90
