// "fused-sequence-tc": the fused-sequence technique (one launch per step, recurrent GEMM of all
// G gates of a block of hidden units fused with the cell math) on tensor cores, for 16-bit
// layers on sm_80+.
//
// Step t computes gates (N x G*H) = h_{t-1} (N x H) W_hh^T with mma.sync m16n8k16 (fp32
// accumulation). The 16-bit A operand is h_{t-1} rounded to the dtype, which is exactly what
// the step before stored as y[t-1] (h0 itself at t = 0), so no extra copy of the state exists;
// the fp32 state (c, and h for GRU's z*h term) stays in the workspace as in the other kernels.
//
// CTA tile: 64 batch rows x kCols = G*U columns, column c = W_hh row (c / U)*H + j0 + c % U,
// i.e. the G gates of units j0..j0+U-1 side by side. 4 warps as 2 (rows) x 2 (columns), each
// 32 rows x kCols/2 columns = 2 x NT mma tiles. k runs in 64-deep stages (one 128-byte row per
// tile row) through a kStages-deep cp.async pipeline (6 x 16 KiB of shared memory for LSTM); h
// and W_hh stay k-contiguous in shared memory, so ldmatrix (no transpose) yields both
// fragments. The grid is (H / U) x (N / 64) CTAs, e.g. 64 x 2 for LSTM H = 1024, N = 128.
// 16-byte chunk ch of tile row r lives at chunk ch ^ (r % 8) of that row: the 8 rows one
// ldmatrix phase reads hit 8 distinct chunk positions, i.e. all 32 banks once.
//
// Epilogue: the fp32 accumulators go through shared memory (reusing the pipeline buffers), then
// each thread takes (batch row, unit) pairs, consecutive threads consecutive units, adds gx
// (input projection with biases), applies the cell and stores c, y[t] (and h for GRU, h_n/c_n
// at the last step).
//
// Edges: rows n >= N, units j >= H and k >= H are zero-filled by cp.async (src-size 0); the
// support check asks H % 8 == 0 so a 16-byte chunk never straddles the end of a row.
//
// Steps overlap on sm_90+ through programmatic dependent launch: a step lets the next one launch
// once its main loop is done, and the next one fetches its first W_hh stages (inputs that no
// kernel of the sequence writes) before griddepcontrol.wait, which returns when the step before
// has completed and its writes are visible. Everything else it reads (h0 or y[t-1], gx, c, the
// fp32 h) and everything it writes comes after the wait.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <string>

#include "common/check.cuh"
#include "common/launch.cuh"
#include "rnn/cell.cuh"
#include "rnn/kernels.h"
#include "rnn/mma_fragments.cuh"

namespace dlcb::cuda::rnn_impl {

namespace {

constexpr int kThreads = 128;
constexpr int kBatchTile = 64;
constexpr int kDepth = 64;  // k per stage: 128 bytes of 16-bit elements per tile row
constexpr int kChunks = kDepth / 8;
constexpr int kStages = 6;

// Units per CTA: LSTM and GRU 16 (64 / 48 columns), vanilla 32 (32 columns).
template <int G>
__host__ __device__ constexpr int units_per_cta() { return G == 1 ? 32 : 16; }

template <int G>
__host__ __device__ constexpr int tile_columns() { return G * units_per_cta<G>(); }

// The epilogue tile's pitch: kCols + 8 floats puts the 4 rows of a half-warp's 8-byte stores
// 8 banks apart (kCols % 32 is 0 or 16), so each store phase is conflict-free.
template <int G>
__host__ __device__ constexpr int epilogue_pitch() { return tile_columns<G>() + 8; }

template <int G>
constexpr int shared_bytes() {
  constexpr int pipeline = kStages * (kBatchTile + tile_columns<G>()) * kDepth * 2;
  constexpr int epilogue = kBatchTile * epilogue_pitch<G>() * 4;
  return pipeline > epilogue ? pipeline : epilogue;
}

// No-ops before sm_90, and when the kernel was launched without programmatic serialization.
__device__ __forceinline__ void let_next_step_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void wait_for_previous_step() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

__device__ __forceinline__ int swizzled(int row, int chunk) {
  return row * kDepth + ((chunk ^ (row & 7)) * 8);
}

template <typename T>
struct TcStepParams {
  const T* h_op;        // N x H, h_{t-1} in the dtype: h0 or y[t-1]
  const float* gx;
  const float* h_prev;  // fp32 state (GRU)
  float* h_next;        // fp32 state (GRU)
  float* c;             // LSTM, in place
  const T* w_hh;
  const T* b_hh;  // GRU: b_hn = b_hh[2H + j]
  T* y;           // y[t]
  T* h_n;
  T* c_n;
  RnnCell cell;
  int n, h, t;
  bool last;
};

template <typename T, int G>
__global__ void __launch_bounds__(kThreads) fused_step_tc_kernel(const TcStepParams<T> p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  constexpr int kUnits = units_per_cta<G>();
  constexpr int kCols = tile_columns<G>();
  constexpr int kWarpCols = kCols / 2;
  constexpr int kNt = kWarpCols / 8;  // n8 tiles per warp
  constexpr int kStageElems = (kBatchTile + kCols) * kDepth;
  static_assert(kWarpCols % 8 == 0, "a warp's columns must be whole n8 tiles");
  static_assert(kBatchTile * kChunks % kThreads == 0 && kCols * kChunks % kThreads == 0,
                "a stage's 16-byte chunks must split evenly over the threads");
  static_assert(kBatchTile * kUnits % kThreads == 0, "the epilogue's pairs split evenly");
  extern __shared__ __align__(128) unsigned char smem_raw[];
  T* const smem = reinterpret_cast<T*>(smem_raw);

  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int warp_row = (warp / 2) * 32, warp_col = (warp % 2) * kWarpCols;
  const int j0 = blockIdx.x * kUnits, b0 = blockIdx.y * kBatchTile;
  const int H = p.h, N = p.n;

  // Thread i of a pass copies chunk i % 8 of tile row i / 8: a warp reads 4 whole 128-byte rows.
  auto load_h = [&](int stage, int k_tile) {
    T* const hs = smem + stage * kStageElems;
#pragma unroll
    for (int pass = 0; pass < kBatchTile * kChunks / kThreads; ++pass) {
      const int i = tid + pass * kThreads;
      const int r = i / kChunks, ch = i % kChunks, n = b0 + r, k = k_tile * kDepth + ch * 8;
      const bool valid = n < N && k < H;
      const T* src = valid ? p.h_op + static_cast<long long>(n) * H + k : p.h_op;
      cp_async_16(shared_address(hs + swizzled(r, ch)), src, valid);
    }
  };
  auto load_w = [&](int stage, int k_tile) {
    T* const ws = smem + stage * kStageElems + kBatchTile * kDepth;
#pragma unroll
    for (int pass = 0; pass < kCols * kChunks / kThreads; ++pass) {
      const int i = tid + pass * kThreads;
      const int col = i / kChunks, ch = i % kChunks, k = k_tile * kDepth + ch * 8;
      const int j = j0 + col % kUnits, row = (col / kUnits) * H + j;
      const bool valid = j < H && k < H;
      const T* src = valid ? p.w_hh + static_cast<long long>(row) * H + k : p.w_hh;
      cp_async_16(shared_address(ws + swizzled(col, ch)), src, valid);
    }
  };

  float acc[2][kNt][4] = {};
  const int k_tiles = (H + kDepth - 1) / kDepth;
  // One commit per stage, even when empty, so that the group count stays kStages - 1 ahead. The
  // first group also holds the W_hh parts of all prologue stages, fetched before the wait.
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s)
    if (s < k_tiles) load_w(s, s);
  wait_for_previous_step();
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < k_tiles) load_h(s, s);
    cp_async_commit();
  }
  for (int kt = 0; kt < k_tiles; ++kt) {
    cp_async_wait<kStages - 2>();  // tile kt has landed (this thread's part)
    __syncthreads();               // ... everyone's; and stage (kt - 1) % kStages is free
    if (kt + kStages - 1 < k_tiles) {
      load_w((kt + kStages - 1) % kStages, kt + kStages - 1);
      load_h((kt + kStages - 1) % kStages, kt + kStages - 1);
    }
    cp_async_commit();

    const T* const hs = smem + (kt % kStages) * kStageElems;
    const T* const ws = hs + kBatchTile * kDepth;
#pragma unroll
    for (int kk = 0; kk < kDepth / 16; ++kk) {
      // A, x4: lanes 0-7 rows 0-7 / k 0-7 (a0), 8-15 rows 8-15 / k 0-7 (a1),
      //        16-23 rows 0-7 / k 8-15 (a2), 24-31 rows 8-15 / k 8-15 (a3).
      unsigned a[2][4];
#pragma unroll
      for (int mt = 0; mt < 2; ++mt) {
        const int r = warp_row + mt * 16 + lane % 8 + (lane / 8 % 2) * 8;
        ldmatrix_x4(shared_address(hs + swizzled(r, kk * 2 + lane / 16)), a[mt]);
      }
      // B, x4 over two n8 tiles: lanes 0-7 n 0-7 / k 0-7 (b0 of tile 0), 8-15 n 0-7 / k 8-15
      // (b1 of tile 0), 16-23 n 8-15 / k 0-7 (b0 of tile 1), 24-31 n 8-15 / k 8-15 (b1 of tile 1).
      unsigned b[kNt][2];
#pragma unroll
      for (int np = 0; np < kNt / 2; ++np) {
        const int col = warp_col + np * 16 + lane % 8 + (lane / 16) * 8;
        unsigned r[4];
        ldmatrix_x4(shared_address(ws + swizzled(col, kk * 2 + lane / 8 % 2)), r);
        b[2 * np][0] = r[0], b[2 * np][1] = r[1], b[2 * np + 1][0] = r[2], b[2 * np + 1][1] = r[3];
      }
      if constexpr (kNt % 2 == 1) {  // x2 for the odd last tile: lanes 0-7 k 0-7, 8-15 k 8-15
        const int col = warp_col + (kNt - 1) * 8 + lane % 8;
        ldmatrix_x2(shared_address(ws + swizzled(col, kk * 2 + lane / 8 % 2)), b[kNt - 1]);
      }
#pragma unroll
      for (int mt = 0; mt < 2; ++mt)
#pragma unroll
        for (int nt = 0; nt < kNt; ++nt) mma_16816<T>(acc[mt][nt], a[mt], b[nt]);
    }
  }
  let_next_step_launch();
  cp_async_wait<0>();  // only empty groups remain; the pipeline buffers become the epilogue tile
  __syncthreads();

  constexpr int kPitch = epilogue_pitch<G>();
  float* const gates = reinterpret_cast<float*>(smem_raw);
#pragma unroll
  for (int mt = 0; mt < 2; ++mt)
#pragma unroll
    for (int nt = 0; nt < kNt; ++nt) {
      const int r = warp_row + mt * 16 + lane / 4, col = warp_col + nt * 8 + (lane % 4) * 2;
      *reinterpret_cast<float2*>(&gates[r * kPitch + col]) =
          make_float2(acc[mt][nt][0], acc[mt][nt][1]);
      *reinterpret_cast<float2*>(&gates[(r + 8) * kPitch + col]) =
          make_float2(acc[mt][nt][2], acc[mt][nt][3]);
    }
  __syncthreads();

#pragma unroll 2
  for (int e = tid; e < kBatchTile * kUnits; e += kThreads) {
    const int r = e / kUnits, u = e % kUnits, n = b0 + r, j = j0 + u;
    if (n >= N || j >= H) continue;
    const long long at = static_cast<long long>(n) * H + j;
    const float* gx = p.gx + (static_cast<long long>(p.t) * N + n) * G * H;
    const float* hh = gates + r * kPitch + u;  // gate g at hh[g * kUnits]
    float pre[G], hn = 0.0f;
#pragma unroll
    for (int g = 0; g < G; ++g) pre[g] = gx[g * H + j] + hh[g * kUnits];
    if constexpr (G == 3) {
      pre[2] = gx[2 * H + j];
      hn = hh[2 * kUnits] + to_float(p.b_hh[2 * H + j]);
    }
    float h = G == 3 ? p.h_prev[at] : 0.0f;
    float c = G == 4 ? p.c[at] : 0.0f;
    cell_update<G>(p.cell, pre, hn, h, c);
    if constexpr (G == 3) p.h_next[at] = h;
    p.y[at] = from_float<T>(h);
    if (p.last) p.h_n[at] = from_float<T>(h);
    if constexpr (G == 4) {
      p.c[at] = c;
      if (p.last) p.c_n[at] = from_float<T>(c);
    }
  }
#endif
}

template <typename T, int G>
void launch_typed(const RnnArgs& a, const Workspace& ws, cudaStream_t stream) {
  constexpr int kSmem = shared_bytes<G>();
  check(cudaFuncSetAttribute(fused_step_tc_kernel<T, G>,
                             cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem),
        "cudaFuncSetAttribute(fused_step_tc_kernel)");
  int device = 0, major = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  check(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device),
        "cudaDeviceGetAttribute(ComputeCapabilityMajor)");
  cudaLaunchAttribute overlap{};
  overlap.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  overlap.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(ceil_div(a.hidden, units_per_cta<G>()), ceil_div(a.batch, kBatchTile));
  config.blockDim = dim3(kThreads);
  config.dynamicSmemBytes = kSmem;
  config.stream = stream;
  config.attrs = &overlap;
  config.numAttrs = major >= 9 ? 1 : 0;  // the sm_80 code has no griddepcontrol.wait
  const long long nh = static_cast<long long>(a.batch) * a.hidden;
  TcStepParams<T> p{};
  p.gx = ws.gx;
  p.c = ws.c;
  p.w_hh = static_cast<const T*>(a.w_hh);
  p.b_hh = static_cast<const T*>(a.b_hh);
  p.h_n = static_cast<T*>(a.h_n);
  p.c_n = static_cast<T*>(a.c_n);
  p.cell = a.cell;
  p.n = a.batch;
  p.h = a.hidden;
  T* const y = static_cast<T*>(a.y);
  for (int t = 0; t < a.timesteps; ++t) {
    p.t = t;
    p.h_op = t == 0 ? static_cast<const T*>(a.h0) : y + (t - 1) * nh;
    p.y = y + t * nh;
    p.h_prev = ws.h + (t & 1) * nh;
    p.h_next = ws.h + ((t + 1) & 1) * nh;
    p.last = t + 1 == a.timesteps;
    check(cudaLaunchKernelEx(&config, fused_step_tc_kernel<T, G>, p), "fused_step_tc_kernel");
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

bool misaligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 != 0; }

}  // namespace

std::string support_fused_sequence_tc(const RnnArgs& a) {
  if (a.dtype != DType::f16 && a.dtype != DType::bf16)
    return "fused-sequence-tc runs float16 and bfloat16 only (tensor-core operands)";
  if (a.hidden % 8 != 0)
    return "fused-sequence-tc: hidden " + std::to_string(a.hidden) +
           " must be a multiple of 8 (rows of h and W_hh are copied in 16-byte chunks)";
  if (misaligned16(a.w_hh) || misaligned16(a.h0) || misaligned16(a.y))
    return "fused-sequence-tc: w_hh, h0 and y must be 16-byte aligned (16-byte cp.async)";
  if (ceil_div(a.batch, kBatchTile) > 65535)
    return "fused-sequence-tc: batch must be <= 65535 * 64";
  const int g = rnn_gates(a.cell);
  const int needed = g == 1 ? shared_bytes<1>() : g == 4 ? shared_bytes<4>() : shared_bytes<3>();
  int device = 0, optin = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  check(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device),
        "cudaDeviceGetAttribute(MaxSharedMemoryPerBlockOptin)");
  if (optin < needed)
    return "fused-sequence-tc: needs " + std::to_string(needed) +
           " B of shared memory per block, the device allows " + std::to_string(optin);
  return "";
}

void launch_fused_sequence_tc(const RnnArgs& a, const Workspace& ws, cudaStream_t stream) {
  switch (a.dtype) {
    case DType::f16: return launch_cell<__half>(a, ws, stream);
    case DType::bf16: return launch_cell<__nv_bfloat16>(a, ws, stream);
    case DType::f32: break;  // refused by the support check
  }
}

}  // namespace dlcb::cuda::rnn_impl
