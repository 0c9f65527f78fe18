// sgemm-vectorized: register blocking (128 x 128 tile of C a block, 8 x 8 a thread) with
// 16-byte memory operations. Global memory is read one float4 a thread along each operand's
// contiguous direction; both operand tiles are kept k-major in shared memory (A transposed
// on its way in when it is stored m x k), so a thread's 8 values of A and 8 of B for one k are
// four LDS.128 instead of sixteen LDS.32. C is written with float4 stores.
//
// Needs 16-byte aligned a, b, c and leading dimensions that are multiples of 4; any m, n, k
// and all four layouts (ragged edges are zero-filled on load and masked on store).
#include <cuda_runtime.h>

#include "common/launch.cuh"
#include "gemm/sgemm_operands.cuh"
#include "gemm/variants.h"

namespace dlcb::cuda::gemm_variants_impl {

namespace {

constexpr int kBM = 128, kBN = 128, kBK = 8;
constexpr int kTM = 8, kTN = 8;
constexpr int kThreadsN = kBN / kTN;                // 16
constexpr int kThreads = (kBM / kTM) * kThreadsN;  // 256

// op(A) is k-contiguous when A is stored m x k; op(B) when B is stored n x k (transposed).
template <bool kTransA>
using ALoader = sgemm::KMajorTileLoader<kBK, kBM, kThreads, !kTransA>;
template <bool kTransB>
using BLoader = sgemm::KMajorTileLoader<kBK, kBN, kThreads, kTransB>;

__device__ __forceinline__ float4 lds128(const float* p) {
  return *reinterpret_cast<const float4*>(p);
}

// Thread (ty, tx) owns the 8 x 8 block of C at rows 8 ty .., columns 8 tx .. of the tile.
// Two blocks an SM (<= 128 registers a thread): one block's loads overlap the other's FMAs.
template <bool kTransA, bool kTransB>
__global__ void __launch_bounds__(kThreads, 2)
    sgemm_vectorized_kernel(int m, int n, int k, const float* a, int64_t lda, const float* b,
                            int64_t ldb, float* c, int64_t ldc, float alpha, float beta,
                            int tiles_n) {
  using LoaderA = ALoader<kTransA>;
  using LoaderB = BLoader<kTransB>;
  __shared__ __align__(16) float a_tile[kBK * LoaderA::kStride];
  __shared__ __align__(16) float b_tile[kBK * LoaderB::kStride];
  const int m0 = static_cast<int>(blockIdx.x / tiles_n) * kBM;
  const int n0 = static_cast<int>(blockIdx.x % tiles_n) * kBN;
  const int tx = threadIdx.x % kThreadsN, ty = threadIdx.x / kThreadsN;

  LoaderA a_loader(a, lda, m, k, m0);
  LoaderB b_loader(b, ldb, n, k, n0);
  float acc[kTM][kTN] = {};
  for (int k_tiles = (k - 1) / kBK + 1; k_tiles > 0; --k_tiles) {
    a_loader.load();
    b_loader.load();
    a_loader.store(a_tile);
    b_loader.store(b_tile);
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kBK; ++kk) {
      const float* a_row = a_tile + kk * LoaderA::kStride + ty * kTM;
      const float* b_row = b_tile + kk * LoaderB::kStride + tx * kTN;
      const float4 a_lo = lds128(a_row), a_hi = lds128(a_row + 4);
      const float4 b_lo = lds128(b_row), b_hi = lds128(b_row + 4);
      const float a_frag[kTM] = {a_lo.x, a_lo.y, a_lo.z, a_lo.w, a_hi.x, a_hi.y, a_hi.z, a_hi.w};
      const float b_frag[kTN] = {b_lo.x, b_lo.y, b_lo.z, b_lo.w, b_hi.x, b_hi.y, b_hi.z, b_hi.w};
#pragma unroll
      for (int i = 0; i < kTM; ++i)
#pragma unroll
        for (int j = 0; j < kTN; ++j) acc[i][j] = fmaf(a_frag[i], b_frag[j], acc[i][j]);
    }
    __syncthreads();  // the tiles are overwritten next step
    a_loader.advance();
    b_loader.advance();
  }

  // Counted down from the edges: m0 + offset may pass 2**31, m - m0 - offset cannot.
  const int rows_left = m - m0 - ty * kTM, cols_left = n - n0 - tx * kTN;
#pragma unroll
  for (int i = 0; i < kTM; ++i) {
    if (i >= rows_left) break;
    float* c_row = c + (static_cast<int64_t>(m0) + ty * kTM + i) * ldc + n0 + tx * kTN;
#pragma unroll
    for (int j = 0; j < kTN; j += 4)
      sgemm::store_row4(c_row + j, cols_left - j,
                        make_float4(acc[i][j], acc[i][j + 1], acc[i][j + 2], acc[i][j + 3]),
                        alpha, beta);
  }
}

template <bool kTransA, bool kTransB>
void launch(const GemmArgs& args, cudaStream_t stream) {
  const auto blocks = static_cast<unsigned>(sgemm::tile_count(args, kBM, kBN));
  sgemm_vectorized_kernel<kTransA, kTransB><<<blocks, kThreads, 0, stream>>>(
      static_cast<int>(args.m), static_cast<int>(args.n), static_cast<int>(args.k),
      static_cast<const float*>(args.a), args.lda, static_cast<const float*>(args.b), args.ldb,
      static_cast<float*>(args.c), args.ldc, args.alpha, args.beta,
      sgemm::tiles_along_n(args, kBN));
  check_launch("sgemm_vectorized_kernel");
}

}  // namespace

const char* support_sgemm_vectorized(const GemmArgs& args, int /*cc*/) {
  if (const char* reason = sgemm::float4_reason(args)) return reason;
  return sgemm::tile_grid_reason(args, kBM, kBN);
}

void launch_sgemm_vectorized(const GemmArgs& args, cudaStream_t stream) {
  if (args.trans_a)
    args.trans_b ? launch<true, true>(args, stream) : launch<true, false>(args, stream);
  else
    args.trans_b ? launch<false, true>(args, stream) : launch<false, false>(args, stream);
}

}  // namespace dlcb::cuda::gemm_variants_impl
