#pragma once
// Inline PTX for the RNN tensor-core step (sm_80+): 16-byte cp.async with zero fill, ldmatrix of
// 8 x 8 b16 matrices, and mma.sync m16n8k16 with fp32 accumulation.
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16", 16-bit A/B, fp32 C/D), with
// group = lane / 4 and pair = lane % 4:
//   A (16 x 16, row-major): a0 = (row group, k 2*pair..+1), a1 = (row group+8, same k),
//                           a2 = (row group, k 2*pair+8..+9), a3 = (row group+8, k 2*pair+8..+9)
//   B (16 x 8, "col": k contiguous per column n): b0 = (k 2*pair..+1, n group),
//                           b1 = (k 2*pair+8..+9, n group)
//   C/D (16 x 8 fp32):      d0, d1 = (row group, n 2*pair..+1), d2, d3 = (row group+8, same n)
// ldmatrix (no .trans): lanes 8m..8m+7 give the row addresses of matrix m; register m of every
// lane then holds row lane / 4, elements 2*(lane % 4)..+1 of matrix m, i.e. exactly an A or B
// register above when matrix m is the matching 8 x 8 piece stored k-contiguous. The loads
// clobber "memory" so that they stay after the barrier that publishes the cp.async data.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace dlcb::cuda::rnn_impl {

#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800

__device__ __forceinline__ unsigned shared_address(const void* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

// Copies 16 bytes global -> shared, or writes 16 zero bytes when !valid (src-size 0: nothing is
// read, `src` only has to be a valid address).
__device__ __forceinline__ void cp_async_16(unsigned dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
               "r"(valid ? 16 : 0)
               : "memory");
}

__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}

// Waits until at most `Pending` of this thread's committed groups are still in flight.
template <int Pending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending) : "memory");
}

__device__ __forceinline__ void ldmatrix_x4(unsigned address, unsigned (&r)[4]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address)
               : "memory");
}

// Only lanes 0..15 supply addresses (matrices 0 and 1).
__device__ __forceinline__ void ldmatrix_x2(unsigned address, unsigned (&r)[2]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(address)
               : "memory");
}

// d += a b for one m16n8k16 tile; T (__half or __nv_bfloat16) names the operand type.
template <typename T>
__device__ __forceinline__ void mma_16816(float (&d)[4], const unsigned (&a)[4],
                                          const unsigned (&b)[2]);

template <>
__device__ __forceinline__ void mma_16816<__half>(float (&d)[4], const unsigned (&a)[4],
                                                  const unsigned (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

template <>
__device__ __forceinline__ void mma_16816<__nv_bfloat16>(float (&d)[4], const unsigned (&a)[4],
                                                         const unsigned (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

#endif

}  // namespace dlcb::cuda::rnn_impl
