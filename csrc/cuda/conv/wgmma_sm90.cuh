#pragma once
// Hopper (sm_90a) building blocks of the wgmma convolution: shared-memory mbarriers, the
// generic-to-async proxy fence, 128-byte-swizzle matrix descriptors and warpgroup MMAs
// wgmma.mma_async m64n64k16 / m64n128k16 with fp32 accumulators, both operands K-major.
// Device code only: include it from code compiled for compute_90a, under
// __CUDA_ARCH_FEAT_SM90_ALL.
#include <cstdint>

namespace dlcb::cuda::conv_sm90 {

__device__ __forceinline__ uint32_t smem_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void mbarrier_init(uint32_t bar, uint32_t arrivals) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(arrivals) : "memory");
}

// Makes initialized barriers visible to the other threads of the CTA.
__device__ __forceinline__ void mbarrier_init_fence() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}

// One arrival (release: this thread's earlier shared-memory writes are visible to a thread
// whose wait sees the phase complete).
__device__ __forceinline__ void mbarrier_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}

// Blocks until the phase with the given parity has completed (acquire). Waiting on the parity
// of the phase before the current one returns at once: a fresh barrier counts as "already
// completed once", which is how the ring's empty slots start out free.
__device__ __forceinline__ void mbarrier_wait(uint32_t bar, uint32_t parity) {
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n.reg .pred p;\n"
        "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
        "selp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
  } while (!done);
}

// cp.async and st.shared write shared memory through the generic proxy, wgmma reads it through
// the async proxy: the writing thread orders the two with this fence, after its writes have
// completed and before it signals the readers.
__device__ __forceinline__ void fence_proxy_async_shared() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// Matrix descriptor (PTX ISA, wgmma "Matrix Descriptor Format"): bits 0-13 start address,
// 16-29 leading-dimension byte offset, 32-45 stride-dimension byte offset (SBO), in units of
// 16 bytes; bits 62-63 = 1: 128-byte swizzle; base offset (bits 49-51) 0, so every 8-row
// swizzle atom (1024 bytes) must start 1024-byte aligned.
// K-major operand, canonical layout ((8,m),(T,2k)):((8T,SBO),(1,T)) with T = 8 elements:
// rows (M or N) of 64 K-elements = 128 bytes, 16-byte chunk c of row r stored at chunk
// c ^ (r % 8); SBO = 1024 bytes from one 8-row group to the next; the leading offset is unused
// for swizzled K-major layouts (encoded as 1). The k-th 16-deep slice starts 32 k bytes
// further: the hardware swizzles the final address, so the start may move inside a row.
__device__ __forceinline__ uint64_t kmajor_sw128_desc(uint32_t smem_addr) {
  constexpr uint64_t kLbo = 16 >> 4, kSbo = 1024 >> 4;
  return static_cast<uint64_t>((smem_addr & 0x3FFFF) >> 4) | (kLbo << 16) | (kSbo << 32) |
         (uint64_t{1} << 62);
}

// Orders this thread's register accesses of the accumulators before the next wgmma.
__device__ __forceinline__ void wgmma_fence() {
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}

__device__ __forceinline__ void wgmma_commit_group() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}

// Waits until at most kPending committed wgmma groups of this warpgroup are still running.
template <int kPending>
__device__ __forceinline__ void wgmma_wait_group() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kPending) : "memory");
}

// Keeps the compiler from moving accesses of an accumulator register across the asynchronous
// wgmma window (the register is in flight between mma_async and wait_group).
__device__ __forceinline__ void fence_accumulator(float& r) { asm volatile("" : "+f"(r)::"memory"); }

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
