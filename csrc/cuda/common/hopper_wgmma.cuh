#pragma once
// Hopper warpgroup MMA (sm_90a): shared-memory matrix descriptors for 128-byte-swizzled tiles,
// the wgmma fence / commit / wait protocol, and wgmma.mma_async m64n256k16 with fp32
// accumulators. Device code only: include it from code compiled for compute_90a.
#include <cstdint>

namespace dlcb::cuda::hopper {

// Matrix descriptor (PTX ISA, "Matrix Descriptor Format" of wgmma): bits 0-13 start address,
// 16-29 leading-dimension byte offset (LBO), 32-45 stride-dimension byte offset (SBO), all three
// in units of 16 bytes; bits 62-63 swizzle mode, 1 = 128-byte swizzle; base offset (49-51) 0,
// which needs every 8-row swizzle atom (1024 bytes) to start 1024-byte aligned.
//
// The tiles this describes are what a TMA load with CU_TENSOR_MAP_SWIZZLE_128B writes: rows of
// 128 bytes (64 fp16/bf16), the 16-byte chunks of row r XOR-permuted by r % 8.
// In the PTX ISA's canonical layouts (T = 8 elements = 16 bytes):
//  - K-major, ((8,m),(T,2k)):((8T,SBO),(1,T)): rows along M or N, 64 K-elements a row;
//    SBO = 1024 (from one 8-row group to the next); LBO is unused for swizzled K-major layouts.
//    The k-th group of 16 K-elements starts 32 * k bytes further: the hardware applies the
//    swizzle to the final address bits, so the start may move inside a 128-byte row.
//  - MN-major, ((T,8,m),(8,k)):((1,T,LBO),(8T,SBO)): rows along K, 64 M/N-elements a row;
//    LBO = the distance from one 64-wide M/N block to the next, SBO = 1024 (from 8 K-rows to
//    the next 8). The k-th group of 16 K-rows starts 16 * 128 bytes further.
__device__ __forceinline__ uint64_t smem_desc_sw128(uint32_t smem_addr, uint32_t lbo_bytes,
                                                    uint32_t sbo_bytes) {
  return static_cast<uint64_t>((smem_addr & 0x3FFFF) >> 4) |
         (static_cast<uint64_t>((lbo_bytes >> 4) & 0x3FFF) << 16) |
         (static_cast<uint64_t>((sbo_bytes >> 4) & 0x3FFF) << 32) | (uint64_t{1} << 62);
}

// Orders this thread's earlier register accesses of the accumulators before the wgmma that
// reads or writes them (needed before the first wgmma and after touching the accumulators).
__device__ __forceinline__ void wgmma_fence() {
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}

__device__ __forceinline__ void wgmma_commit_group() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}

// Waits until at most kPending committed wgmma groups of this warp are still running.
template <int kPending>
__device__ __forceinline__ void wgmma_wait_group() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kPending) : "memory");
}

// Keeps the compiler from moving reads or writes of an accumulator register across the
// asynchronous wgmma window (the register is in flight between mma_async and wait_group).
__device__ __forceinline__ void fence_accumulator(float& r) { asm volatile("" : "+f"(r)::"memory"); }

#define DLCB_WGMMA_N256_D_REGS \
  "{" \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, " \
  "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, " \
  "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, " \
  "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, " \
  "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127 " \
  "}"

#define DLCB_WGMMA_N256_D_OPERANDS \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
  "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
  "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
  "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
  "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
  "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
  "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
  "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), \
  "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), \
  "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), \
  "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), \
  "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), \
  "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), \
  "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), \
  "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), \
  "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])

// D (64 x 256, fp32) = A (64 x 16) * B (16 x 256) + (accumulate ? D : 0), A and B from shared
// memory through descriptors; kMnMajorA / kMnMajorB select M-major A / N-major B (the
// instruction's imm-trans-a / imm-trans-b = 1), else K-major. Each thread of the warpgroup
// holds 128 values of D: warp w, lane l, for each 8-column block j,
// d[4j + 0..1] = D[16w + l/4][8j + 2(l%4) + 0..1] and
// d[4j + 2..3] = D[16w + 8 + l/4][8j + 2(l%4) + 0..1] (PTX ISA, wgmma .m64nNk16 D fragment).
template <bool kBf16, bool kMnMajorA, bool kMnMajorB>
__device__ __forceinline__ void wgmma_m64n256k16(float (&d)[128], uint64_t desc_a,
                                                 uint64_t desc_b, bool accumulate) {
  const int scale_d = accumulate ? 1 : 0;
  if constexpr (kBf16) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 "
        DLCB_WGMMA_N256_D_REGS ", %128, %129, p, 1, 1, %131, %132;\n}\n"
        : DLCB_WGMMA_N256_D_OPERANDS
        : "l"(desc_a), "l"(desc_b), "r"(scale_d), "n"(kMnMajorA ? 1 : 0), "n"(kMnMajorB ? 1 : 0));
  } else {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n256k16.f32.f16.f16 "
        DLCB_WGMMA_N256_D_REGS ", %128, %129, p, 1, 1, %131, %132;\n}\n"
        : DLCB_WGMMA_N256_D_OPERANDS
        : "l"(desc_a), "l"(desc_b), "r"(scale_d), "n"(kMnMajorA ? 1 : 0), "n"(kMnMajorB ? 1 : 0));
  }
}

#undef DLCB_WGMMA_N256_D_OPERANDS
#undef DLCB_WGMMA_N256_D_REGS

}  // namespace dlcb::cuda::hopper
