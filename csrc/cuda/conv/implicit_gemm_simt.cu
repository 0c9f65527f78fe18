// "implicit-gemm-simt": convolution as a GEMM whose operands are gathered from the tensors on
// the fly (no im2col buffer), on CUDA cores with fp32 accumulation, for fp32, f16 and bf16.
//
// GEMM views (per group g; Cg = C/groups, Kg = K/groups; "tap" = one (r, s) filter position):
//   forward          C[m][j] = y(n,p,q ; g*Kg+j)  m = (n,p,q) < N*P*Q   j < Kg   kk < Cg*R*S
//                    A[m][kk] = x at (h,w) = (p*stride - pad + r*dil, ...), 0 in the padding
//                    B[kk][j] = w[g*Kg+j][kk]   (kk in the filter's own order: (c,r,s) for
//                    NCHW, (r,s,c) for NHWC, so B is the filter tensor read as is)
//   backward data    C[m][c] = dx(n,h,w ; g*Cg+c)  m = (n,h,w) < N*H*W   c < Cg   kk < Kg*R*S
//                    A[m][kk] = dy at p = (h + pad - r*dil) / stride when that divides exactly
//                    and lands inside P (likewise q), else 0;  B[kk][c] = w(g*Kg+k, c, r, s)
//   backward filter  C[j][col] = dw[g*Kg+j][col]   j < Kg   col < Cg*R*S (filter order)
//                    kk = (n,p,q) < N*P*Q;  A[j][kk] = dy(n,p,q ; g*Kg+j);  B[kk][col] = x at
//                    the tap's (h, w), 0 in the padding. kk is long, so it is split across
//                    blockIdx.z; each split writes fp32 partial sums to the workspace and a
//                    reduce kernel (split_k.cuh) adds them and rounds once to the output type.
// Tiles: 64 x 64 outputs per 256-thread CTA, 16-deep K slices in two shared-memory buffers
// (operands converted to fp32 there), the next slice's gathers in flight in registers while
// the current one is multiplied; each thread accumulates a 4 x 4 block (rows ty + 16 i,
// columns tx + 16 j, so a warp's shared-memory reads are broadcasts or consecutive words).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "common/check.cuh"
#include "common/launch.cuh"
#include "conv/split_k.cuh"
#include "conv/variants.h"

namespace dlcb::cuda::conv_variants_impl {

namespace {

constexpr int kTileM = 64;
constexpr int kTileN = 64;
constexpr int kTileK = 16;
constexpr int kThreads = 256;
constexpr int kLoadsPerThread = kTileM * kTileK / kThreads;  // 4, also for the B tile
static_assert(kTileN * kTileK / kThreads == kLoadsPerThread, "A and B tiles load alike");

struct Geometry {
  int n, c, h, w, k, r, s, p, q;
  int pad_h, pad_w, stride_h, stride_w, dil_h, dil_w;
  int cg, kg;                      // channels and filters of one group
  int gemm_m, gemm_n, gemm_k;      // per group
  int tiles_m;                     // CTAs along gemm_m (blockIdx.x = tile_n * tiles_m + tile_m)
  int k_per_split;                 // gemm_k range of one blockIdx.z, a multiple of kTileK
};

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

using conv_split_k::from_float;

// (channel, r, s) of position `idx` of a filter row in the layout's order: (ch, r, s) for
// NCHW filters (K x C/g x R x S), (r, s, ch) for NHWC filters (K x R x S x C/g).
template <ConvLayout L>
__device__ __forceinline__ void decode_tap(const Geometry& g, int idx, int chans, int& ch, int& r,
                                           int& s) {
  if (L == ConvLayout::nchw) {
    const int rs = g.r * g.s;
    ch = idx / rs;
    const int t = idx - ch * rs;
    r = t / g.s;
    s = t - r * g.s;
  } else {
    const int sc = g.s * chans;
    r = idx / sc;
    const int t = idx - r * sc;
    s = t / chans;
    ch = t - s * chans;
  }
}

template <ConvLayout L>
__device__ __forceinline__ int x_index(const Geometry& g, int n, int c, int h, int w) {
  return L == ConvLayout::nchw ? ((n * g.c + c) * g.h + h) * g.w + w
                               : ((n * g.h + h) * g.w + w) * g.c + c;
}

template <ConvLayout L>
__device__ __forceinline__ int y_index(const Geometry& g, int n, int k, int p, int q) {
  return L == ConvLayout::nchw ? ((n * g.k + k) * g.p + p) * g.q + q
                               : ((n * g.p + p) * g.q + q) * g.k + k;
}

template <ConvLayout L>
__device__ __forceinline__ int w_index(const Geometry& g, int k, int c, int r, int s) {
  return L == ConvLayout::nchw ? ((k * g.cg + c) * g.r + r) * g.s + s
                               : ((k * g.r + r) * g.s + s) * g.cg + c;
}

// n and the two spatial coordinates of a flattened (n, a, b) index over N x A x B.
__device__ __forceinline__ void decode_pixel(int m, int a_size, int b_size, int& n, int& a,
                                             int& b) {
  const int ab = a_size * b_size;
  n = m / ab;
  const int t = m - n * ab;
  a = t / b_size;
  b = t - a * b_size;
}

// The GEMM operands of each direction. Row: what one A-tile row needs (computed once a thread).
template <typename T, ConvLayout L, ConvDirection D>
struct Operands;

template <typename T, ConvLayout L>
struct Operands<T, L, ConvDirection::forward> {
  struct Row {
    int n, h0, w0;
    bool valid;
  };
  __device__ static Row row(const Geometry& g, int m) {
    Row row{0, 0, 0, m < g.gemm_m};
    int p = 0, q = 0;
    if (row.valid) decode_pixel(m, g.p, g.q, row.n, p, q);
    row.h0 = p * g.stride_h - g.pad_h;
    row.w0 = q * g.stride_w - g.pad_w;
    return row;
  }
  __device__ static float a(const Geometry& g, const Row& row, int kk, const T* x, int grp) {
    int c, r, s;
    decode_tap<L>(g, kk, g.cg, c, r, s);
    const int h = row.h0 + r * g.dil_h, w = row.w0 + s * g.dil_w;
    if (h < 0 || h >= g.h || w < 0 || w >= g.w) return 0.0f;
    return to_float(x[x_index<L>(g, row.n, grp * g.cg + c, h, w)]);
  }
  __device__ static float b(const Geometry& g, int kk, int j, const T* w, int grp) {
    return to_float(w[(grp * g.kg + j) * g.gemm_k + kk]);
  }
  __device__ static int out_index(const Geometry& g, int m, int j, int grp) {
    int n, p, q;
    decode_pixel(m, g.p, g.q, n, p, q);
    return y_index<L>(g, n, grp * g.kg + j, p, q);
  }
};

template <typename T, ConvLayout L>
struct Operands<T, L, ConvDirection::backward_data> {
  struct Row {
    int n, h, w;
    bool valid;
  };
  __device__ static Row row(const Geometry& g, int m) {
    Row row{0, 0, 0, m < g.gemm_m};
    if (row.valid) decode_pixel(m, g.h, g.w, row.n, row.h, row.w);
    return row;
  }
  __device__ static float a(const Geometry& g, const Row& row, int kk, const T* dy, int grp) {
    int k, r, s;
    decode_tap<L>(g, kk, g.kg, k, r, s);
    // The output pixel whose tap (r, s) reads input (h, w): h = p*stride - pad + r*dil.
    const int hp = row.h + g.pad_h - r * g.dil_h, wq = row.w + g.pad_w - s * g.dil_w;
    if (hp < 0 || wq < 0) return 0.0f;
    const int p = hp / g.stride_h, q = wq / g.stride_w;
    if (p * g.stride_h != hp || q * g.stride_w != wq || p >= g.p || q >= g.q) return 0.0f;
    return to_float(dy[y_index<L>(g, row.n, grp * g.kg + k, p, q)]);
  }
  __device__ static float b(const Geometry& g, int kk, int c, const T* w, int grp) {
    int k, r, s;
    decode_tap<L>(g, kk, g.kg, k, r, s);
    return to_float(w[w_index<L>(g, grp * g.kg + k, c, r, s)]);
  }
  __device__ static int out_index(const Geometry& g, int m, int c, int grp) {
    int n, h, w;
    decode_pixel(m, g.h, g.w, n, h, w);
    return x_index<L>(g, n, grp * g.cg + c, h, w);
  }
};

template <typename T, ConvLayout L>
struct Operands<T, L, ConvDirection::backward_filter> {
  struct Row {
    int j;
    bool valid;
  };
  __device__ static Row row(const Geometry& g, int m) { return Row{m, m < g.gemm_m}; }
  __device__ static float a(const Geometry& g, const Row& row, int kk, const T* dy, int grp) {
    int n, p, q;
    decode_pixel(kk, g.p, g.q, n, p, q);
    return to_float(dy[y_index<L>(g, n, grp * g.kg + row.j, p, q)]);
  }
  __device__ static float b(const Geometry& g, int kk, int col, const T* x, int grp) {
    int n, p, q, c, r, s;
    decode_pixel(kk, g.p, g.q, n, p, q);
    decode_tap<L>(g, col, g.cg, c, r, s);
    const int h = p * g.stride_h - g.pad_h + r * g.dil_h;
    const int w = q * g.stride_w - g.pad_w + s * g.dil_w;
    if (h < 0 || h >= g.h || w < 0 || w >= g.w) return 0.0f;
    return to_float(x[x_index<L>(g, n, grp * g.cg + c, h, w)]);
  }
  // dw is K x (C/g R S) in both layouts: row g*Kg + j, column col.
  __device__ static int out_index(const Geometry& g, int j, int col, int grp) {
    return (grp * g.kg + j) * g.gemm_n + col;
  }
};

// One CTA: a 64 x 64 tile of group blockIdx.y over the GEMM-K range of split blockIdx.z.
// `partial` (fp32, one full output per split) replaces `out` when the K range is split.
template <typename T, ConvLayout L, ConvDirection D>
__global__ void __launch_bounds__(kThreads)
    implicit_gemm_simt_kernel(Geometry g, const T* __restrict__ a_src,
                              const T* __restrict__ b_src, T* __restrict__ out,
                              float* __restrict__ partial, int out_elements) {
  using Op = Operands<T, L, D>;
  __shared__ float a_tile[2][kTileK][kTileM];
  __shared__ float b_tile[2][kTileK][kTileN];

  const int tid = threadIdx.x;
  const int grp = blockIdx.y;
  const int m0 = (blockIdx.x % g.tiles_m) * kTileM;
  const int n0 = (blockIdx.x / g.tiles_m) * kTileN;
  const int k_begin = blockIdx.z * g.k_per_split;
  const int k_end = min(g.gemm_k, k_begin + g.k_per_split);

  // Loads: thread t fetches A[m0 + t % 64][k + t / 64 + 4 i] and B[k + t / 64 + 4 i][n0 + t % 64].
  const int load_mn = tid % kTileM;
  const int load_k = tid / kTileM;
  const typename Op::Row a_row = Op::row(g, m0 + load_mn);
  const int b_col = n0 + load_mn;
  const bool b_valid = b_col < g.gemm_n;

  float a_next[kLoadsPerThread], b_next[kLoadsPerThread];
  auto gather = [&](int k0) {
#pragma unroll
    for (int i = 0; i < kLoadsPerThread; ++i) {
      const int kk = k0 + load_k + 4 * i;
      const bool in_k = kk < k_end;
      a_next[i] = a_row.valid && in_k ? Op::a(g, a_row, kk, a_src, grp) : 0.0f;
      b_next[i] = b_valid && in_k ? Op::b(g, kk, b_col, b_src, grp) : 0.0f;
    }
  };
  auto stage = [&](int buf) {
#pragma unroll
    for (int i = 0; i < kLoadsPerThread; ++i) {
      a_tile[buf][load_k + 4 * i][load_mn] = a_next[i];
      b_tile[buf][load_k + 4 * i][load_mn] = b_next[i];
    }
  };

  const int ty = tid / 16, tx = tid % 16;
  float acc[4][4] = {};
  gather(k_begin);
  stage(0);
  __syncthreads();
  int buf = 0;
  for (int k0 = k_begin; k0 < k_end; k0 += kTileK) {
    const bool more = k0 + kTileK < k_end;
    if (more) gather(k0 + kTileK);  // global loads in flight while this slice is multiplied
#pragma unroll
    for (int kk = 0; kk < kTileK; ++kk) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = a_tile[buf][kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) b[j] = b_tile[buf][kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    // The other buffer was last read before the previous barrier: safe to overwrite now.
    if (more) stage(buf ^ 1);
    __syncthreads();
    buf ^= 1;
  }

#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int m = m0 + ty + 16 * i;
    if (m >= g.gemm_m) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int col = n0 + tx + 16 * j;
      if (col >= g.gemm_n) continue;
      const int idx = Op::out_index(g, m, col, grp);
      if (partial)
        partial[static_cast<int64_t>(blockIdx.z) * out_elements + idx] = acc[i][j];
      else
        out[idx] = from_float<T>(acc[i][j]);
    }
  }
}

Geometry geometry_of(const ConvArgs& a) {
  Geometry g{};
  g.n = a.n, g.c = a.c, g.h = a.h, g.w = a.w, g.k = a.k, g.r = a.r, g.s = a.s;
  g.p = conv_output_h(a), g.q = conv_output_w(a);
  g.pad_h = a.pad_h, g.pad_w = a.pad_w, g.stride_h = a.stride_h, g.stride_w = a.stride_w;
  g.dil_h = a.dil_h, g.dil_w = a.dil_w;
  g.cg = a.c / a.groups, g.kg = a.k / a.groups;
  const int rs = a.r * a.s;
  switch (a.direction) {
    case ConvDirection::forward:
      g.gemm_m = a.n * g.p * g.q, g.gemm_n = g.kg, g.gemm_k = g.cg * rs;
      break;
    case ConvDirection::backward_data:
      g.gemm_m = a.n * a.h * a.w, g.gemm_n = g.cg, g.gemm_k = g.kg * rs;
      break;
    case ConvDirection::backward_filter:
      g.gemm_m = g.kg, g.gemm_n = g.cg * rs, g.gemm_k = a.n * g.p * g.q;
      break;
  }
  g.tiles_m = ceil_div(g.gemm_m, kTileM);
  g.k_per_split = ceil_div(g.gemm_k, kTileK) * kTileK;
  return g;
}

// The filter gradient's GEMM is small (Kg x CgRS) and deep (N*P*Q): split its depth until about
// 4 CTAs per SM of a large GPU are busy, each split at least 512 deep. A function of the
// geometry only, so that conv_workspace_bytes knows it before any device is chosen.
int split_count(const Geometry& g, int groups) {
  constexpr int kTargetCtas = 528, kMinDepth = 512, kMaxSplits = 64;
  const long long tiles = static_cast<long long>(g.tiles_m) * ceil_div(g.gemm_n, kTileN) * groups;
  long long splits = ceil_div(static_cast<long long>(kTargetCtas), tiles);
  splits = std::min<long long>({splits, ceil_div(g.gemm_k, kMinDepth), kMaxSplits});
  return static_cast<int>(std::max<long long>(splits, 1));
}

// K range per split (a multiple of kTileK) and the resulting number of splits.
void plan_splits(Geometry& g, int groups, int* splits) {
  const int wanted = g.gemm_k > 0 ? split_count(g, groups) : 1;
  g.k_per_split = ceil_div(ceil_div(g.gemm_k, wanted), kTileK) * kTileK;
  *splits = ceil_div(g.gemm_k, g.k_per_split);
}

template <typename T, ConvLayout L, ConvDirection D>
void launch_typed(const ConvArgs& a, const Geometry& g, int splits, cudaStream_t stream) {
  const T* x = static_cast<const T*>(a.x);
  const T* w = static_cast<const T*>(a.filter);
  T* y = static_cast<T*>(a.y);
  const T* a_src = D == ConvDirection::forward ? x : y;
  const T* b_src = D == ConvDirection::backward_filter ? x : w;
  T* out = D == ConvDirection::forward         ? y
           : D == ConvDirection::backward_data ? const_cast<T*>(x)
                                               : const_cast<T*>(w);
  const int out_elements = D == ConvDirection::backward_filter ? a.k * g.gemm_n : 0;
  float* partial = splits > 1 ? static_cast<float*>(a.workspace) : nullptr;
  const dim3 grid(static_cast<unsigned>(g.tiles_m * ceil_div(g.gemm_n, kTileN)),
                  static_cast<unsigned>(a.groups), static_cast<unsigned>(splits));
  implicit_gemm_simt_kernel<T, L, D><<<grid, kThreads, 0, stream>>>(g, a_src, b_src, out, partial,
                                                                    out_elements);
  check_launch("implicit_gemm_simt_kernel");
  if (partial) conv_split_k::reduce_splits<T>(partial, out, out_elements, splits, stream);
}

template <typename T, ConvLayout L>
void launch_layout(const ConvArgs& a, const Geometry& g, int splits, cudaStream_t stream) {
  switch (a.direction) {
    case ConvDirection::forward:
      return launch_typed<T, L, ConvDirection::forward>(a, g, splits, stream);
    case ConvDirection::backward_data:
      return launch_typed<T, L, ConvDirection::backward_data>(a, g, splits, stream);
    case ConvDirection::backward_filter:
      return launch_typed<T, L, ConvDirection::backward_filter>(a, g, splits, stream);
  }
}

template <typename T>
void launch_dtype(const ConvArgs& a, const Geometry& g, int splits, cudaStream_t stream) {
  if (a.layout == ConvLayout::nchw) return launch_layout<T, ConvLayout::nchw>(a, g, splits, stream);
  launch_layout<T, ConvLayout::nhwc>(a, g, splits, stream);
}

// Geometry and split plan of a call: only the filter gradient is split.
Geometry planned(const ConvArgs& a, int* splits) {
  Geometry g = geometry_of(a);
  *splits = 1;
  if (a.direction == ConvDirection::backward_filter) plan_splits(g, a.groups, splits);
  return g;
}

}  // namespace

const char* support_implicit_gemm_simt(const ConvArgs& a, int) {
  const Geometry g = geometry_of(a);
  if (static_cast<long long>(g.tiles_m) * ceil_div(g.gemm_n, kTileN) > 0x7fffffffLL)
    return "too many output tiles for one grid";
  // The split filter gradient's fp32 partial sums.
  if (reinterpret_cast<std::uintptr_t>(a.workspace) % alignof(float) != 0)
    return "implicit-gemm-simt needs the workspace 4-byte aligned";
  return nullptr;
}

std::size_t workspace_implicit_gemm_simt(const ConvArgs& a) {
  int splits = 1;
  const Geometry g = planned(a, &splits);
  if (splits <= 1) return 0;
  return static_cast<std::size_t>(splits) * a.k * g.gemm_n * sizeof(float);
}

void launch_implicit_gemm_simt(const ConvArgs& a, cudaStream_t stream) {
  int splits = 1;
  const Geometry g = planned(a, &splits);
  switch (a.dtype) {
    case DType::f32: return launch_dtype<float>(a, g, splits, stream);
    case DType::f16: return launch_dtype<__half>(a, g, splits, stream);
    case DType::bf16: return launch_dtype<__nv_bfloat16>(a, g, splits, stream);
  }
}

}  // namespace dlcb::cuda::conv_variants_impl
