// sgemm-smem-tiled: a block computes a 32 x 32 tile of C, one element a thread, walking k in
// 32-wide steps. Each step the block copies a 32 x 32 tile of op(A) and one of op(B) into
// shared memory (each element fetched from global memory once per block, not once per
// thread), then every thread takes its 32-term partial dot product from shared memory.
#include <cuda_runtime.h>

#include "common/launch.cuh"
#include "gemm/sgemm_operands.cuh"
#include "gemm/variants.h"

namespace dlcb::cuda::gemm_variants_impl {

namespace {

using sgemm::OperandView;

constexpr int kTile = 32;
constexpr int kThreads = kTile * kTile;

// tile[r][c] = X(r0 + r, c0 + c), zero outside the rows x cols operand. Lane x of warp y
// reads along the operand's contiguous direction (coalesced): element (y, x) when columns are
// contiguous, (x, y) when rows are. The extra column keeps the (x, y) stores, a column of the
// tile per warp, on 32 different banks.
__device__ __forceinline__ void load_tile(float (*tile)[kTile + 1], const OperandView& x,
                                          int64_t rows, int64_t cols, int64_t r0, int64_t c0) {
  const int lane = threadIdx.x % kTile, warp = threadIdx.x / kTile;
  const int r = x.cols_contiguous() ? warp : lane;
  const int c = x.cols_contiguous() ? lane : warp;
  tile[r][c] = r0 + r < rows && c0 + c < cols ? x.at(r0 + r, c0 + c) : 0.0f;
}

__global__ void __launch_bounds__(kThreads)
    sgemm_smem_tiled_kernel(int m, int n, int k, OperandView a, OperandView b, float* c,
                            int64_t ldc, float alpha, float beta, int tiles_n) {
  __shared__ float a_tile[kTile][kTile + 1];
  __shared__ float b_tile[kTile][kTile + 1];
  const int64_t m0 = static_cast<int64_t>(blockIdx.x / tiles_n) * kTile;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x % tiles_n) * kTile;
  // A warp computes 32 consecutive columns of one row: a_tile reads broadcast, b_tile reads
  // hit 32 banks, stores of C coalesce.
  const int col = threadIdx.x % kTile, row = threadIdx.x / kTile;
  float acc = 0.0f;
  for (int64_t k0 = 0; k0 < k; k0 += kTile) {
    load_tile(a_tile, a, m, k, m0, k0);
    load_tile(b_tile, b, k, n, k0, n0);
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTile; ++kk) acc = fmaf(a_tile[row][kk], b_tile[kk][col], acc);
    __syncthreads();  // the tiles are overwritten next step
  }
  if (m0 + row < m && n0 + col < n) {
    float* out = c + (m0 + row) * ldc + n0 + col;
    *out = sgemm::epilogue(acc, alpha, beta, out);
  }
}

}  // namespace

const char* support_sgemm_smem_tiled(const GemmArgs& args, int /*cc*/) {
  return sgemm::tile_grid_reason(args, kTile, kTile);
}

void launch_sgemm_smem_tiled(const GemmArgs& args, cudaStream_t stream) {
  const auto blocks = static_cast<unsigned>(sgemm::tile_count(args, kTile, kTile));
  sgemm_smem_tiled_kernel<<<blocks, kThreads, 0, stream>>>(
      static_cast<int>(args.m), static_cast<int>(args.n), static_cast<int>(args.k),
      sgemm::op_a(args), sgemm::op_b(args), static_cast<float*>(args.c), args.ldc, args.alpha,
      args.beta, sgemm::tiles_along_n(args, kTile));
  check_launch("sgemm_smem_tiled_kernel");
}

}  // namespace dlcb::cuda::gemm_variants_impl
