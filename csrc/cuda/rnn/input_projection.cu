// The input projection of all T steps as one GEMM into the fp32 workspace:
//   gx (T*N x G*H) = x (T*N x I) W_ih^T + b_ih + b_hh   (GRU's n gate: + b_ih only, its b_hn
//   stays inside r * (W_hn h + b_hn)).
// Both operands are K-contiguous (x rows and W_ih rows), so each 128 x 8 tile is loaded along k
// (coalesced), converted to fp32 and stored k-major in shared memory; 256 threads each own an
// 8 x 8 block of the 128 x 128 output tile, as four 4 x 4 quadrants 64 rows / 64 columns apart
// (16-byte shared loads without bank conflicts). Register-staged double buffering: the next
// k-tile is fetched from global memory while the current one is multiplied.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "common/launch.cuh"
#include "rnn/cell.cuh"
#include "rnn/kernels.h"

namespace dlcb::cuda::rnn_impl {

namespace {

constexpr int kTile = 128;  // rows (t, n) and columns (gate units) of the output tile
constexpr int kDepth = 8;   // k per shared-memory stage
constexpr int kThreads = 256;

// Thread tid fetches 4 consecutive k of row tid / 2 of each operand tile.
template <typename T>
__device__ __forceinline__ void fetch(const T* __restrict__ src, int rows, int k_size, int row0,
                                      int k0, float (&dst)[4]) {
  const int row = row0 + threadIdx.x / 2;
  const int k = k0 + (threadIdx.x % 2) * 4;
  const T* p = src + static_cast<long long>(row) * k_size + k;
#pragma unroll
  for (int e = 0; e < 4; ++e) dst[e] = row < rows && k + e < k_size ? to_float(p[e]) : 0.0f;
}

__device__ __forceinline__ void stash(const float (&v)[4], float (*tile)[kTile]) {
  const int row = threadIdx.x / 2, k = (threadIdx.x % 2) * 4;
#pragma unroll
  for (int e = 0; e < 4; ++e) tile[k + e][row] = v[e];
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    input_projection_kernel(const T* __restrict__ x, const T* __restrict__ w_ih,
                            const T* __restrict__ b_ih, const T* __restrict__ b_hh,
                            float* __restrict__ gx, int rows, int cols, int k_size,
                            int gru_n_begin) {
  __shared__ __align__(16) float xs[2][kDepth][kTile];
  __shared__ __align__(16) float ws[2][kDepth][kTile];
  const int row0 = blockIdx.x * kTile, col0 = blockIdx.y * kTile;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;

  float acc[8][8] = {};
  float x_next[4], w_next[4];
  fetch(x, rows, k_size, row0, 0, x_next);
  fetch(w_ih, cols, k_size, col0, 0, w_next);
  stash(x_next, xs[0]);
  stash(w_next, ws[0]);
  __syncthreads();

  const int k_tiles = (k_size + kDepth - 1) / kDepth;
  for (int kt = 0; kt < k_tiles; ++kt) {
    const int stage = kt & 1;
    const bool more = kt + 1 < k_tiles;
    if (more) {
      fetch(x, rows, k_size, row0, (kt + 1) * kDepth, x_next);
      fetch(w_ih, cols, k_size, col0, (kt + 1) * kDepth, w_next);
    }
#pragma unroll
    for (int k = 0; k < kDepth; ++k) {
      float a[8], b[8];
      *reinterpret_cast<float4*>(a) = *reinterpret_cast<const float4*>(&xs[stage][k][ty * 4]);
      *reinterpret_cast<float4*>(a + 4) =
          *reinterpret_cast<const float4*>(&xs[stage][k][64 + ty * 4]);
      *reinterpret_cast<float4*>(b) = *reinterpret_cast<const float4*>(&ws[stage][k][tx * 4]);
      *reinterpret_cast<float4*>(b + 4) =
          *reinterpret_cast<const float4*>(&ws[stage][k][64 + tx * 4]);
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    // The other stage was last read in iteration kt - 1, which the barrier below it closed.
    if (more) {
      stash(x_next, xs[stage ^ 1]);
      stash(w_next, ws[stage ^ 1]);
    }
    __syncthreads();
  }

#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const int col = col0 + (j < 4 ? tx * 4 + j : 64 + tx * 4 + j - 4);
    if (col >= cols) continue;
    const float bias = to_float(b_ih[col]) + (col >= gru_n_begin ? 0.0f : to_float(b_hh[col]));
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int row = row0 + (i < 4 ? ty * 4 + i : 64 + ty * 4 + i - 4);
      if (row < rows) gx[static_cast<long long>(row) * cols + col] = acc[i][j] + bias;
    }
  }
}

template <typename T>
void launch_typed(const RnnArgs& a, const Workspace& ws, cudaStream_t stream) {
  const int rows = a.timesteps * a.batch, cols = rnn_gates(a.cell) * a.hidden;
  const int gru_n_begin = a.cell == RnnCell::gru ? 2 * a.hidden : cols;
  const dim3 grid(ceil_div(rows, kTile), ceil_div(cols, kTile));
  input_projection_kernel<T><<<grid, kThreads, 0, stream>>>(
      static_cast<const T*>(a.x), static_cast<const T*>(a.w_ih), static_cast<const T*>(a.b_ih),
      static_cast<const T*>(a.b_hh), ws.gx, rows, cols, a.input_size, gru_n_begin);
  check_launch("input_projection_kernel");
}

}  // namespace

void launch_input_projection(const RnnArgs& a, const Workspace& ws, cudaStream_t stream) {
  switch (a.dtype) {
    case DType::f32: return launch_typed<float>(a, ws, stream);
    case DType::f16: return launch_typed<__half>(a, ws, stream);
    case DType::bf16: return launch_typed<__nv_bfloat16>(a, ws, stream);
  }
}

}  // namespace dlcb::cuda::rnn_impl
