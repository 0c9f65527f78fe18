// "implicit-gemm-tc": forward convolution, NHWC, f16/bf16 on tensor cores (sm_80+), fp32
// accumulation, as an implicit GEMM per group g (Cg = C/groups, Kg = K/groups):
//   C[m][j] = y(n,p,q ; g*Kg + j),  m = (n,p,q) < N*P*Q,  j < Kg,  kk = (r, s, c) < R*S*Cg
//   A[m][kk] = x(n, p*stride - pad + r*dil, q*stride - pad + s*dil ; g*Cg + c), 0 in padding
//   B[j][kk] = w[g*Kg + j][kk]   (the NHWC filter K x R x S x Cg read as is: kk contiguous)
// Both operands are contiguous along kk, and with Cg % 8 == 0 every 8-element (16-byte) chunk
// of kk lies inside one tap: each chunk is one cp.async, zero-filled (src-size 0) where the tap
// falls into the padding or past the tensor. Tiles of BM x BN outputs, 32-deep K slices in a
// 4-stage cp.async pipeline; warps multiply WM x WN sub-tiles with mma.sync m16n8k16 whose
// operands come from shared memory through ldmatrix.x4.
//
// Shared-memory tile: rows of 32 elements = 64 bytes = 4 chunks of 16 bytes; chunk c of row r
// lives at r * 64 + 16 * (c ^ ((r >> 1) & 3)). ldmatrix reads one chunk column of 8
// consecutive rows (first row a multiple of 8): (r & 1, (r >> 1) & 3) takes all 8 values there,
// so the 8 rows hit 8 distinct 16-byte slots of a 128-byte line (no bank conflicts).
//
// Fragments (PTX ISA, mma.m16n8k16 .bf16/.f16; gid = lane / 4, tig = lane % 4):
//   A regs a0..a3: (row gid, k 2 tig..+1), (row gid + 8, same k), (row gid, k + 8), (row gid + 8,
//     k + 8): ldmatrix.x4 with lane l giving row l % 16 and k-chunk l / 16 of the 16x16 tile.
//   B regs b0, b1: (k 2 tig..+1, n gid), (k + 8, n gid): with B stored n-major (rows n, k
//     contiguous), ldmatrix.x4 matrices (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7),
//     (n 8-15, k 8-15) give the fragments of two n8 tiles: lane l gives row
//     8 ((l / 8) >> 1) + l % 8 and k-chunk (l / 8) & 1.
//   C regs c0, c1: (row gid, col 2 tig..+1); c2, c3: row gid + 8.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "common/check.cuh"
#include "common/launch.cuh"
#include "conv/mma_ptx.cuh"
#include "conv/variants.h"

namespace dlcb::cuda::conv_variants_impl {

namespace {

using namespace conv_ptx;

constexpr int kTileK = 32;                 // GEMM-K slice per stage
constexpr int kChunksPerRow = kTileK / 8;  // 16-byte chunks per tile row
constexpr int kRowBytes = kTileK * 2;
constexpr int kStages = 4;

struct TcGeometry {
  int n, c, h, w, k, r, s, p, q;
  int pad_h, pad_w, stride_h, stride_w, dil_h, dil_w;
  int cg, kg;
  int gemm_m, gemm_k;  // N*P*Q and R*S*Cg
  int tiles_n;         // blockIdx.y = group * tiles_n + tile_n
};

__device__ __forceinline__ uint32_t swizzled(int row, int chunk) {
  return static_cast<uint32_t>(row * kRowBytes + ((chunk ^ ((row >> 1) & 3)) << 4));
}

template <typename T> struct Pair;
template <> struct Pair<__nv_bfloat16> {
  using type = __nv_bfloat162;
  __device__ static type make(float a, float b) { return __floats2bfloat162_rn(a, b); }
};
template <> struct Pair<__half> {
  using type = __half2;
  __device__ static type make(float a, float b) { return __floats2half2_rn(a, b); }
};

template <int BM, int BN, int WarpsM, int WarpsN>
struct Tile {
  static constexpr int kBM = BM, kBN = BN;
  static constexpr int kWarpsN = WarpsN;
  static constexpr int kThreads = 32 * WarpsM * WarpsN;
  static constexpr int kWM = BM / WarpsM, kWN = BN / WarpsN;
  static constexpr int kMI = kWM / 16, kNI = kWN / 8;
  static constexpr int kRowsPerPass = kThreads / kChunksPerRow;
  static constexpr int kALoads = BM / kRowsPerPass, kBLoads = BN / kRowsPerPass;
  static constexpr int kStageBytes = (BM + BN) * kRowBytes;
  static constexpr int kSmemBytes = kStages * kStageBytes;
  static_assert(kWM % 16 == 0 && kWN % 16 == 0, "warp tile: whole m16 tiles, pairs of n8 tiles");
  static_assert(BM % kRowsPerPass == 0 && BN % kRowsPerPass == 0, "whole load passes");
  static_assert(kALoads <= 32 && kBLoads <= 32, "validity masks are 32-bit");
};

using TileLarge = Tile<128, 128, 2, 4>;   // 256 threads, warp tile 64 x 32
using TileMedium = Tile<128, 64, 4, 2>;   // 256 threads, warp tile 32 x 32
using TileSmall = Tile<64, 64, 2, 2>;     // 128 threads, warp tile 32 x 32

template <typename T, typename Cfg>
__global__ void __launch_bounds__(Cfg::kThreads)
    conv_forward_tc_kernel(TcGeometry g, const T* __restrict__ x, const T* __restrict__ w,
                           T* __restrict__ y) {
  constexpr int MI = Cfg::kMI, NI = Cfg::kNI;
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t smem_base = shared_address(smem);

  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int warp_m = warp / Cfg::kWarpsN, warp_n = warp % Cfg::kWarpsN;
  const int m0 = blockIdx.x * Cfg::kBM;
  const int grp = blockIdx.y / g.tiles_n;
  const int n0 = (blockIdx.y % g.tiles_n) * Cfg::kBN;

  // Loads: thread t copies chunk t % 4 of tile rows t / 4 + i * kRowsPerPass.
  const int load_chunk = tid % kChunksPerRow;
  const int load_row = tid / kChunksPerRow;

  // Per A row: offset of its image and group (x + a_base is pixel (0, 0), channel g*Cg), the
  // top-left input coordinate of its output pixel, and whether the row exists.
  int a_base[Cfg::kALoads], a_h0[Cfg::kALoads], a_w0[Cfg::kALoads];
  uint32_t a_rows_valid = 0;
#pragma unroll
  for (int i = 0; i < Cfg::kALoads; ++i) {
    const int m = m0 + load_row + i * Cfg::kRowsPerPass;
    const int mm = m < g.gemm_m ? m : 0;
    const int pq = g.p * g.q;
    const int n = mm / pq, rem = mm - n * pq;
    const int p = rem / g.q, q = rem - p * g.q;
    a_base[i] = n * g.h * g.w * g.c + grp * g.cg;
    a_h0[i] = p * g.stride_h - g.pad_h;
    a_w0[i] = q * g.stride_w - g.pad_w;
    if (m < g.gemm_m) a_rows_valid |= 1u << i;
  }
  // Per B row (filter j of the group): offset of its filter.
  int b_base[Cfg::kBLoads];
  uint32_t b_rows_valid = 0;
#pragma unroll
  for (int i = 0; i < Cfg::kBLoads; ++i) {
    const int j = n0 + load_row + i * Cfg::kRowsPerPass;
    b_base[i] = (grp * g.kg + (j < g.kg ? j : 0)) * g.gemm_k;
    if (j < g.kg) b_rows_valid |= 1u << i;
  }

  // This thread's chunk position along kk, as (tap r, tap s, channel c); advanced by one K
  // slice per loaded stage (the stages are loaded in order).
  int kk = load_chunk * 8;
  int tap_c = kk % g.cg;
  int tap_s = (kk / g.cg) % g.s;
  int tap_r = kk / g.cg / g.s;

  auto load_stage = [&](int stage) {
    const uint32_t a_dst = smem_base + stage * Cfg::kStageBytes;
    const uint32_t b_dst = a_dst + Cfg::kBM * kRowBytes;
    const bool k_ok = kk < g.gemm_k;
#pragma unroll
    for (int i = 0; i < Cfg::kALoads; ++i) {
      const int h = a_h0[i] + tap_r * g.dil_h, wc = a_w0[i] + tap_s * g.dil_w;
      const bool valid = k_ok && ((a_rows_valid >> i) & 1u) && h >= 0 && h < g.h && wc >= 0 &&
                         wc < g.w;
      const T* src = valid ? x + a_base[i] + (h * g.w + wc) * g.c + tap_c : x;
      cp_async_16_or_zero(a_dst + swizzled(load_row + i * Cfg::kRowsPerPass, load_chunk), src,
                          valid);
    }
#pragma unroll
    for (int i = 0; i < Cfg::kBLoads; ++i) {
      const bool valid = k_ok && ((b_rows_valid >> i) & 1u);
      const T* src = valid ? w + b_base[i] + kk : w;
      cp_async_16_or_zero(b_dst + swizzled(load_row + i * Cfg::kRowsPerPass, load_chunk), src,
                          valid);
    }
    kk += kTileK;
    tap_c += kTileK;
    while (tap_c >= g.cg) {
      tap_c -= g.cg;
      if (++tap_s == g.s) {
        tap_s = 0;
        ++tap_r;
      }
    }
  };

  float acc[MI][NI][4];
#pragma unroll
  for (int mi = 0; mi < MI; ++mi)
#pragma unroll
    for (int ni = 0; ni < NI; ++ni)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[mi][ni][e] = 0.0f;

  const int k_tiles = (g.gemm_k + kTileK - 1) / kTileK;
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < k_tiles) load_stage(s);
    cp_async_commit();  // empty groups too: group i always holds stage i
  }

  for (int kt = 0; kt < k_tiles; ++kt) {
    // Groups 0..kt done: slice kt has landed; the barrier also ends every warp's reads of the
    // stage about to be refilled (it was multiplied in iteration kt - 1).
    cp_async_wait<kStages - 2>();
    __syncthreads();
    const int next = kt + kStages - 1;
    if (next < k_tiles) load_stage(next % kStages);
    cp_async_commit();

    const uint32_t a_src = smem_base + (kt % kStages) * Cfg::kStageBytes;
    const uint32_t b_src = a_src + Cfg::kBM * kRowBytes;
#pragma unroll
    for (int ks = 0; ks < kTileK / 16; ++ks) {
      uint32_t a_frag[MI][4], b_frag[NI][2];
#pragma unroll
      for (int mi = 0; mi < MI; ++mi) {
        const int row = warp_m * Cfg::kWM + mi * 16 + lane % 16;
        ldmatrix_x4(a_frag[mi], a_src + swizzled(row, ks * 2 + lane / 16));
      }
#pragma unroll
      for (int nj = 0; nj < NI / 2; ++nj) {
        const int mat = lane / 8;
        const int row = warp_n * Cfg::kWN + nj * 16 + (mat >> 1) * 8 + lane % 8;
        uint32_t t[4];
        ldmatrix_x4(t, b_src + swizzled(row, ks * 2 + (mat & 1)));
        b_frag[2 * nj][0] = t[0];
        b_frag[2 * nj][1] = t[1];
        b_frag[2 * nj + 1][0] = t[2];
        b_frag[2 * nj + 1][1] = t[3];
      }
#pragma unroll
      for (int mi = 0; mi < MI; ++mi)
#pragma unroll
        for (int ni = 0; ni < NI; ++ni) mma_16816<T>(acc[mi][ni], a_frag[mi], b_frag[ni]);
    }
  }
  cp_async_wait<0>();

  // Kg % 8 == 0 and col is even: a pair (col, col + 1) is in range exactly when col is.
  using P2 = typename Pair<T>::type;
#pragma unroll
  for (int mi = 0; mi < MI; ++mi)
#pragma unroll
    for (int ni = 0; ni < NI; ++ni)
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int m = m0 + warp_m * Cfg::kWM + mi * 16 + lane / 4 + half * 8;
        const int col = n0 + warp_n * Cfg::kWN + ni * 8 + (lane % 4) * 2;
        if (m < g.gemm_m && col < g.kg)
          *reinterpret_cast<P2*>(y + m * g.k + grp * g.kg + col) =
              Pair<T>::make(acc[mi][ni][2 * half], acc[mi][ni][2 * half + 1]);
      }
}

TcGeometry tc_geometry(const ConvArgs& a) {
  TcGeometry g{};
  g.n = a.n, g.c = a.c, g.h = a.h, g.w = a.w, g.k = a.k, g.r = a.r, g.s = a.s;
  g.p = conv_output_h(a), g.q = conv_output_w(a);
  g.pad_h = a.pad_h, g.pad_w = a.pad_w, g.stride_h = a.stride_h, g.stride_w = a.stride_w;
  g.dil_h = a.dil_h, g.dil_w = a.dil_w;
  g.cg = a.c / a.groups, g.kg = a.k / a.groups;
  g.gemm_m = a.n * g.p * g.q;
  g.gemm_k = a.r * a.s * g.cg;
  return g;
}

template <typename T, typename Cfg>
void launch_tile(const ConvArgs& a, TcGeometry g, cudaStream_t stream) {
  g.tiles_n = ceil_div(g.kg, Cfg::kBN);
  auto kernel = conv_forward_tc_kernel<T, Cfg>;
  check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             Cfg::kSmemBytes),
        "cudaFuncSetAttribute(conv_forward_tc_kernel)");
  const dim3 grid(static_cast<unsigned>(ceil_div(g.gemm_m, Cfg::kBM)),
                  static_cast<unsigned>(g.tiles_n * a.groups));
  kernel<<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream>>>(
      g, static_cast<const T*>(a.x), static_cast<const T*>(a.filter), static_cast<T*>(a.y));
  check_launch("conv_forward_tc_kernel");
}

long long ctas(const TcGeometry& g, int groups, int bm, int bn) {
  return static_cast<long long>(ceil_div(g.gemm_m, bm)) * ceil_div(g.kg, bn) * groups;
}

// The largest tile that still gives every SM at least one CTA; the small tile otherwise.
template <typename T>
void launch_typed(const ConvArgs& a, cudaStream_t stream) {
  const TcGeometry g = tc_geometry(a);
  int device = 0, sms = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device),
        "cudaDeviceGetAttribute(MultiProcessorCount)");
  if (g.kg > 64 && ctas(g, a.groups, TileLarge::kBM, TileLarge::kBN) >= sms)
    return launch_tile<T, TileLarge>(a, g, stream);
  if (ctas(g, a.groups, TileMedium::kBM, TileMedium::kBN) >= sms)
    return launch_tile<T, TileMedium>(a, g, stream);
  launch_tile<T, TileSmall>(a, g, stream);
}

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

}  // namespace

const char* support_implicit_gemm_tc(const ConvArgs& a, int) {
  if (a.dtype != DType::f16 && a.dtype != DType::bf16)
    return "implicit-gemm-tc runs float16 and bfloat16 only";
  if (a.layout != ConvLayout::nhwc)
    return "implicit-gemm-tc needs the NHWC layout (channels contiguous per filter tap); "
           "implicit-gemm-simt runs NCHW";
  if (a.direction != ConvDirection::forward)
    return "implicit-gemm-tc runs the forward direction only; implicit-gemm-simt runs the "
           "backward directions";
  if ((a.c / a.groups) % 8 != 0 || (a.k / a.groups) % 8 != 0)
    return "implicit-gemm-tc needs C/groups and K/groups to be multiples of 8 (16-byte copies)";
  if (!aligned16(a.x) || !aligned16(a.filter) || !aligned16(a.y))
    return "implicit-gemm-tc needs x, filter and y 16-byte aligned";
  if (static_cast<long long>(ceil_div(a.k / a.groups, 64)) * a.groups > 65535)
    return "implicit-gemm-tc: too many filter tiles times groups for one grid dimension";
  return nullptr;
}

std::size_t workspace_implicit_gemm_tc(const ConvArgs&) { return 0; }

void launch_implicit_gemm_tc(const ConvArgs& a, cudaStream_t stream) {
  if (a.dtype == DType::bf16) return launch_typed<__nv_bfloat16>(a, stream);
  launch_typed<__half>(a, stream);
}

}  // namespace dlcb::cuda::conv_variants_impl
