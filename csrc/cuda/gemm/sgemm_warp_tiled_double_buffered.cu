// sgemm-warp-tiled-double-buffered: the fastest CUDA-core fp32 GEMM of the ladder.
//
// A block of 256 threads computes a 128 x 128 tile of C, walking k in slices of 8:
//  * Warp tiles: the 8 warps form a 2 x 4 grid of 64 x 32 warp tiles; a warp's 32 lanes form
//    an 8 x 4 grid, and lane (lm, ln) owns rows lm*4 + {0..3} and 32 + lm*4 + {0..3}, columns
//    ln*4 + {0..3} and 16 + ln*4 + {0..3} of its warp tile: an 8 x 8 block of results as four
//    4 x 4 quadrants. Per k a lane reads its 8 values of A and 8 of B as four LDS.128 whose
//    addresses, per warp, are 128 (A) and 64 (B) contiguous bytes: no bank conflicts, and 64
//    FFMAs for 4 shared-memory loads.
//  * Lane bits 0 and 2 pick ln, bits 1, 3 and 4 pick lm. Shared memory returns 128 bytes (one
//    register for the warp) a cycle, so an LDS.128 takes 4 cycles, but only 2 when lanes n and
//    n ^ 1 (or n and n ^ 2) always read the same address, which the hardware then packs: here
//    lanes n, n ^ 1 share their A address (same lm) and lanes n, n ^ 2 their B address (same
//    ln). Per warp and k that is 8 shared-memory cycles of the SM against 16 for 64 FFMAs on
//    4 schedulers.
//  * Both operand slices are k-major in shared memory (A transposed on its way in when stored
//    m x k), read from global memory with one float4 a thread along the contiguous direction.
//  * Two shared-memory stages: the float4s of slice t + 1 are loaded from global memory into
//    registers before the FMAs of slice t and stored to the other stage after them, so global
//    latency hides behind arithmetic and one barrier a slice suffices.
//  * Two register stages for the fragments: the LDS.128 of k + 1 are issued before the FFMAs
//    of k.
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
constexpr int kWarpsM = 2, kWarpsN = 4;                  // 8 warps
constexpr int kWarpM = kBM / kWarpsM, kWarpN = kBN / kWarpsN;  // 64 x 32 warp tile
constexpr int kLanesM = 8, kLanesN = 4;                  // 32 lanes
constexpr int kThreads = 32 * kWarpsM * kWarpsN;         // 256
// A lane's 8 rows (columns) are two runs of 4, half a warp tile apart.
constexpr int kRowHalf = kWarpM / 2, kColHalf = kWarpN / 2;
static_assert(kLanesM * 4 == kRowHalf && kLanesN * 4 == kColHalf, "lanes tile the warp tile");

// op(A) is k-contiguous when A is stored m x k; op(B) when B is stored n x k (transposed).
template <bool kTransA>
using ALoader = sgemm::KMajorTileLoader<kBK, kBM, kThreads, !kTransA>;
template <bool kTransB>
using BLoader = sgemm::KMajorTileLoader<kBK, kBN, kThreads, kTransB>;

// A lane's operands for one k: 8 values of op(A) (its rows) and 8 of op(B) (its columns).
struct Fragments {
  float4 a[2], b[2];
};

__device__ __forceinline__ void load_fragments(Fragments& f, const float* a_slice,
                                               const float* b_slice) {
  f.a[0] = *reinterpret_cast<const float4*>(a_slice);
  f.a[1] = *reinterpret_cast<const float4*>(a_slice + kRowHalf);
  f.b[0] = *reinterpret_cast<const float4*>(b_slice);
  f.b[1] = *reinterpret_cast<const float4*>(b_slice + kColHalf);
}

__device__ __forceinline__ void outer_product(float (&acc)[8][8], const Fragments& f) {
  const float a[8] = {f.a[0].x, f.a[0].y, f.a[0].z, f.a[0].w,
                      f.a[1].x, f.a[1].y, f.a[1].z, f.a[1].w};
  const float b[8] = {f.b[0].x, f.b[0].y, f.b[0].z, f.b[0].w,
                      f.b[1].x, f.b[1].y, f.b[1].z, f.b[1].w};
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
}

// Two blocks an SM (<= 128 registers a thread, 2 x 16.5 KiB of shared memory): 16 warps to
// hide the FMA and shared-memory latencies.
template <bool kTransA, bool kTransB>
__global__ void __launch_bounds__(kThreads, 2)
    sgemm_warp_tiled_double_buffered_kernel(int m, int n, int k, const float* a, int64_t lda,
                                            const float* b, int64_t ldb, float* c, int64_t ldc,
                                            float alpha, float beta, int tiles_n) {
  using LoaderA = ALoader<kTransA>;
  using LoaderB = BLoader<kTransB>;
  constexpr int kAStage = kBK * LoaderA::kStride, kBStage = kBK * LoaderB::kStride;
  __shared__ __align__(16) float a_tile[2][kAStage];
  __shared__ __align__(16) float b_tile[2][kBStage];

  const int m0 = static_cast<int>(blockIdx.x / tiles_n) * kBM;
  const int n0 = static_cast<int>(blockIdx.x % tiles_n) * kBN;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int lane_m = ((lane >> 1) & 1) | (lane >> 3) << 1;  // bits 1, 3, 4: 0 .. kLanesM - 1
  const int lane_n = (lane & 1) | ((lane >> 1) & 2);         // bits 0, 2: 0 .. kLanesN - 1
  // Offsets, within the block tile, of the lane's first row and first column.
  const int row_off = warp / kWarpsN * kWarpM + lane_m * 4;
  const int col_off = warp % kWarpsN * kWarpN + lane_n * 4;

  LoaderA a_loader(a, lda, m, k, m0);
  LoaderB b_loader(b, ldb, n, k, n0);
  a_loader.load();
  b_loader.load();
  a_loader.store(a_tile[0]);
  b_loader.store(b_tile[0]);
  __syncthreads();

  float acc[8][8] = {};
  const int k_tiles = (k - 1) / kBK + 1;
  for (int t = 0; t < k_tiles; ++t) {
    const int stage = t & 1;
    const bool more = t + 1 < k_tiles;
    if (more) {  // global -> registers for slice t + 1; consumed after the FMAs below
      a_loader.advance();
      b_loader.advance();
      a_loader.load();
      b_loader.load();
    }
    const float* a_stage = a_tile[stage] + row_off;
    const float* b_stage = b_tile[stage] + col_off;
    Fragments frag[2];
    load_fragments(frag[0], a_stage, b_stage);
#pragma unroll
    for (int kk = 0; kk < kBK; ++kk) {
      if (kk + 1 < kBK)
        load_fragments(frag[(kk + 1) & 1], a_stage + (kk + 1) * LoaderA::kStride,
                       b_stage + (kk + 1) * LoaderB::kStride);
      outer_product(acc, frag[kk & 1]);
    }
    if (more) {
      // The other stage was last read in iteration t - 1, before its closing barrier.
      a_loader.store(a_tile[stage ^ 1]);
      b_loader.store(b_tile[stage ^ 1]);
    }
    __syncthreads();
  }

  // Counted down from the edges: m0 + offset may pass 2**31, m - m0 - offset cannot.
  const int cols_left = n - n0 - col_off;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int row = row_off + (i < 4 ? i : kRowHalf + i - 4);  // within the block tile
    if (row >= m - m0) continue;
    float* c_row = c + (static_cast<int64_t>(m0) + row) * ldc + n0 + col_off;
    sgemm::store_row4(c_row, cols_left,
                      make_float4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]), alpha, beta);
    sgemm::store_row4(c_row + kColHalf, cols_left - kColHalf,
                      make_float4(acc[i][4], acc[i][5], acc[i][6], acc[i][7]), alpha, beta);
  }
}

template <bool kTransA, bool kTransB>
void launch(const GemmArgs& args, cudaStream_t stream) {
  const auto blocks = static_cast<unsigned>(sgemm::tile_count(args, kBM, kBN));
  sgemm_warp_tiled_double_buffered_kernel<kTransA, kTransB><<<blocks, kThreads, 0, stream>>>(
      static_cast<int>(args.m), static_cast<int>(args.n), static_cast<int>(args.k),
      static_cast<const float*>(args.a), args.lda, static_cast<const float*>(args.b), args.ldb,
      static_cast<float*>(args.c), args.ldc, args.alpha, args.beta,
      sgemm::tiles_along_n(args, kBN));
  check_launch("sgemm_warp_tiled_double_buffered_kernel");
}

}  // namespace

const char* support_sgemm_warp_tiled_double_buffered(const GemmArgs& args, int /*cc*/) {
  if (const char* reason = sgemm::float4_reason(args)) return reason;
  return sgemm::tile_grid_reason(args, kBM, kBN);
}

void launch_sgemm_warp_tiled_double_buffered(const GemmArgs& args, cudaStream_t stream) {
  if (args.trans_a)
    args.trans_b ? launch<true, true>(args, stream) : launch<true, false>(args, stream);
  else
    args.trans_b ? launch<false, true>(args, stream) : launch<false, false>(args, stream);
}

}  // namespace dlcb::cuda::gemm_variants_impl
