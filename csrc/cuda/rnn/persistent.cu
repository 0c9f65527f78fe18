// "persistent": the whole sequence in ONE cooperative launch, for small batches (N <= 32).
// CTA c owns hidden units [c*U, c*U + U) and keeps their W_hh rows, all G gates (R = G*U rows of
// H), in shared memory, in the dtype of the arguments, for all T steps. Per step it stages
// h_{t-1} (N x H fp32, from L2: written by every CTA in the step before) through shared memory
// in chunks, computes its R x N gate pre-activations, applies the cell math to its units and
// writes h_t; then all CTAs meet at a grid barrier.
//
// On-chip capacity decides what runs: with one CTA per SM, U = ceil(H / SMs), and W_hh must fit
// in shared memory across the grid. An H100 (132 SMs x 227 KiB) holds an H=1024 LSTM's W_hh in
// fp32 (16 MiB: 32 rows x 1024 x 4 B = 128 KiB per CTA) as well as in 16 bits (64 KiB per CTA),
// so registers are not used as weight storage; larger layers are refused with the numbers.
//
// Work split in a CTA of 256 threads: thread = (row, slice) with row = tid % RP, slice = tid / RP,
// RP = R rounded up to a power of two, KS = 256 / RP k-slices. A thread multiplies its W_hh row
// with every batch row of h over the 16-byte groups slice, slice + KS, ... of k (fp32 partials
// for all N in registers); the KS partials meet in shared memory. W_hh is stored
// [k group][row][16 bytes], so the lanes of a warp (consecutive rows, one k group) read
// consecutive 16-byte words, and they all read the same h words (a broadcast).
//
// Grid barrier: a monotonically increasing arrival counter in the workspace (zeroed before the
// launch). After step t each CTA fences its h_t stores (__threadfence) and adds 1; it proceeds once
// the counter reaches (t + 1) * gridDim.x, read with ld.acquire.gpu. h is read with ld.global.cg
// (L2), never through the non-coherent L1. cudaLaunchCooperativeKernel refuses a grid that is
// not co-resident, so the barrier cannot deadlock.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <stdexcept>
#include <string>

#include "common/check.cuh"
#include "common/launch.cuh"
#include "rnn/cell.cuh"
#include "rnn/kernels.h"

namespace dlcb::cuda::rnn_impl {

namespace {

constexpr int kThreads = 256;
constexpr int kMaxBatch = 32;

template <typename T>
struct PersistentParams {
  const float* gx;
  float* h_state;  // 2 x N x H fp32, ping-pong
  float* c;  // N x H (LSTM)
  const T* w_hh;
  const T* b_hh;
  T* y;
  T* h_n;
  T* c_n;
  unsigned* counter;
  RnnCell cell;
  int timesteps, n, h;
  int units;   // U: hidden units per CTA
  int rows;    // R = G * U
  int row_pass;  // RP
  int slices;  // KS
  int chunk;   // k per staged chunk of h, a multiple of the 16-byte group
};

__device__ __forceinline__ unsigned load_acquire(const unsigned* p) {
  unsigned v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}

__device__ __forceinline__ void grid_barrier(unsigned* counter, unsigned target) {
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();
    atomicAdd(counter, 1u);
    while (load_acquire(counter) < target) {
    }
  }
  __syncthreads();
}

// One 16-byte group of W_hh as floats.
__device__ __forceinline__ void unpack(const float* p, float (&w)[4]) {
  const float4 v = *reinterpret_cast<const float4*>(p);
  w[0] = v.x, w[1] = v.y, w[2] = v.z, w[3] = v.w;
}
__device__ __forceinline__ void unpack(const __half* p, float (&w)[8]) {
  const uint4 v = *reinterpret_cast<const uint4*>(p);
  const unsigned words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&words[i]));
    w[2 * i] = f.x, w[2 * i + 1] = f.y;
  }
}
__device__ __forceinline__ void unpack(const __nv_bfloat16* p, float (&w)[8]) {
  const uint4 v = *reinterpret_cast<const uint4*>(p);
  const unsigned words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&words[i]));
    w[2 * i] = f.x, w[2 * i + 1] = f.y;
  }
}

// hs[n][k - k0] = h_prev[n][k] for the chunk [k0, k0 + chunk), zero for n >= N or k >= H.
// Loads go to L2 (.cg: other SMs wrote h_prev) and are issued 8 a thread before the first store,
// so that their latencies overlap; 16-byte loads when rows are 16-byte aligned (H % 4 == 0).
template <int NB>
__device__ __forceinline__ void stage_h(const float* h_prev, float* hs, int N, int H, int k0,
                                        int chunk) {
  constexpr int kBatch = 8;
  if (H % 4 == 0) {
    const int quads = chunk / 4, total = NB * quads;
    for (int e0 = threadIdx.x; e0 < total; e0 += kThreads * kBatch) {
      float4 v[kBatch];
#pragma unroll
      for (int i = 0; i < kBatch; ++i) {
        const int e = e0 + i * kThreads, n = e / quads, k = k0 + e % quads * 4;
        v[i] = e < total && n < N && k < H
                   ? __ldcg(reinterpret_cast<const float4*>(h_prev + static_cast<long long>(n) * H + k))
                   : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      }
#pragma unroll
      for (int i = 0; i < kBatch; ++i) {
        const int e = e0 + i * kThreads;
        if (e < total) reinterpret_cast<float4*>(hs)[e] = v[i];
      }
    }
  } else {
    const int total = NB * chunk;
    for (int e0 = threadIdx.x; e0 < total; e0 += kThreads * kBatch) {
      float v[kBatch];
#pragma unroll
      for (int i = 0; i < kBatch; ++i) {
        const int e = e0 + i * kThreads, n = e / chunk, k = k0 + e % chunk;
        v[i] = e < total && n < N && k < H ? __ldcg(h_prev + static_cast<long long>(n) * H + k)
                                           : 0.0f;
      }
#pragma unroll
      for (int i = 0; i < kBatch; ++i) {
        const int e = e0 + i * kThreads;
        if (e < total) hs[e] = v[i];
      }
    }
  }
}

template <typename T>
__host__ __device__ constexpr int group_elems() { return 16 / static_cast<int>(sizeof(T)); }

// Dynamic shared memory: W_hh slice (groups x R x 16 B), partials (KS x R x NB fp32), staged h
// (NB x chunk fp32).
template <typename T, int G, int NB>
__global__ void __launch_bounds__(kThreads, 1) persistent_kernel(const PersistentParams<T> p) {
  constexpr int kVec = group_elems<T>();
  extern __shared__ __align__(16) unsigned char smem[];
  const int H = p.h, N = p.n, R = p.rows, U = p.units;
  const int groups = (H + kVec - 1) / kVec;
  T* ws = reinterpret_cast<T*>(smem);
  float* partial = reinterpret_cast<float*>(smem + static_cast<size_t>(groups) * R * 16);
  float* hs = partial + (p.slices * R * NB + 3) / 4 * 4;  // 16-byte aligned

  const int tid = threadIdx.x, j0 = blockIdx.x * U;
  const int row = tid % p.row_pass, slice = tid / p.row_pass;

  // W_hh rows of this CTA's units, gate-major (row r = g * U + u is W_hh row g * H + j0 + u),
  // zero beyond H (in both directions).
  // Loads are issued 8 a thread before their stores, so that their latencies overlap.
  const int row_len = groups * kVec, total = R * row_len;
  for (int e0 = tid; e0 < total; e0 += kThreads * 8) {
    T v[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int e = e0 + i * kThreads, r = e / row_len, k = e % row_len, j = j0 + r % U;
      v[i] = e < total && j < H && k < H
                 ? p.w_hh[(static_cast<long long>(r / U) * H + j) * H + k]
                 : from_float<T>(0.0f);
    }
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int e = e0 + i * kThreads, r = e / row_len, k = e % row_len;
      if (e < total) ws[(k / kVec * R + r) * kVec + k % kVec] = v[i];
    }
  }

  const long long nh = static_cast<long long>(N) * H;
  for (int t = 0; t < p.timesteps; ++t) {
    const float* h_prev = p.h_state + (t & 1) * nh;
    float* h_next = p.h_state + ((t + 1) & 1) * nh;

    // This step's gx of the thread's first (unit, batch row), fetched now so that the load
    // latency hides behind the recurrent product.
    float gx_first[G];
    {
      const int u = tid % U, n = tid / U;
      const bool valid = tid < U * N && j0 + u < H;
      const float* gx = p.gx + (static_cast<long long>(t) * N + n) * G * H + j0 + u;
#pragma unroll
      for (int g = 0; g < G; ++g) gx_first[g] = valid ? gx[g * H] : 0.0f;
    }

    float acc[NB] = {};
    for (int k0 = 0; k0 < H; k0 += p.chunk) {
      stage_h<NB>(h_prev, hs, N, H, k0, p.chunk);
      __syncthreads();  // also orders the W_hh stores above before the first reads
      if (row < R) {
        const int chunk_groups = p.chunk / kVec, g0 = k0 / kVec;
        for (int v = slice; v < chunk_groups && g0 + v < groups; v += p.slices) {
          float w[kVec];
          unpack(ws + (static_cast<long long>(g0 + v) * R + row) * kVec, w);
#pragma unroll
          for (int n = 0; n < NB; ++n) {
            const float* hv = hs + n * p.chunk + v * kVec;
#pragma unroll
            for (int q = 0; q < kVec; q += 4) {
              const float4 x = *reinterpret_cast<const float4*>(hv + q);
              acc[n] = fmaf(w[q], x.x, acc[n]);
              acc[n] = fmaf(w[q + 1], x.y, acc[n]);
              acc[n] = fmaf(w[q + 2], x.z, acc[n]);
              acc[n] = fmaf(w[q + 3], x.w, acc[n]);
            }
          }
        }
      }
      __syncthreads();  // hs is overwritten by the next chunk
    }
    if (row < R) {
#pragma unroll
      for (int n = 0; n < NB; ++n) partial[(slice * R + row) * NB + n] = acc[n];
    }
    __syncthreads();

    for (int e = tid; e < U * N; e += kThreads) {
      const int u = e % U, n = e / U, j = j0 + u;
      if (j >= H) continue;
      const float* gx = p.gx + (static_cast<long long>(t) * N + n) * G * H + j;
      float pre[G], hn = 0.0f;
#pragma unroll
      for (int g = 0; g < G; ++g) {
        float sum = 0.0f;
        for (int s = 0; s < p.slices; ++s) sum += partial[(s * R + g * U + u) * NB + n];
        const float x_part = e == tid ? gx_first[g] : gx[g * H];
        if (G == 3 && g == 2) {  // GRU's n gate: r scales only the h-part W_hn h + b_hn
          hn = sum + to_float(p.b_hh[2 * H + j]);
          pre[g] = x_part;
        } else {
          pre[g] = x_part + sum;
        }
      }
      const long long at = static_cast<long long>(n) * H + j;
      float h = G == 3 ? __ldcg(h_prev + at) : 0.0f;
      float c = G == 4 ? p.c[at] : 0.0f;
      cell_update<G>(p.cell, pre, hn, h, c);
      h_next[at] = h;
      p.y[static_cast<long long>(t) * nh + at] = from_float<T>(h);
      if (t + 1 == p.timesteps) p.h_n[at] = from_float<T>(h);
      if constexpr (G == 4) {
        p.c[at] = c;
        if (t + 1 == p.timesteps) p.c_n[at] = from_float<T>(c);
      }
    }
    if (t + 1 < p.timesteps) grid_barrier(p.counter, static_cast<unsigned>(t + 1) * gridDim.x);
  }
}

// Smallest compiled batch bound >= N: the kernel computes NB rows (the staged h is zero beyond N).
int batch_bound(int n) {
  int nb = 1;
  while (nb < n) nb *= 2;
  return nb;
}

struct Plan {
  int units, ctas, rows, row_pass, slices, chunk, nb;
  std::size_t smem;
};

// The grid (one CTA per SM at most) and shared-memory layout for `a`, or why there is none.
std::string make_plan(const RnnArgs& a, int sms, int smem_per_cta, Plan* plan) {
  if (a.batch > kMaxBatch)
    return "persistent: batch " + std::to_string(a.batch) + " > " + std::to_string(kMaxBatch) +
           " (every thread keeps partial sums for all batch rows in registers); use "
           "fused-sequence";
  const int g = rnn_gates(a.cell), h = a.hidden;
  Plan p{};
  p.units = ceil_div(h, sms);
  p.ctas = ceil_div(h, p.units);
  p.rows = g * p.units;
  p.nb = batch_bound(a.batch);
  const int vec = 16 / static_cast<int>(dtype_size(a.dtype));
  const int groups = ceil_div(h, vec);
  const std::size_t w_bytes = static_cast<std::size_t>(groups) * p.rows * 16;
  const auto too_large = [&](std::size_t other_bytes) {
    return "persistent: W_hh does not fit on chip: each of " + std::to_string(p.ctas) +
           " CTAs (one per SM) holds " + std::to_string(p.rows) + " rows (" +
           std::to_string(p.units) + " units x " + std::to_string(g) + " gates) of " +
           std::to_string(h) + " " + dtype_name(a.dtype) + " = " + std::to_string(w_bytes) +
           " B, plus " + std::to_string(other_bytes) +
           " B of partial sums and staged h; the device allows " + std::to_string(smem_per_cta) +
           " B of shared memory per CTA on " + std::to_string(sms) + " SMs (W_hh is " +
           std::to_string(static_cast<std::size_t>(g) * h * h * dtype_size(a.dtype)) + " B)";
  };
  if (p.rows > kThreads) {
    if (w_bytes > static_cast<std::size_t>(smem_per_cta)) return too_large(0);
    return "persistent: " + std::to_string(p.rows) + " W_hh rows per CTA (" +
           std::to_string(p.units) + " units x " + std::to_string(g) + " gates on " +
           std::to_string(sms) + " SMs) exceed the " + std::to_string(kThreads) +
           " threads of a CTA";
  }
  p.row_pass = 1;
  while (p.row_pass < p.rows) p.row_pass *= 2;
  p.slices = kThreads / p.row_pass;
  const std::size_t partial_bytes =
      (static_cast<std::size_t>(p.slices) * p.rows * p.nb + 3) / 4 * 16;
  // Stage all of h at once when it fits, else the largest chunk that does.
  for (int chunk : {groups * vec, 2048, 1024, 512, 256, 128, 64, 32, 16, 8}) {
    if (chunk > groups * vec) continue;
    const std::size_t smem = w_bytes + partial_bytes + static_cast<std::size_t>(p.nb) * chunk * 4;
    if (smem <= static_cast<std::size_t>(smem_per_cta)) {
      p.chunk = chunk;
      p.smem = smem;
      *plan = p;
      return "";
    }
  }
  return too_large(partial_bytes + static_cast<std::size_t>(p.nb) * 8 * 4);
}

template <typename T, int G>
const void* kernel_for_batch(int nb) {
  switch (nb) {
    case 1: return reinterpret_cast<const void*>(persistent_kernel<T, G, 1>);
    case 2: return reinterpret_cast<const void*>(persistent_kernel<T, G, 2>);
    case 4: return reinterpret_cast<const void*>(persistent_kernel<T, G, 4>);
    case 8: return reinterpret_cast<const void*>(persistent_kernel<T, G, 8>);
    case 16: return reinterpret_cast<const void*>(persistent_kernel<T, G, 16>);
    default: return reinterpret_cast<const void*>(persistent_kernel<T, G, 32>);
  }
}

template <typename T>
const void* kernel_for_cell(RnnCell cell, int nb) {
  switch (rnn_gates(cell)) {
    case 1: return kernel_for_batch<T, 1>(nb);
    case 4: return kernel_for_batch<T, 4>(nb);
    default: return kernel_for_batch<T, 3>(nb);
  }
}

const void* kernel_for(const RnnArgs& a, int nb) {
  switch (a.dtype) {
    case DType::f16: return kernel_for_cell<__half>(a.cell, nb);
    case DType::bf16: return kernel_for_cell<__nv_bfloat16>(a.cell, nb);
    default: return kernel_for_cell<float>(a.cell, nb);
  }
}

struct DeviceLimits {
  int sms, smem_per_cta, cooperative;
};

DeviceLimits current_device_limits() {
  int device = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  DeviceLimits d{};
  check(cudaDeviceGetAttribute(&d.sms, cudaDevAttrMultiProcessorCount, device),
        "cudaDeviceGetAttribute(MultiProcessorCount)");
  check(cudaDeviceGetAttribute(&d.smem_per_cta, cudaDevAttrMaxSharedMemoryPerBlockOptin, device),
        "cudaDeviceGetAttribute(MaxSharedMemoryPerBlockOptin)");
  check(cudaDeviceGetAttribute(&d.cooperative, cudaDevAttrCooperativeLaunch, device),
        "cudaDeviceGetAttribute(CooperativeLaunch)");
  return d;
}

// The plan, with the kernel's dynamic shared memory raised to it; "" or why it cannot run.
std::string prepare(const RnnArgs& a, Plan* plan, const void** kernel) {
  const DeviceLimits d = current_device_limits();
  if (!d.cooperative) return "persistent: the device does not support cooperative launches";
  std::string reason = make_plan(a, d.sms, d.smem_per_cta, plan);
  if (!reason.empty()) return reason;
  if (static_cast<long long>(a.timesteps) * plan->ctas >= (1LL << 31))
    return "persistent: timesteps x CTAs must be < 2**31 (the grid barrier's 32-bit counter)";
  *kernel = kernel_for(a, plan->nb);
  check(cudaFuncSetAttribute(*kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(plan->smem)),
        "cudaFuncSetAttribute(persistent_kernel)");
  int per_sm = 0;
  check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, *kernel, kThreads, plan->smem),
        "cudaOccupancyMaxActiveBlocksPerMultiprocessor(persistent_kernel)");
  if (static_cast<long long>(per_sm) * d.sms < plan->ctas)
    return "persistent: " + std::to_string(plan->ctas) + " CTAs of " +
           std::to_string(plan->smem) + " B shared memory cannot all be resident (" +
           std::to_string(per_sm) + " per SM x " + std::to_string(d.sms) + " SMs)";
  return "";
}

template <typename T>
PersistentParams<T> params(const RnnArgs& a, const Workspace& ws, const Plan& plan) {
  PersistentParams<T> p{};
  p.gx = ws.gx;
  p.h_state = ws.h;
  p.c = ws.c;
  p.w_hh = static_cast<const T*>(a.w_hh);
  p.b_hh = static_cast<const T*>(a.b_hh);
  p.y = static_cast<T*>(a.y);
  p.h_n = static_cast<T*>(a.h_n);
  p.c_n = static_cast<T*>(a.c_n);
  p.counter = ws.counter;
  p.cell = a.cell;
  p.timesteps = a.timesteps;
  p.n = a.batch;
  p.h = a.hidden;
  p.units = plan.units;
  p.rows = plan.rows;
  p.row_pass = plan.row_pass;
  p.slices = plan.slices;
  p.chunk = plan.chunk;
  return p;
}

template <typename T>
void launch_typed(const RnnArgs& a, const Workspace& ws, const Plan& plan, const void* kernel,
                  cudaStream_t stream) {
  PersistentParams<T> p = params<T>(a, ws, plan);
  void* args[] = {&p};
  check(cudaLaunchCooperativeKernel(kernel, dim3(plan.ctas), dim3(kThreads), args, plan.smem,
                                    stream),
        "cudaLaunchCooperativeKernel(persistent_kernel)");
}

}  // namespace

std::string support_persistent(const RnnArgs& a) {
  Plan plan;
  const void* kernel = nullptr;
  return prepare(a, &plan, &kernel);
}

void launch_persistent(const RnnArgs& a, const Workspace& ws, cudaStream_t stream) {
  Plan plan;
  const void* kernel = nullptr;
  const std::string reason = prepare(a, &plan, &kernel);
  if (!reason.empty()) throw std::invalid_argument(reason);
  check(cudaMemsetAsync(ws.counter, 0, sizeof(unsigned), stream), "cudaMemsetAsync(counter)");
  switch (a.dtype) {
    case DType::f32: return launch_typed<float>(a, ws, plan, kernel, stream);
    case DType::f16: return launch_typed<__half>(a, ws, plan, kernel, stream);
    case DType::bf16: return launch_typed<__nv_bfloat16>(a, ws, plan, kernel, stream);
  }
}

}  // namespace dlcb::cuda::rnn_impl
