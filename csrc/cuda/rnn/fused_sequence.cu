// "fused-sequence": one launch per timestep. Each CTA computes the recurrent GEMM
// h_{t-1} (N x H) W_hh^T for a 64-row batch block and a block of hidden units with ALL G gates of
// those units, so the cell math follows in registers: no gate pre-activation goes through
// global memory. The T launches queue back to back on the stream; the kernel boundary is the
// step barrier.
//
// Tiling: 256 threads = 16 (unit direction, tx) x 16 (batch direction, ty). A thread owns 4
// batch rows (ty*4 + i) x kUnitsPerThread units (tx*kUnitsPerThread + u) x G gates. The CTA
// holds kUnitsPerThread*16 units (all gates: G*16*kUnitsPerThread W_hh rows) x 64 batch rows.
// k runs in 16-deep stages through shared memory (h transposed k-major, W_hh rows k-major, both
// converted to fp32), register-staged double buffering.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "common/launch.cuh"
#include "rnn/cell.cuh"
#include "rnn/kernels.h"

namespace dlcb::cuda::rnn_impl {

namespace {

constexpr int kThreads = 256;
constexpr int kBatchPerThread = 4;
constexpr int kBatchTile = 16 * kBatchPerThread;  // 64
constexpr int kDepth = 16;

// Vanilla cells have one gate: a thread takes 4 units to keep a 4 x 4 register block.
template <int G>
__host__ __device__ constexpr int units_per_thread() { return G == 1 ? 4 : 1; }

template <typename T>
struct StepParams {
  const float* gx;
  const float* h_prev;
  float* h_next;
  float* c;  // LSTM, in place
  const T* w_hh;
  const T* b_hh;  // GRU: b_hn = b_hh[2H + j]
  T* y;
  T* h_n;
  T* c_n;
  RnnCell cell;
  int n, h, t;
  bool last;
};

template <typename T, int G>
__global__ void __launch_bounds__(kThreads) fused_step_kernel(const StepParams<T> p) {
  constexpr int kTu = units_per_thread<G>();
  constexpr int kUnits = 16 * kTu;     // hidden units per CTA
  constexpr int kCols = G * kUnits;    // W_hh rows per CTA
  constexpr int kHPitch = kBatchTile + 4;  // +4: fewer bank conflicts on the transposing stores
  constexpr int kWPitch = kCols + 4;
  constexpr int kWFetch = kCols * kDepth / kThreads;  // W_hh elements a thread fetches a stage
  static_assert(kCols * kDepth % kThreads == 0, "W_hh stage must split evenly over the threads");
  __shared__ __align__(16) float hs[2][kDepth][kHPitch];
  __shared__ __align__(16) float ws[2][kDepth][kWPitch];

  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int j0 = blockIdx.x * kUnits, b0 = blockIdx.y * kBatchTile;
  const int H = p.h, N = p.n;

  // Fetch mapping: element e = tid + i * kThreads of a stage is (k = e % 16, row = e / 16), so a
  // half-warp reads 16 consecutive k of one row.
  float h_next_stage[kBatchTile * kDepth / kThreads];
  float w_next_stage[kWFetch];
  auto fetch = [&](int k0) {
#pragma unroll
    for (int i = 0; i < kBatchTile * kDepth / kThreads; ++i) {
      const int e = tid + i * kThreads, k = k0 + e % kDepth, b = b0 + e / kDepth;
      h_next_stage[i] = b < N && k < H ? p.h_prev[static_cast<long long>(b) * H + k] : 0.0f;
    }
#pragma unroll
    for (int i = 0; i < kWFetch; ++i) {
      const int e = tid + i * kThreads, k = k0 + e % kDepth, r = e / kDepth;
      const int j = j0 + r % kUnits, row = (r / kUnits) * H + j;
      w_next_stage[i] =
          j < H && k < H ? to_float(p.w_hh[static_cast<long long>(row) * H + k]) : 0.0f;
    }
  };
  auto stash = [&](int stage) {
#pragma unroll
    for (int i = 0; i < kBatchTile * kDepth / kThreads; ++i) {
      const int e = tid + i * kThreads;
      hs[stage][e % kDepth][e / kDepth] = h_next_stage[i];
    }
#pragma unroll
    for (int i = 0; i < kWFetch; ++i) {
      const int e = tid + i * kThreads;
      ws[stage][e % kDepth][e / kDepth] = w_next_stage[i];
    }
  };

  float acc[kBatchPerThread][G][kTu] = {};
  fetch(0);
  stash(0);
  __syncthreads();
  const int k_tiles = (H + kDepth - 1) / kDepth;
  for (int kt = 0; kt < k_tiles; ++kt) {
    const int stage = kt & 1;
    const bool more = kt + 1 < k_tiles;
    if (more) fetch((kt + 1) * kDepth);
#pragma unroll
    for (int k = 0; k < kDepth; ++k) {
      const float4 hv = *reinterpret_cast<const float4*>(&hs[stage][k][ty * kBatchPerThread]);
      const float hb[4] = {hv.x, hv.y, hv.z, hv.w};
      float w[G][kTu];
#pragma unroll
      for (int g = 0; g < G; ++g) {
        if constexpr (kTu == 4) {
          const float4 wv = *reinterpret_cast<const float4*>(&ws[stage][k][g * kUnits + tx * 4]);
          w[g][0] = wv.x, w[g][1] = wv.y, w[g][2] = wv.z, w[g][3] = wv.w;
        } else {
          w[g][0] = ws[stage][k][g * kUnits + tx];
        }
      }
#pragma unroll
      for (int i = 0; i < kBatchPerThread; ++i)
#pragma unroll
        for (int g = 0; g < G; ++g)
#pragma unroll
          for (int u = 0; u < kTu; ++u) acc[i][g][u] = fmaf(hb[i], w[g][u], acc[i][g][u]);
    }
    // The other stage was last read in iteration kt - 1, which the barrier below it closed.
    if (more) stash(stage ^ 1);
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < kBatchPerThread; ++i) {
    const int b = b0 + ty * kBatchPerThread + i;
    if (b >= N) continue;
    const float* gx = p.gx + (static_cast<long long>(p.t) * N + b) * G * H;
#pragma unroll
    for (int u = 0; u < kTu; ++u) {
      const int j = j0 + tx * kTu + u;
      if (j >= H) continue;
      const long long at = static_cast<long long>(b) * H + j;
      float pre[G], hn = 0.0f;
#pragma unroll
      for (int g = 0; g < G; ++g) pre[g] = gx[g * H + j] + acc[i][g][u];
      if constexpr (G == 3) {
        pre[2] = gx[2 * H + j];
        hn = acc[i][2][u] + to_float(p.b_hh[2 * H + j]);
      }
      float h = G == 3 ? p.h_prev[at] : 0.0f;
      float c = G == 4 ? p.c[at] : 0.0f;
      cell_update<G>(p.cell, pre, hn, h, c);
      p.h_next[at] = h;
      p.y[static_cast<long long>(p.t) * N * H + at] = from_float<T>(h);
      if (p.last) p.h_n[at] = from_float<T>(h);
      if constexpr (G == 4) {
        p.c[at] = c;
        if (p.last) p.c_n[at] = from_float<T>(c);
      }
    }
  }
}

template <typename T, int G>
void launch_typed(const RnnArgs& a, const Workspace& ws, cudaStream_t stream) {
  constexpr int kUnits = 16 * units_per_thread<G>();
  const dim3 grid(ceil_div(a.hidden, kUnits), ceil_div(a.batch, kBatchTile));
  const long long nh = static_cast<long long>(a.batch) * a.hidden;
  StepParams<T> p{};
  p.gx = ws.gx;
  p.c = ws.c;
  p.w_hh = static_cast<const T*>(a.w_hh);
  p.b_hh = static_cast<const T*>(a.b_hh);
  p.y = static_cast<T*>(a.y);
  p.h_n = static_cast<T*>(a.h_n);
  p.c_n = static_cast<T*>(a.c_n);
  p.cell = a.cell;
  p.n = a.batch;
  p.h = a.hidden;
  for (int t = 0; t < a.timesteps; ++t) {
    p.t = t;
    p.h_prev = ws.h + (t & 1) * nh;
    p.h_next = ws.h + ((t + 1) & 1) * nh;
    p.last = t + 1 == a.timesteps;
    fused_step_kernel<T, G><<<grid, kThreads, 0, stream>>>(p);
    check_launch("fused_step_kernel");
  }
}

template <typename T>
void launch_cell(const RnnArgs& a, const Workspace& ws, cudaStream_t stream) {
  switch (rnn_gates(a.cell)) {
    case 1: return launch_typed<T, 1>(a, ws, stream);
    case 4: return launch_typed<T, 4>(a, ws, stream);
    default: return launch_typed<T, 3>(a, ws, stream);
  }
}

}  // namespace

const char* support_fused_sequence(const RnnArgs& a) {
  if (ceil_div(a.batch, kBatchTile) > 65535) return "fused-sequence: batch must be <= 65535 * 64";
  return nullptr;
}

void launch_fused_sequence(const RnnArgs& a, const Workspace& ws, cudaStream_t stream) {
  switch (a.dtype) {
    case DType::f32: return launch_cell<float>(a, ws, stream);
    case DType::f16: return launch_cell<__half>(a, ws, stream);
    case DType::bf16: return launch_cell<__nv_bfloat16>(a, ws, stream);
  }
}

}  // namespace dlcb::cuda::rnn_impl
