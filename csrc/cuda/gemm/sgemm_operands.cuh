#pragma once
// Operand access shared by the fp32 CUDA-core GEMMs (sgemm_*.cu): op(A) and op(B) whatever
// their layout, the block-to-tile mapping, 16-byte tile loads for the vectorized kernels, and
// the alpha/beta epilogue (C is never read when beta == 0, so it may hold NaNs).
#include <cuda_runtime.h>

#include <climits>
#include <cstdint>

#include "gemm/gemm.h"

namespace dlcb::cuda::sgemm {

// op(X) as a row-major matrix: element (r, c) at data[r * row_stride + c * col_stride].
struct OperandView {
  const float* data;
  int64_t row_stride, col_stride;

  __device__ __forceinline__ float at(int64_t r, int64_t c) const {
    return data[r * row_stride + c * col_stride];
  }
  // Threads that walk the contiguous direction read coalesced.
  __host__ __device__ bool cols_contiguous() const { return col_stride == 1; }
};

// op(A) is m x k: A stored m x k (row stride lda), or k x m when trans_a.
inline OperandView op_a(const GemmArgs& g) {
  const auto* p = static_cast<const float*>(g.a);
  return g.trans_a ? OperandView{p, 1, g.lda} : OperandView{p, g.lda, 1};
}

// op(B) is k x n: B stored k x n (row stride ldb), or n x k when trans_b.
inline OperandView op_b(const GemmArgs& g) {
  const auto* p = static_cast<const float*>(g.b);
  return g.trans_b ? OperandView{p, 1, g.ldb} : OperandView{p, g.ldb, 1};
}

// Blocks are numbered along a 1-D grid (2**31 - 1 blocks, where grid.y stops at 65535), row
// of tiles after row of tiles, so that neighbouring blocks share their tile of A.
inline long long tile_count(const GemmArgs& g, int tile_m, int tile_n) {
  return (g.m + tile_m - 1) / tile_m * ((g.n + tile_n - 1) / tile_n);
}

inline int tiles_along_n(const GemmArgs& g, int tile_n) {
  return static_cast<int>((g.n + tile_n - 1) / tile_n);
}

inline const char* tile_grid_reason(const GemmArgs& g, int tile_m, int tile_n) {
  return tile_count(g, tile_m, tile_n) > INT_MAX ? "more tiles of C than a 1-D grid has blocks"
                                                 : nullptr;
}

// The 16-byte loads and stores need aligned rows: every row start a multiple of 16 bytes.
inline const char* float4_reason(const GemmArgs& g) {
  if (reinterpret_cast<std::uintptr_t>(g.a) % 16) return "a must be 16-byte aligned (float4 loads)";
  if (reinterpret_cast<std::uintptr_t>(g.b) % 16) return "b must be 16-byte aligned (float4 loads)";
  if (reinterpret_cast<std::uintptr_t>(g.c) % 16) return "c must be 16-byte aligned (float4 stores)";
  if (g.lda % 4) return "lda must be a multiple of 4 (16-byte aligned rows of A)";
  if (g.ldb % 4) return "ldb must be a multiple of 4 (16-byte aligned rows of B)";
  if (g.ldc % 4) return "ldc must be a multiple of 4 (16-byte aligned rows of C)";
  return nullptr;
}

__device__ __forceinline__ float epilogue(float acc, float alpha, float beta, const float* c) {
  return beta == 0.0f ? alpha * acc : fmaf(beta, *c, alpha * acc);
}

// Stores alpha * acc + beta * C into the four elements c[0..3] of a row, those of them that
// are among the `cols_left` columns still inside C. c is 16-byte aligned.
__device__ __forceinline__ void store_row4(float* c, int cols_left, float4 acc, float alpha,
                                           float beta) {
  if (cols_left >= 4) {
    float4 v = make_float4(alpha * acc.x, alpha * acc.y, alpha * acc.z, alpha * acc.w);
    if (beta != 0.0f) {
      const float4 old = *reinterpret_cast<const float4*>(c);
      v.x = fmaf(beta, old.x, v.x);
      v.y = fmaf(beta, old.y, v.y);
      v.z = fmaf(beta, old.z, v.z);
      v.w = fmaf(beta, old.w, v.w);
    }
    *reinterpret_cast<float4*>(c) = v;
    return;
  }
  const float a[4] = {acc.x, acc.y, acc.z, acc.w};
#pragma unroll
  for (int i = 0; i < 3; ++i)
    if (i < cols_left) c[i] = epilogue(a[i], alpha, beta, c + i);
}

// A kBK x kTileMN slice of op(A) (mn = m) or op(B) (mn = n) staged k-major in shared memory,
// tile[kk * kStride + mn], so that the compute loop reads 4 consecutive m (or n) with LDS.128.
// Each thread moves kPasses float4s from global memory along the operand's contiguous
// direction; when that direction is k (A not transposed, B transposed) it writes them
// transposed, 4 scalar stores. Elements outside the operand are zero, never read.
//
// Memory rows (the strided direction) of the slice are mn (k contiguous) or k (mn contiguous);
// thread t takes row t / kRowVectors, float4 t % kRowVectors of it, then rows kRowsPerPass
// further on each pass. The row padding of 4 floats keeps rows 16-byte aligned and spreads the
// transposed stores of k = 0 and k = 4 over different banks (for kBK = 8).
template <int kBK, int kTileMN, int kThreads, bool kKContiguous>
class KMajorTileLoader {
 public:
  static constexpr int kStride = kTileMN + 4;
  static constexpr int kRowVectors = (kKContiguous ? kBK : kTileMN) / 4;
  static constexpr int kRowsPerPass = kThreads / kRowVectors;
  static constexpr int kPasses = (kKContiguous ? kTileMN : kBK) / kRowsPerPass;
  static_assert(kBK % 4 == 0 && kTileMN % 4 == 0, "tiles are whole float4s");
  static_assert(kThreads % kRowVectors == 0 && kPasses >= 1 &&
                    kPasses * kRowsPerPass == (kKContiguous ? kTileMN : kBK),
                "the threads cover the slice in whole passes");

  // x: the stored operand, ld its row stride; mn_extent, k_extent: op(X)'s mn and k sizes;
  // mn0: first mn of this block's slices. Starts at the slice k = 0 .. kBK - 1.
  __device__ KMajorTileLoader(const float* x, int64_t ld, int mn_extent, int k_extent, int mn0) {
    row_ = static_cast<int>(threadIdx.x) / kRowVectors;
    col_ = static_cast<int>(threadIdx.x) % kRowVectors * 4;
    if (kKContiguous) {
      mn_left_ = mn_extent - mn0 - row_;
      k_left_ = k_extent - col_;
      ptr_ = x + (static_cast<int64_t>(mn0) + row_) * ld + col_;
      step_ = kBK;
    } else {
      mn_left_ = mn_extent - mn0 - col_;
      k_left_ = k_extent - row_;
      ptr_ = x + static_cast<int64_t>(row_) * ld + mn0 + col_;
      step_ = kBK * ld;
    }
    pass_stride_ = kRowsPerPass * ld;
  }

  // Global memory -> registers, for the current slice.
  __device__ __forceinline__ void load() {
#pragma unroll
    for (int p = 0; p < kPasses; ++p) {
      const float* src = ptr_ + p * pass_stride_;
      // Elements of this float4 inside op(X): whole row in or out, and how many of its 4.
      const int row_left = (kKContiguous ? mn_left_ : k_left_) - p * kRowsPerPass;
      const int vec_left = kKContiguous ? k_left_ : mn_left_;
      if (row_left > 0 && vec_left >= 4) {
        regs_[p] = __ldg(reinterpret_cast<const float4*>(src));
      } else {
        const bool in = row_left > 0;
        regs_[p].x = in && vec_left > 0 ? __ldg(src) : 0.0f;
        regs_[p].y = in && vec_left > 1 ? __ldg(src + 1) : 0.0f;
        regs_[p].z = in && vec_left > 2 ? __ldg(src + 2) : 0.0f;
        regs_[p].w = 0.0f;
      }
    }
  }

  // Registers -> shared memory tile[kBK][kStride].
  __device__ __forceinline__ void store(float* tile) const {
#pragma unroll
    for (int p = 0; p < kPasses; ++p) {
      const int row = row_ + p * kRowsPerPass;
      if (kKContiguous) {
        tile[(col_ + 0) * kStride + row] = regs_[p].x;
        tile[(col_ + 1) * kStride + row] = regs_[p].y;
        tile[(col_ + 2) * kStride + row] = regs_[p].z;
        tile[(col_ + 3) * kStride + row] = regs_[p].w;
      } else {
        *reinterpret_cast<float4*>(tile + row * kStride + col_) = regs_[p];
      }
    }
  }

  // On to the next slice along k.
  __device__ __forceinline__ void advance() {
    ptr_ += step_;
    k_left_ -= kBK;
  }

 private:
  const float* ptr_;
  int64_t step_, pass_stride_;
  int row_, col_;
  int mn_left_, k_left_;  // may go negative: never overflows, unlike an index past 2**31
  float4 regs_[kPasses];
};

}  // namespace dlcb::cuda::sgemm
