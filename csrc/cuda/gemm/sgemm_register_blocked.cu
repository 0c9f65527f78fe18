// sgemm-register-blocked: a block of 256 threads computes a 128 x 128 tile of C, each thread
// an 8 x 8 block of it held in registers. Per k step a thread reads 8 values of A and 8 of B
// from shared memory and does 64 FMAs with them (8 FMAs a shared-memory load, against 1 in
// sgemm-smem-tiled), and a 128 x 8 slice of each operand serves 128 outputs per element.
#include <cuda_runtime.h>

#include "common/launch.cuh"
#include "gemm/sgemm_operands.cuh"
#include "gemm/variants.h"

namespace dlcb::cuda::gemm_variants_impl {

namespace {

using sgemm::OperandView;

constexpr int kBM = 128, kBN = 128, kBK = 8;
constexpr int kTM = 8, kTN = 8;
constexpr int kThreadsN = kBN / kTN;                  // 16 threads across a block's columns
constexpr int kThreads = (kBM / kTM) * kThreadsN;     // 256
constexpr int kAStride = kBK + 1;  // a_tile[m][k]: rows 1 bank apart, for reads and stores
constexpr int kBStride = kBN + 4;  // b_tile[k][n]: transposed stores spread over all banks

// tile[r * stride + c] = X(r0 + r, c0 + c) for a kRows x kCols tile, zero outside the rows x
// cols operand. Consecutive threads take consecutive elements along the operand's contiguous
// direction, so the loads coalesce for either layout.
template <int kRows, int kCols, int kStride>
__device__ __forceinline__ void load_tile(float* tile, const OperandView& x, int64_t rows,
                                          int64_t cols, int64_t r0, int64_t c0) {
  static_assert(kRows * kCols % kThreads == 0, "whole passes");
#pragma unroll
  for (int p = 0; p < kRows * kCols / kThreads; ++p) {
    const int e = static_cast<int>(threadIdx.x) + p * kThreads;
    const int r = x.cols_contiguous() ? e / kCols : e % kRows;
    const int c = x.cols_contiguous() ? e % kCols : e / kRows;
    tile[r * kStride + c] = r0 + r < rows && c0 + c < cols ? x.at(r0 + r, c0 + c) : 0.0f;
  }
}

// Thread (ty, tx) owns rows ty + 16 i and columns tx + 16 j of the tile (i, j < 8): a
// half-warp reads 16 consecutive columns of b_tile (16 banks) and 16 consecutive columns of C,
// and the two rows a warp reads of a_tile sit on different banks.
__global__ void __launch_bounds__(kThreads)
    sgemm_register_blocked_kernel(int m, int n, int k, OperandView a, OperandView b, float* c,
                                  int64_t ldc, float alpha, float beta, int tiles_n) {
  __shared__ float a_tile[kBM * kAStride];
  __shared__ float b_tile[kBK * kBStride];
  const int64_t m0 = static_cast<int64_t>(blockIdx.x / tiles_n) * kBM;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x % tiles_n) * kBN;
  const int tx = threadIdx.x % kThreadsN, ty = threadIdx.x / kThreadsN;
  constexpr int kRowStep = kBM / kTM, kColStep = kBN / kTN;

  float acc[kTM][kTN] = {};
  for (int64_t k0 = 0; k0 < k; k0 += kBK) {
    load_tile<kBM, kBK, kAStride>(a_tile, a, m, k, m0, k0);
    load_tile<kBK, kBN, kBStride>(b_tile, b, k, n, k0, n0);
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kBK; ++kk) {
      float a_frag[kTM], b_frag[kTN];
#pragma unroll
      for (int i = 0; i < kTM; ++i) a_frag[i] = a_tile[(ty + i * kRowStep) * kAStride + kk];
#pragma unroll
      for (int j = 0; j < kTN; ++j) b_frag[j] = b_tile[kk * kBStride + tx + j * kColStep];
#pragma unroll
      for (int i = 0; i < kTM; ++i)
#pragma unroll
        for (int j = 0; j < kTN; ++j) acc[i][j] = fmaf(a_frag[i], b_frag[j], acc[i][j]);
    }
    __syncthreads();  // the tiles are overwritten next step
  }

#pragma unroll
  for (int i = 0; i < kTM; ++i) {
    const int64_t row = m0 + ty + i * kRowStep;
    if (row >= m) break;
#pragma unroll
    for (int j = 0; j < kTN; ++j) {
      const int64_t col = n0 + tx + j * kColStep;
      if (col < n) {
        float* out = c + row * ldc + col;
        *out = sgemm::epilogue(acc[i][j], alpha, beta, out);
      }
    }
  }
}

}  // namespace

const char* support_sgemm_register_blocked(const GemmArgs& args, int /*cc*/) {
  return sgemm::tile_grid_reason(args, kBM, kBN);
}

void launch_sgemm_register_blocked(const GemmArgs& args, cudaStream_t stream) {
  const auto blocks = static_cast<unsigned>(sgemm::tile_count(args, kBM, kBN));
  sgemm_register_blocked_kernel<<<blocks, kThreads, 0, stream>>>(
      static_cast<int>(args.m), static_cast<int>(args.n), static_cast<int>(args.k),
      sgemm::op_a(args), sgemm::op_b(args), static_cast<float*>(args.c), args.ldc, args.alpha,
      args.beta, sgemm::tiles_along_n(args, kBN));
  check_launch("sgemm_register_blocked_kernel");
}

}  // namespace dlcb::cuda::gemm_variants_impl
