// sgemm-naive: one thread per element of C, its dot product read straight from global memory.
// The baseline of the ladder: every operand element is fetched once per use (k loads of A and
// k loads of B per output), so it is bound by memory traffic, not by arithmetic.
#include <cuda_runtime.h>

#include "common/launch.cuh"
#include "gemm/sgemm_operands.cuh"
#include "gemm/variants.h"

namespace dlcb::cuda::gemm_variants_impl {

namespace {

using sgemm::OperandView;

// 8 x 32 elements of C a block: a warp covers 32 consecutive columns of one row, so its loads
// of B (not transposed) and its stores of C are coalesced, and its loads of A are a broadcast.
constexpr int kRows = 8;
constexpr int kCols = 32;

__global__ void __launch_bounds__(kRows * kCols)
    sgemm_naive_kernel(int m, int n, int k, OperandView a, OperandView b, float* c, int64_t ldc,
                       float alpha, float beta, int tiles_n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x / tiles_n) * kRows + threadIdx.x / kCols;
  const int64_t j = static_cast<int64_t>(blockIdx.x % tiles_n) * kCols + threadIdx.x % kCols;
  if (i >= m || j >= n) return;
  float acc = 0.0f;
  for (int kk = 0; kk < k; ++kk) acc = fmaf(a.at(i, kk), b.at(kk, j), acc);
  float* out = c + i * ldc + j;
  *out = sgemm::epilogue(acc, alpha, beta, out);
}

}  // namespace

const char* support_sgemm_naive(const GemmArgs& args, int /*cc*/) {
  return sgemm::tile_grid_reason(args, kRows, kCols);
}

void launch_sgemm_naive(const GemmArgs& args, cudaStream_t stream) {
  const int tiles_n = sgemm::tiles_along_n(args, kCols);
  const auto blocks = static_cast<unsigned>(sgemm::tile_count(args, kRows, kCols));
  sgemm_naive_kernel<<<blocks, kRows * kCols, 0, stream>>>(
      static_cast<int>(args.m), static_cast<int>(args.n), static_cast<int>(args.k),
      sgemm::op_a(args), sgemm::op_b(args), static_cast<float*>(args.c), args.ldc, args.alpha,
      args.beta, tiles_n);
  check_launch("sgemm_naive_kernel");
}

}  // namespace dlcb::cuda::gemm_variants_impl
