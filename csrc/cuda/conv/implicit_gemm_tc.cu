// "implicit-gemm-tc": convolution as an implicit GEMM on tensor cores (sm_80+), NHWC, f16/bf16
// with fp32 accumulation: forward and backward data here (conv_tc_kernel), backward filter
// further down (conv_tc_wgrad_kernel). Per group g (Cg = C/groups, Kg = K/groups):
//   forward        C[m][j] = y(n,p,q ; g*Kg + j)   m = (n,p,q) < N*P*Q, j < Kg, kk = (r,s,c)
//                  A[m][kk] = x(n, p*stride - pad + r*dil, q*... ; g*Cg + c), 0 in the padding
//                  B[j][kk] = w[g*Kg + j][kk]   (the K x R x S x Cg filter read as is)
//   backward data  C[m][c] = dx(n,h,w ; g*Cg + c)  m = (n,h,w) < N*H*W, c < Cg, kk = (r,s,k)
//                  A[m][kk] = dy(n, p, q ; g*Kg + k) with p = (h + pad - r*dil) / stride when
//                  that divides exactly and lands in [0, P) (q likewise), else 0
//                  B[kk][c] = w[g*Kg + k][r][s][c]   (c contiguous: B is k-major here)
// A is contiguous along kk within a tap; with Cg % 8 == 0 and Kg % 8 == 0 every 8-element
// (16-byte) chunk of kk lies in one tap, so each chunk is one cp.async, zero-filled (src-size 0)
// where the tap falls into the padding, between strided taps or past the tensor. Tiles of
// BM x BN outputs, 32-deep K slices in a 4-stage cp.async pipeline; warps multiply WM x WN
// sub-tiles with mma.sync m16n8k16 whose operands come from shared memory through ldmatrix.
//
// Shared memory, per stage: the A tile (BM rows of 32 kk = 64 bytes = 4 chunks of 16 bytes;
// chunk c of row r at r * 64 + 16 (c ^ ((r >> 1) & 3))), then the B tile: forward, BN rows of
// 32 kk laid out like A; backward data, 32 kk rows of BN columns (BN / 8 >= 8 chunks; chunk c of
// row r at r * 2 BN + 16 (c ^ (r & 7))). ldmatrix reads one chunk column of 8 consecutive rows
// (the first a multiple of 8); both swizzles send those 8 rows to 8 distinct 16-byte slots of a
// 128-byte line, so it is free of bank conflicts.
//
// Fragments (PTX ISA, mma.m16n8k16 .bf16/.f16; gid = lane / 4, tig = lane % 4):
//   A regs a0..a3: (row gid, k 2 tig..+1), (row gid + 8, same k), (row gid, k + 8), (row gid + 8,
//     k + 8): ldmatrix.x4 with lane l giving row l % 16 and k-chunk l / 16 of the 16x16 tile.
//   B regs b0, b1: (k 2 tig..+1, n gid), (k + 8, n gid). Forward (rows n, k contiguous):
//     ldmatrix.x4 of (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15) gives two
//     n8 tiles; lane l gives row 8 ((l / 8) >> 1) + l % 8 and k-chunk (l / 8) & 1. Backward data
//     (rows k, n contiguous): ldmatrix.x4.trans of (k 0-7, n 0-7), (k 8-15, n 0-7), (k 0-7,
//     n 8-15), (k 8-15, n 8-15) gives the same registers; lane l gives k-row 8 ((l / 8) & 1) +
//     l % 8 and n-chunk (l / 8) >> 1.
//   C regs c0, c1: (row gid, col 2 tig..+1); c2, c3: row gid + 8.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "common/check.cuh"
#include "common/launch.cuh"
#include "conv/mma_ptx.cuh"
#include "conv/split_k.cuh"
#include "conv/variants.h"

namespace dlcb::cuda::conv_variants_impl {

namespace {

using namespace conv_ptx;

constexpr int kTileK = 32;                 // GEMM-K slice per stage
constexpr int kChunksPerRow = kTileK / 8;  // 16-byte chunks per A row (and forward B row)
constexpr int kRowBytes = kTileK * 2;
constexpr int kStages = 4;

// The GEMM of one call. "Gathered" is the tensor A is read from: x (forward) or dy (backward
// data), of gathered_h x gathered_w pixels and gathered_c channels, g*chunk_c the group's first.
struct TcGeometry {
  int r, s, pad_h, pad_w, stride_h, stride_w, dil_h, dil_w;
  int gathered_h, gathered_w, gathered_c;
  int chunk_c;           // channels of one tap along kk: Cg forward, Kg backward data
  int out_h, out_w;      // spatial size of the output: P x Q forward, H x W backward data
  int out_c;             // channels of the output tensor: K forward, C backward data
  int cg, kg;
  int gemm_m, gemm_n, gemm_k;
  int tiles_n;           // blockIdx.y = group * tiles_n + tile_n
};

__device__ __forceinline__ uint32_t swizzled(int row, int chunk) {
  return static_cast<uint32_t>(row * kRowBytes + ((chunk ^ ((row >> 1) & 3)) << 4));
}

template <int kBN>
__device__ __forceinline__ uint32_t swizzled_wide(int row, int chunk) {
  return static_cast<uint32_t>(row * kBN * 2 + ((chunk ^ (row & 7)) << 4));
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
  // k-major tiles (kTileK rows of BN / 8, or BM / 8, chunks): backward data's B, backward
  // filter's A and B.
  static constexpr int kWideChunks = BN / 8;
  static constexpr int kWideRowsPerPass = kThreads / kWideChunks;
  static constexpr int kWideLoads = kTileK / kWideRowsPerPass;
  static constexpr int kWideChunksM = BM / 8;
  static constexpr int kWideRowsPerPassM = kThreads / kWideChunksM;
  static constexpr int kWideLoadsM = kTileK / kWideRowsPerPassM;
  static constexpr int kStageBytes = (BM + BN) * kRowBytes;
  static constexpr int kSmemBytes = kStages * kStageBytes;
  static_assert(kWM % 16 == 0 && kWN % 16 == 0, "warp tile: whole m16 tiles, pairs of n8 tiles");
  static_assert(BM % kRowsPerPass == 0 && BN % kRowsPerPass == 0, "whole load passes");
  static_assert(kWideChunks >= 8 && kTileK % kWideRowsPerPass == 0, "wide B tile swizzle, passes");
  static_assert(kWideChunksM >= 8 && kWideLoadsM * kWideRowsPerPassM == kTileK,
                "wide A tile swizzle, passes");
  static_assert(kALoads <= 32 && kBLoads <= 32, "validity masks are 32-bit");
};

using TileLarge = Tile<128, 128, 2, 4>;   // 256 threads, warp tile 64 x 32
using TileMedium = Tile<128, 64, 4, 2>;   // 256 threads, warp tile 32 x 32
using TileSmall = Tile<64, 64, 2, 2>;     // 128 threads, warp tile 32 x 32

// Epilogue through shared memory (the pipeline's: the caller has drained cp.async): the
// fragments are rounded into a BM x BN tile (rows padded by 16 bytes: the 8 rows x 4 pairs a warp
// writes at once fall on 32 distinct banks), then every thread stores whole 16-byte chunks of
// rows: element (m, col) of the GEMM goes to out[m * ld + col], for m < m_limit, col < n_limit.
// n_limit % 8 == 0 and ld % 8 == 0, so a chunk is wholly in range or out, and aligned.
template <typename T, typename Cfg>
__device__ __forceinline__ void store_tile(const float (&acc)[Cfg::kMI][Cfg::kNI][4],
                                           unsigned char* smem, T* out, int ld, int m0, int n0,
                                           int m_limit, int n_limit) {
  using P2 = typename Pair<T>::type;
  constexpr int kOutRowBytes = Cfg::kBN * 2 + 16;
  constexpr int kOutChunks = Cfg::kBN / 8;
  static_assert(Cfg::kBM * kOutRowBytes <= Cfg::kSmemBytes, "output tile fits the pipeline");
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int warp_m = warp / Cfg::kWarpsN, warp_n = warp % Cfg::kWarpsN;
  __syncthreads();  // every warp is done reading the pipeline's shared memory
#pragma unroll
  for (int mi = 0; mi < Cfg::kMI; ++mi)
#pragma unroll
    for (int ni = 0; ni < Cfg::kNI; ++ni)
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int row = warp_m * Cfg::kWM + mi * 16 + lane / 4 + half * 8;
        const int col = warp_n * Cfg::kWN + ni * 8 + (lane % 4) * 2;
        *reinterpret_cast<P2*>(smem + row * kOutRowBytes + col * 2) =
            Pair<T>::make(acc[mi][ni][2 * half], acc[mi][ni][2 * half + 1]);
      }
  __syncthreads();
  for (int idx = tid; idx < Cfg::kBM * kOutChunks; idx += Cfg::kThreads) {
    const int row = idx / kOutChunks, chunk = idx % kOutChunks;
    const int m = m0 + row, col = n0 + chunk * 8;
    if (m < m_limit && col < n_limit)
      *reinterpret_cast<uint4*>(out + m * ld + col) =
          *reinterpret_cast<const uint4*>(smem + row * kOutRowBytes + chunk * 16);
  }
}

template <typename T, typename Cfg, ConvDirection D>
__global__ void __launch_bounds__(Cfg::kThreads)
    conv_tc_kernel(TcGeometry g, const T* __restrict__ gathered, const T* __restrict__ w,
                   T* __restrict__ out) {
  constexpr bool kForward = D == ConvDirection::forward;
  constexpr int MI = Cfg::kMI, NI = Cfg::kNI;
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t smem_base = shared_address(smem);

  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int warp_m = warp / Cfg::kWarpsN, warp_n = warp % Cfg::kWarpsN;
  const int m0 = blockIdx.x * Cfg::kBM;
  const int grp = blockIdx.y / g.tiles_n;
  const int n0 = (blockIdx.y % g.tiles_n) * Cfg::kBN;

  // A loads: thread t copies chunk t % 4 of tile rows t / 4 + i * kRowsPerPass. Per row: the
  // offset of its image and group in the gathered tensor, the coordinate its taps start from
  // (forward: top-left input pixel; backward data: h + pad), and whether the row exists.
  const int load_chunk = tid % kChunksPerRow;
  const int load_row = tid / kChunksPerRow;
  int a_base[Cfg::kALoads], a_h0[Cfg::kALoads], a_w0[Cfg::kALoads];
  uint32_t a_rows_valid = 0;
#pragma unroll
  for (int i = 0; i < Cfg::kALoads; ++i) {
    const int m = m0 + load_row + i * Cfg::kRowsPerPass;
    const int mm = m < g.gemm_m ? m : 0;
    const int hw = g.out_h * g.out_w;
    const int n = mm / hw, rem = mm - n * hw;
    const int oh = rem / g.out_w, ow = rem - oh * g.out_w;
    a_base[i] = n * g.gathered_h * g.gathered_w * g.gathered_c + grp * g.chunk_c;
    a_h0[i] = kForward ? oh * g.stride_h - g.pad_h : oh + g.pad_h;
    a_w0[i] = kForward ? ow * g.stride_w - g.pad_w : ow + g.pad_w;
    if (m < g.gemm_m) a_rows_valid |= 1u << i;
  }
  // This thread's A chunk along kk as (tap r, tap s, channel); advanced one K slice per loaded
  // stage (stages are loaded in order).
  int kk = load_chunk * 8;
  int tap_c = kk % g.chunk_c;
  int tap_s = (kk / g.chunk_c) % g.s;
  int tap_r = kk / g.chunk_c / g.s;

  // B loads. Forward: like A, rows = filters j (offset of each filter). Backward data: thread t
  // copies chunk t % (BN / 8) of kk-rows t / (BN / 8) + i * kWideRowsPerPass; each row kk is
  // (tap, filter k), tracked per load.
  constexpr int kBLoads = kForward ? Cfg::kBLoads : Cfg::kWideLoads;
  int b_base[kBLoads];
  int b_k[kBLoads], b_tap[kBLoads];
  uint32_t b_valid = 0;
  const int wide_chunk = tid % Cfg::kWideChunks;
  const int wide_row = tid / Cfg::kWideChunks;
  const int rs = g.r * g.s;
#pragma unroll
  for (int i = 0; i < kBLoads; ++i) {
    if constexpr (kForward) {
      const int j = n0 + load_row + i * Cfg::kRowsPerPass;
      b_base[i] = (grp * g.kg + (j < g.kg ? j : 0)) * g.gemm_k;
      if (j < g.kg) b_valid |= 1u << i;
      b_k[i] = b_tap[i] = 0;
    } else {
      const int row = wide_row + i * Cfg::kWideRowsPerPass;
      const int col = n0 + wide_chunk * 8;
      b_base[i] = grp * g.kg * rs * g.cg + (col < g.cg ? col : 0);
      if (col < g.cg) b_valid |= 1u << i;
      b_k[i] = row % g.kg;
      b_tap[i] = row / g.kg;
    }
  }

  auto load_stage = [&](int stage) {
    const uint32_t a_dst = smem_base + stage * Cfg::kStageBytes;
    const uint32_t b_dst = a_dst + Cfg::kBM * kRowBytes;
    const bool k_ok = kk < g.gemm_k;
#pragma unroll
    for (int i = 0; i < Cfg::kALoads; ++i) {
      int h, wc;
      bool valid = k_ok && ((a_rows_valid >> i) & 1u);
      if constexpr (kForward) {
        h = a_h0[i] + tap_r * g.dil_h;
        wc = a_w0[i] + tap_s * g.dil_w;
      } else {
        // Output pixel p with p * stride - pad + r * dil == h, if any.
        const int th = a_h0[i] - tap_r * g.dil_h, tw = a_w0[i] - tap_s * g.dil_w;
        h = g.stride_h == 1 ? th : th / g.stride_h;
        wc = g.stride_w == 1 ? tw : tw / g.stride_w;
        valid = valid && th >= 0 && tw >= 0 && h * g.stride_h == th && wc * g.stride_w == tw;
      }
      valid = valid && h >= 0 && h < g.gathered_h && wc >= 0 && wc < g.gathered_w;
      const T* src =
          valid ? gathered + a_base[i] + (h * g.gathered_w + wc) * g.gathered_c + tap_c : gathered;
      cp_async_ca_16_or_zero(a_dst + swizzled(load_row + i * Cfg::kRowsPerPass, load_chunk), src,
                             valid);
    }
#pragma unroll
    for (int i = 0; i < kBLoads; ++i) {
      if constexpr (kForward) {
        const bool valid = k_ok && ((b_valid >> i) & 1u);
        const T* src = valid ? w + b_base[i] + kk : w;
        cp_async_cg_16_or_zero(b_dst + swizzled(load_row + i * Cfg::kRowsPerPass, load_chunk),
                               src, valid);
      } else {
        const bool valid = b_tap[i] < rs && ((b_valid >> i) & 1u);
        const T* src = valid ? w + b_base[i] + (b_k[i] * rs + b_tap[i]) * g.cg : w;
        cp_async_cg_16_or_zero(
            b_dst + swizzled_wide<Cfg::kBN>(wide_row + i * Cfg::kWideRowsPerPass, wide_chunk),
            src, valid);
        b_k[i] += kTileK;
        while (b_k[i] >= g.kg) {
          b_k[i] -= g.kg;
          ++b_tap[i];
        }
      }
    }
    kk += kTileK;
    tap_c += kTileK;
    while (tap_c >= g.chunk_c) {
      tap_c -= g.chunk_c;
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
        uint32_t t[4];
        if constexpr (kForward) {
          const int row = warp_n * Cfg::kWN + nj * 16 + (mat >> 1) * 8 + lane % 8;
          ldmatrix_x4(t, b_src + swizzled(row, ks * 2 + (mat & 1)));
        } else {
          const int row = ks * 16 + (mat & 1) * 8 + lane % 8;
          const int chunk = (warp_n * Cfg::kWN + nj * 16) / 8 + (mat >> 1);
          ldmatrix_x4_trans(t, b_src + swizzled_wide<Cfg::kBN>(row, chunk));
        }
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
  // The output is N x out_h x out_w x out_c; this group's columns start at g * gemm_n.
  store_tile<T, Cfg>(acc, smem, out + grp * g.gemm_n, g.out_c, m0, n0, g.gemm_m, g.gemm_n);
}

// The filter gradient of one group: C[j][col] = dw[g*Kg + j][col], j < Kg, col = (r,s,c) <
// R*S*Cg (the NHWC filter's order), summed over kk = (n,p,q) < N*P*Q:
//   A[j][kk] = dy(n,p,q ; g*Kg + j)                         (j contiguous: A is k-major)
//   B[kk][col] = x(n, p*stride - pad + r*dil, ... ; g*Cg + c)  (c contiguous: B is k-major)
// Both tiles are kTileK rows of 16-byte chunks (the wide swizzle) read with ldmatrix.trans:
// for A, matrices (kk 0-7, m 0-7), (kk 0-7, m 8-15), (kk 8-15, m 0-7), (kk 8-15, m 8-15) give
// a0..a3 (lane l gives kk-row 8 ((l / 8) >> 1) + l % 8 and m-chunk (l / 8) & 1). kk is long:
// blockIdx.z takes k_per_split of it; with more than one split each CTA writes fp32 partial
// sums to its slice of the workspace (reduced by split_k.cuh), else rounds into dw directly.
struct TcWgradGeometry {
  int h, w, c, k, s, p, q;
  int pad_h, pad_w, stride_h, stride_w, dil_h, dil_w;
  int cg, kg;
  int gemm_n, gemm_k;  // R*S*Cg and N*P*Q (gemm_m = Kg)
  int k_per_split;     // a multiple of kTileK
  int tiles_n;         // blockIdx.y = group * tiles_n + tile_n
};

template <typename T, typename Cfg>
__global__ void __launch_bounds__(Cfg::kThreads)
    conv_tc_wgrad_kernel(TcWgradGeometry g, const T* __restrict__ x, const T* __restrict__ dy,
                         T* __restrict__ dw, float* __restrict__ partial) {
  constexpr int MI = Cfg::kMI, NI = Cfg::kNI;
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t smem_base = shared_address(smem);

  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int warp_m = warp / Cfg::kWarpsN, warp_n = warp % Cfg::kWarpsN;
  const int m0 = blockIdx.x * Cfg::kBM;
  const int grp = blockIdx.y / g.tiles_n;
  const int n0 = (blockIdx.y % g.tiles_n) * Cfg::kBN;
  const int k_begin = blockIdx.z * g.k_per_split;
  const int k_end = min(g.gemm_k, k_begin + g.k_per_split);

  // A loads: chunk tid % (BM / 8) (filters j .. j + 7) of kk-rows tid / (BM / 8) + i * pass.
  const int a_chunk = tid % Cfg::kWideChunksM, a_row = tid / Cfg::kWideChunksM;
  const bool a_col_valid = m0 + a_chunk * 8 < g.kg;
  const int a_col = grp * g.kg + m0 + a_chunk * 8;
  // B loads: chunk tid % (BN / 8) of kk-rows tid / (BN / 8) + i * pass. The chunk's tap (r, s)
  // and channel are fixed for the whole CTA; each row's pixel (n, p, q) advances with kk.
  const int b_chunk = tid % Cfg::kWideChunks, b_row = tid / Cfg::kWideChunks;
  const int col = n0 + b_chunk * 8;
  const bool b_col_valid = col < g.gemm_n;
  const int tap = (b_col_valid ? col : 0) / g.cg;
  const int b_channel = grp * g.cg + (b_col_valid ? col : 0) - tap * g.cg;
  const int tap_r = tap / g.s, tap_s = tap - tap_r * g.s;
  const int b_dh = tap_r * g.dil_h - g.pad_h, b_dw = tap_s * g.dil_w - g.pad_w;
  int b_n[Cfg::kWideLoads], b_p[Cfg::kWideLoads], b_q[Cfg::kWideLoads];
#pragma unroll
  for (int i = 0; i < Cfg::kWideLoads; ++i) {
    const int kk = k_begin + b_row + i * Cfg::kWideRowsPerPass;
    const int pq = g.p * g.q;
    b_n[i] = kk / pq;
    b_p[i] = (kk - b_n[i] * pq) / g.q;
    b_q[i] = kk - b_n[i] * pq - b_p[i] * g.q;
  }
  int k_next = k_begin;  // first kk of the next stage to load

  auto load_stage = [&](int stage) {
    const uint32_t a_dst = smem_base + stage * Cfg::kStageBytes;
    const uint32_t b_dst = a_dst + Cfg::kBM * kRowBytes;
#pragma unroll
    for (int i = 0; i < Cfg::kWideLoadsM; ++i) {
      const int row = a_row + i * Cfg::kWideRowsPerPassM;
      const int kk = k_next + row;
      const bool valid = a_col_valid && kk < k_end;
      const T* src = valid ? dy + kk * g.k + a_col : dy;
      cp_async_cg_16_or_zero(a_dst + swizzled_wide<Cfg::kBM>(row, a_chunk), src, valid);
    }
#pragma unroll
    for (int i = 0; i < Cfg::kWideLoads; ++i) {
      const int row = b_row + i * Cfg::kWideRowsPerPass;
      const int h = b_p[i] * g.stride_h + b_dh, wc = b_q[i] * g.stride_w + b_dw;
      const bool valid = b_col_valid && k_next + row < k_end && h >= 0 && h < g.h && wc >= 0 &&
                         wc < g.w;
      const T* src = valid ? x + ((b_n[i] * g.h + h) * g.w + wc) * g.c + b_channel : x;
      cp_async_ca_16_or_zero(b_dst + swizzled_wide<Cfg::kBN>(row, b_chunk), src, valid);
      b_q[i] += kTileK;
      while (b_q[i] >= g.q) {
        b_q[i] -= g.q;
        if (++b_p[i] == g.p) {
          b_p[i] = 0;
          ++b_n[i];
        }
      }
    }
    k_next += kTileK;
  };

  float acc[MI][NI][4];
#pragma unroll
  for (int mi = 0; mi < MI; ++mi)
#pragma unroll
    for (int ni = 0; ni < NI; ++ni)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[mi][ni][e] = 0.0f;

  const int k_tiles = (k_end - k_begin + kTileK - 1) / kTileK;
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < k_tiles) load_stage(s);
    cp_async_commit();
  }
  for (int kt = 0; kt < k_tiles; ++kt) {
    cp_async_wait<kStages - 2>();
    __syncthreads();
    const int next = kt + kStages - 1;
    if (next < k_tiles) load_stage(next % kStages);
    cp_async_commit();

    const uint32_t a_src = smem_base + (kt % kStages) * Cfg::kStageBytes;
    const uint32_t b_src = a_src + Cfg::kBM * kRowBytes;
#pragma unroll
    for (int ks = 0; ks < kTileK / 16; ++ks) {
      const int mat = lane / 8;
      uint32_t a_frag[MI][4], b_frag[NI][2];
#pragma unroll
      for (int mi = 0; mi < MI; ++mi) {
        const int row = ks * 16 + (mat >> 1) * 8 + lane % 8;
        const int chunk = (warp_m * Cfg::kWM + mi * 16) / 8 + (mat & 1);
        ldmatrix_x4_trans(a_frag[mi], a_src + swizzled_wide<Cfg::kBM>(row, chunk));
      }
#pragma unroll
      for (int nj = 0; nj < NI / 2; ++nj) {
        const int row = ks * 16 + (mat & 1) * 8 + lane % 8;
        const int chunk = (warp_n * Cfg::kWN + nj * 16) / 8 + (mat >> 1);
        uint32_t t[4];
        ldmatrix_x4_trans(t, b_src + swizzled_wide<Cfg::kBN>(row, chunk));
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

  // dw is K x (R*S*Cg): row g*Kg + j, column col.
  if (!partial) {
    store_tile<T, Cfg>(acc, smem, dw + grp * g.kg * g.gemm_n, g.gemm_n, m0, n0, g.kg, g.gemm_n);
    return;
  }
  float* slice = partial + static_cast<int64_t>(blockIdx.z) * (g.k * g.gemm_n) +
                 grp * g.kg * g.gemm_n;
#pragma unroll
  for (int mi = 0; mi < MI; ++mi)
#pragma unroll
    for (int ni = 0; ni < NI; ++ni)
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int m = m0 + warp_m * Cfg::kWM + mi * 16 + lane / 4 + half * 8;
        const int c = n0 + warp_n * Cfg::kWN + ni * 8 + (lane % 4) * 2;
        if (m < g.kg && c < g.gemm_n)
          *reinterpret_cast<float2*>(slice + m * g.gemm_n + c) =
              make_float2(acc[mi][ni][2 * half], acc[mi][ni][2 * half + 1]);
      }
}

TcGeometry tc_geometry(const ConvArgs& a) {
  TcGeometry g{};
  const int p = conv_output_h(a), q = conv_output_w(a);
  g.r = a.r, g.s = a.s, g.pad_h = a.pad_h, g.pad_w = a.pad_w;
  g.stride_h = a.stride_h, g.stride_w = a.stride_w, g.dil_h = a.dil_h, g.dil_w = a.dil_w;
  g.cg = a.c / a.groups, g.kg = a.k / a.groups;
  if (a.direction == ConvDirection::forward) {
    g.gathered_h = a.h, g.gathered_w = a.w, g.gathered_c = a.c, g.chunk_c = g.cg;
    g.out_h = p, g.out_w = q, g.out_c = a.k;
    g.gemm_m = a.n * p * q, g.gemm_n = g.kg;
  } else {
    g.gathered_h = p, g.gathered_w = q, g.gathered_c = a.k, g.chunk_c = g.kg;
    g.out_h = a.h, g.out_w = a.w, g.out_c = a.c;
    g.gemm_m = a.n * a.h * a.w, g.gemm_n = g.cg;
  }
  g.gemm_k = a.r * a.s * g.chunk_c;
  return g;
}

template <typename T, typename Cfg, ConvDirection D>
void launch_tile(const ConvArgs& a, TcGeometry g, cudaStream_t stream) {
  g.tiles_n = ceil_div(g.gemm_n, Cfg::kBN);
  auto kernel = conv_tc_kernel<T, Cfg, D>;
  check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             Cfg::kSmemBytes),
        "cudaFuncSetAttribute(conv_tc_kernel)");
  const bool forward = D == ConvDirection::forward;
  const T* gathered = static_cast<const T*>(forward ? a.x : a.y);
  T* out = static_cast<T*>(forward ? a.y : const_cast<void*>(a.x));
  const dim3 grid(static_cast<unsigned>(ceil_div(g.gemm_m, Cfg::kBM)),
                  static_cast<unsigned>(g.tiles_n * a.groups));
  kernel<<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream>>>(
      g, gathered, static_cast<const T*>(a.filter), out);
  check_launch("conv_tc_kernel");
}

// Work of the busiest SM with a tile: its share of CTAs (rounded up: the tail wave counts as a
// whole one) times the outputs a CTA computes, padding included, weighted by how much slower
// smaller tiles compute each output (more shared-memory traffic per mma; rough factors).
template <typename Cfg>
double busiest_sm_work(const TcGeometry& g, int groups, int sms, double weight) {
  const long long ctas =
      static_cast<long long>(ceil_div(g.gemm_m, Cfg::kBM)) * ceil_div(g.gemm_n, Cfg::kBN) * groups;
  return static_cast<double>(ceil_div(ctas, static_cast<long long>(sms))) * Cfg::kBM * Cfg::kBN *
         weight;
}

// The tile whose busiest SM has the least work.
template <typename T, ConvDirection D>
void launch_typed(const ConvArgs& a, cudaStream_t stream) {
  const TcGeometry g = tc_geometry(a);
  int device = 0, sms = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device),
        "cudaDeviceGetAttribute(MultiProcessorCount)");
  const double large = busiest_sm_work<TileLarge>(g, a.groups, sms, 1.0);
  const double medium = busiest_sm_work<TileMedium>(g, a.groups, sms, 1.15);
  const double small = busiest_sm_work<TileSmall>(g, a.groups, sms, 1.35);
  if (large <= medium && large <= small) return launch_tile<T, TileLarge, D>(a, g, stream);
  if (medium <= small) return launch_tile<T, TileMedium, D>(a, g, stream);
  launch_tile<T, TileSmall, D>(a, g, stream);
}

// The filter gradient's tile (the large one when Kg fills it) and split of N*P*Q: enough
// splits for about 2 CTAs per SM of a 132-SM GPU, each at least 8 K slices deep. A function of
// the geometry only, so that conv_workspace_bytes knows it before any device is chosen.
struct WgradPlan {
  TcWgradGeometry g;
  bool large_tile;
  int splits;
};

WgradPlan wgrad_plan(const ConvArgs& a) {
  WgradPlan plan{};
  TcWgradGeometry& g = plan.g;
  g.h = a.h, g.w = a.w, g.c = a.c, g.k = a.k, g.s = a.s;
  g.p = conv_output_h(a), g.q = conv_output_w(a);
  g.pad_h = a.pad_h, g.pad_w = a.pad_w, g.stride_h = a.stride_h, g.stride_w = a.stride_w;
  g.dil_h = a.dil_h, g.dil_w = a.dil_w;
  g.cg = a.c / a.groups, g.kg = a.k / a.groups;
  g.gemm_n = a.r * a.s * g.cg;
  g.gemm_k = a.n * g.p * g.q;
  plan.large_tile = g.kg > 64;
  const int bm = plan.large_tile ? TileLarge::kBM : TileSmall::kBM;
  const int bn = plan.large_tile ? TileLarge::kBN : TileSmall::kBN;
  g.tiles_n = ceil_div(g.gemm_n, bn);
  constexpr long long kTargetCtas = 264, kMinDepth = 8 * kTileK, kMaxSplits = 256;
  const long long tiles = static_cast<long long>(ceil_div(g.kg, bm)) * g.tiles_n * a.groups;
  const long long wanted = std::max(
      1LL, std::min({ceil_div(kTargetCtas, tiles), ceil_div(static_cast<long long>(g.gemm_k),
                                                            kMinDepth),
                     kMaxSplits}));
  g.k_per_split = ceil_div(ceil_div(g.gemm_k, static_cast<int>(wanted)), kTileK) * kTileK;
  plan.splits = ceil_div(g.gemm_k, g.k_per_split);
  return plan;
}

template <typename T, typename Cfg>
void launch_wgrad_tile(const ConvArgs& a, const WgradPlan& plan, cudaStream_t stream) {
  auto kernel = conv_tc_wgrad_kernel<T, Cfg>;
  check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             Cfg::kSmemBytes),
        "cudaFuncSetAttribute(conv_tc_wgrad_kernel)");
  T* dw = static_cast<T*>(const_cast<void*>(a.filter));
  float* partial = plan.splits > 1 ? static_cast<float*>(a.workspace) : nullptr;
  const dim3 grid(static_cast<unsigned>(ceil_div(plan.g.kg, Cfg::kBM)),
                  static_cast<unsigned>(plan.g.tiles_n * a.groups),
                  static_cast<unsigned>(plan.splits));
  kernel<<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream>>>(
      plan.g, static_cast<const T*>(a.x), static_cast<const T*>(a.y), dw, partial);
  check_launch("conv_tc_wgrad_kernel");
  if (partial) conv_split_k::reduce_splits<T>(partial, dw, a.k * plan.g.gemm_n, plan.splits, stream);
}

template <typename T>
void launch_dtype(const ConvArgs& a, cudaStream_t stream) {
  switch (a.direction) {
    case ConvDirection::forward:
      return launch_typed<T, ConvDirection::forward>(a, stream);
    case ConvDirection::backward_data:
      return launch_typed<T, ConvDirection::backward_data>(a, stream);
    case ConvDirection::backward_filter: {
      const WgradPlan plan = wgrad_plan(a);
      if (plan.large_tile) return launch_wgrad_tile<T, TileLarge>(a, plan, stream);
      return launch_wgrad_tile<T, TileSmall>(a, plan, stream);
    }
  }
}

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

}  // namespace

const char* support_implicit_gemm_tc(const ConvArgs& a, int) {
  if (a.dtype != DType::f16 && a.dtype != DType::bf16)
    return "implicit-gemm-tc runs float16 and bfloat16 only";
  if (a.layout != ConvLayout::nhwc)
    return "implicit-gemm-tc needs the NHWC layout (channels contiguous per filter tap); "
           "implicit-gemm-simt runs NCHW";
  if ((a.c / a.groups) % 8 != 0 || (a.k / a.groups) % 8 != 0)
    return "implicit-gemm-tc needs C/groups and K/groups to be multiples of 8 (16-byte copies)";
  if (!aligned16(a.x) || !aligned16(a.filter) || !aligned16(a.y))
    return "implicit-gemm-tc needs x, filter and y 16-byte aligned";
  // The split filter gradient stores its fp32 partial sums as float2.
  if (reinterpret_cast<std::uintptr_t>(a.workspace) % 8 != 0)
    return "implicit-gemm-tc needs the workspace 8-byte aligned";
  const int gemm_n = a.direction == ConvDirection::forward         ? a.k / a.groups
                     : a.direction == ConvDirection::backward_data ? a.c / a.groups
                                                                   : a.r * a.s * (a.c / a.groups);
  if (static_cast<long long>(ceil_div(gemm_n, 64)) * a.groups > 65535)
    return "implicit-gemm-tc: too many output-channel tiles times groups for one grid dimension";
  return nullptr;
}

std::size_t workspace_implicit_gemm_tc(const ConvArgs& a) {
  if (a.direction != ConvDirection::backward_filter) return 0;
  const WgradPlan plan = wgrad_plan(a);
  if (plan.splits <= 1) return 0;
  return static_cast<std::size_t>(plan.splits) * a.k * plan.g.gemm_n * sizeof(float);
}

void launch_implicit_gemm_tc(const ConvArgs& a, cudaStream_t stream) {
  if (a.dtype == DType::bf16) return launch_dtype<__nv_bfloat16>(a, stream);
  launch_dtype<__half>(a, stream);
}

}  // namespace dlcb::cuda::conv_variants_impl
