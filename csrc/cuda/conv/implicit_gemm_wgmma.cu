// "implicit-gemm-wgmma": forward convolution as an implicit GEMM on Hopper's warpgroup MMA
// (sm_90a), NHWC, f16/bf16 with fp32 accumulation, groups == 1, C % 64 == 0, K % 64 == 0.
//   C[m][j] = y(n, p, q ; j)          m = (n, p, q) < M = N*P*Q, j < K
//   A[m][kk] = x(n, p*stride_h - pad_h + r*dil_h, q*stride_w - pad_w + s*dil_w ; c), 0 in the
//              padding, kk = (r, s, c) < R*S*C
//   B[j][kk] = w[j][kk]               (the K x R x S x C filter read as is)
// With C % 64 == 0 a 64-deep slice kk0 .. kk0 + 63 of GEMM-K is one tap (r, s) and 64
// consecutive channels: for every output pixel 128 contiguous bytes of x (or 128 zero bytes),
// for every filter 128 contiguous bytes of w. Each slice is one pipeline stage; the slices are
// visited channel block by channel block, all R*S taps of a block in a row, so that the taps'
// overlapping activation reads hit L1 (cp.async.ca).
//
// CTA: 128 output pixels x kBN filters (64 or 128, TileShape), 3 warpgroups.
//  - Warpgroup 0, the producer: its 128 threads copy the stage's A tile (128 rows) and B tile
//    (kBN rows) with 16-byte cp.async, zero-filling pixels that fall into the padding or past M.
//    Thread t copies chunk t % 8 of rows t / 8 + 16 i. A thread's copies of stage i are known
//    complete when it has committed stage i + kLag and waited for all but kLag groups; it then
//    fences (generic -> async proxy, wgmma reads through the async proxy) and arrives on the
//    stage's "full" mbarrier (128 arrivals). Before refilling a slot it waits on its "empty"
//    mbarrier (one arrival from lane 0 of each of the 8 consumer warps).
//  - Warpgroups 1 and 2, the consumers, own pixel rows 0-63 and 64-127 of the tile: for every
//    stage they issue 4 wgmma m64n{kBN}k16 (both operands K-major), keep one stage of wgmma in
//    flight and release the stage before it.
// Shared memory, per stage: A (128 rows x 128 bytes), then B (kBN rows x 128 bytes); 16-byte
// chunk c of row r at r * 128 + 16 (c ^ (r % 8)), the 128-byte swizzle the wgmma descriptor
// names (conv/wgmma_sm90.cuh); every tile starts 1024-byte aligned.
// Epilogue: once both consumers are done the pipeline's shared memory holds the rounded output
// tile (rows padded by 16 bytes), which the consumers store as whole 16-byte chunks of y rows.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "common/check.cuh"
#include "common/launch.cuh"
#include "conv/mma_ptx.cuh"
#include "conv/variants.h"
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#include "conv/wgmma_sm90.cuh"
#endif

namespace dlcb::cuda::conv_variants_impl {

namespace {

constexpr int kBlockM = 128;
constexpr int kBlockK = 64;  // one tap, 64 channels: 128 bytes a row
constexpr int kRowBytes = kBlockK * 2;
constexpr int kThreads = 3 * 128;
constexpr int kStageBytesA = kBlockM * kRowBytes;

// Per tile width: CTAs per SM and pipeline depth. The 64-wide tile runs 2 CTAs per SM (one's
// pipeline fill and epilogue overlap the other's main loop; 2 x 97 KB of stages); the 128-wide
// tile 1 (161 KB), which leaves about 90 KB of L1 for the activations' tap overlap.
template <int kBN>
struct TileShape {
  static constexpr int kCtasPerSm = kBN == 64 ? 2 : 1;
  static constexpr int kStages = kBN == 64 ? 4 : 5;
  static constexpr int kStageBytesB = kBN * kRowBytes;
  // + 1024: swizzled tiles start 1024-byte aligned, dynamic shared memory is 16-byte aligned.
  static constexpr int kSmemBytes = kStages * (kStageBytesA + kStageBytesB) + 1024;
};

struct WgmmaGeometry {
  int h, w, c, k, r, s;
  int pad_h, pad_w, stride_h, stride_w, dil_h, dil_w;
  int p, q;
  int gemm_m, gemm_k;  // N*P*Q, R*S*C
};

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)

// Device-only constants, used by the sm_90a body alone.
constexpr int kConsumerBarrier = 1;  // named barrier of the 256 consumer threads

__device__ __forceinline__ void consumers_sync() {
  asm volatile("bar.sync %0, 256;\n" ::"n"(kConsumerBarrier) : "memory");
}

template <typename T>
__device__ __forceinline__ uint32_t pack_pair(float lo, float hi) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  } else {
    const __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  }
}

#endif

template <typename T, int kBN>
__global__ void __launch_bounds__(kThreads, TileShape<kBN>::kCtasPerSm)
    conv_wgmma_kernel(WgmmaGeometry g, const T* __restrict__ x, const T* __restrict__ w,
                      T* __restrict__ y) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using namespace conv_sm90;
  constexpr int kStages = TileShape<kBN>::kStages;
  constexpr int kStageBytesB = TileShape<kBN>::kStageBytesB;
  // Stages a producer thread keeps in flight beyond the oldest one it has not yet signalled.
  // Consumers hold 2 slots (the stage in flight, the stage being issued), so the producer can
  // fill kStages - 2 slots ahead of them; more would deadlock.
  constexpr int kLag = kStages - 2;
  // Static shared memory exists only in this sm_90a body: the host reads it back
  // (cudaFuncAttributes::sharedSizeBytes) to tell this image from an empty one.
  __shared__ __align__(8) uint64_t full_bar[kStages];
  __shared__ __align__(8) uint64_t empty_bar[kStages];
  extern __shared__ __align__(1024) uint8_t smem_raw[];

  const uint32_t smem_base = (smem_address(smem_raw) + 1023u) & ~1023u;
  const auto stage_a = [&](int s) { return smem_base + s * kStageBytesA; };
  const auto stage_b = [&](int s) { return smem_base + kStages * kStageBytesA + s * kStageBytesB; };
  const auto full = [&](int s) { return smem_address(&full_bar[s]); };
  const auto empty = [&](int s) { return smem_address(&empty_bar[s]); };

  if (threadIdx.x == 0) {
    for (int s = 0; s < kStages; ++s) {
      mbarrier_init(full(s), 128);  // every producer thread
      mbarrier_init(empty(s), 8);   // lane 0 of every consumer warp
    }
    mbarrier_init_fence();
  }
  __syncthreads();

  const int m0 = blockIdx.x * kBlockM;
  const int n0 = blockIdx.y * kBN;
  const int k_blocks = g.gemm_k / kBlockK;  // C % 64 == 0: whole slices
  const int warpgroup = threadIdx.x / 128;

  if (warpgroup == 0) {
    const int chunk = threadIdx.x % 8;
    const int first_row = threadIdx.x / 8;  // rows first_row + 16 i: all with row % 8 the same
    const uint32_t row_offset = first_row * kRowBytes + ((chunk ^ (first_row % 8)) << 4);
    constexpr int kRowsA = kBlockM / 16, kRowsB = kBN / 16;

    // Per A row: offset of its image in x and the input pixel its taps start from. Rows past M
    // start at h = H, below which no tap reaches: they read as zeros.
    int image[kRowsA], h0[kRowsA], w0[kRowsA];
    const int pq = g.p * g.q;
#pragma unroll
    for (int i = 0; i < kRowsA; ++i) {
      const int m = m0 + first_row + 16 * i;
      const int mm = m < g.gemm_m ? m : 0;
      const int n = mm / pq, rem = mm - n * pq;
      const int oh = rem / g.q, ow = rem - oh * g.q;
      image[i] = n * g.h * g.w * g.c + chunk * 8;
      h0[i] = m < g.gemm_m ? oh * g.stride_h - g.pad_h : g.h;
      w0[i] = ow * g.stride_w - g.pad_w;
    }
    const T* filter = w + (n0 + first_row) * g.gemm_k + chunk * 8;  // K % kBN == 0: all rows exist

    int tap_r = 0, tap_s = 0, c0 = 0;
    int slot = 0;
    uint32_t phase = 0;
    for (int kb = 0; kb < k_blocks; ++kb) {
      mbarrier_wait(empty(slot), phase ^ 1);
      const int dh = tap_r * g.dil_h, dw = tap_s * g.dil_w;
      const int tap_col = (tap_r * g.s + tap_s) * g.c;  // GEMM-K column of (r, s, 0)
#pragma unroll
      for (int i = 0; i < kRowsA; ++i) {
        const int ih = h0[i] + dh, iw = w0[i] + dw;
        const bool valid = static_cast<unsigned>(ih) < static_cast<unsigned>(g.h) &&
                           static_cast<unsigned>(iw) < static_cast<unsigned>(g.w);
        const T* src = valid ? x + image[i] + (ih * g.w + iw) * g.c + c0 : x;
        conv_ptx::cp_async_ca_16_or_zero(stage_a(slot) + row_offset + i * 16 * kRowBytes, src, valid);
      }
#pragma unroll
      for (int i = 0; i < kRowsB; ++i)
        conv_ptx::cp_async_cg_16_or_zero(stage_b(slot) + row_offset + i * 16 * kRowBytes,
                                         filter + i * 16 * g.gemm_k + tap_col + c0, true);
      conv_ptx::cp_async_commit();
      if (kb >= kLag) {
        conv_ptx::cp_async_wait<kLag>();  // this thread's copies of stage kb - kLag landed
        fence_proxy_async_shared();
        mbarrier_arrive(full((kb - kLag) % kStages));
      }
      if (++slot == kStages) {
        slot = 0;
        phase ^= 1;
      }
      if (++tap_s == g.s) {
        tap_s = 0;
        if (++tap_r == g.r) {
          tap_r = 0;
          c0 += kBlockK;
        }
      }
    }
    conv_ptx::cp_async_wait<0>();
    fence_proxy_async_shared();
    for (int kb = k_blocks > kLag ? k_blocks - kLag : 0; kb < k_blocks; ++kb)
      mbarrier_arrive(full(kb % kStages));
  } else {
    constexpr bool kBf16 = std::is_same_v<T, __nv_bfloat16>;
    const int slab = warpgroup - 1;  // pixel rows 64 slab .. 64 slab + 63 of the tile
    const int warp = (threadIdx.x % 128) / 32;
    const int lane = threadIdx.x % 32;
    float acc[kBN / 2];
    int slot = 0, previous = 0;
    uint32_t phase = 0;
    for (int kb = 0; kb < k_blocks; ++kb) {
      mbarrier_wait(full(slot), phase);
#pragma unroll
      for (int i = 0; i < kBN / 2; ++i) fence_accumulator(acc[i]);
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < kBlockK / 16; ++kk) {
        // The k-th 16-deep slice of a K-major swizzled tile starts 32 k bytes into its rows.
        const uint64_t desc_a = kmajor_sw128_desc(stage_a(slot) + slab * 64 * kRowBytes + kk * 32);
        const uint64_t desc_b = kmajor_sw128_desc(stage_b(slot) + kk * 32);
        wgmma_kmajor<kBN, kBf16>(acc, desc_a, desc_b, kb > 0 || kk > 0);
      }
      wgmma_commit_group();
#pragma unroll
      for (int i = 0; i < kBN / 2; ++i) fence_accumulator(acc[i]);
      // The stage before this one has been read once at most this stage's group is pending.
      wgmma_wait_group<1>();
      if (kb > 0 && lane == 0) mbarrier_arrive(empty(previous));
      previous = slot;
      if (++slot == kStages) {
        slot = 0;
        phase ^= 1;
      }
    }
    wgmma_wait_group<0>();
#pragma unroll
    for (int i = 0; i < kBN / 2; ++i) fence_accumulator(acc[i]);

    // Every stage has been filled (the producer signalled each after its copies landed) and
    // read (both consumers waited for their last wgmma): the pipeline's memory is free.
    constexpr int kOutRowBytes = kBN * 2 + 16;  // 8 rows x 4 lanes of a store: 32 banks
    static_assert(kBlockM * kOutRowBytes <= kStages * kStageBytesA, "output tile fits");
    uint8_t* tile = smem_raw + (smem_base - smem_address(smem_raw));
    consumers_sync();
    // acc[4j + 2h + e] is C[64 slab + 16 warp + lane / 4 + 8h][8j + 2 (lane % 4) + e].
#pragma unroll
    for (int j = 0; j < kBN / 8; ++j)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int row = 64 * slab + 16 * warp + lane / 4 + 8 * h;
        const int col = 8 * j + 2 * (lane % 4);
        *reinterpret_cast<uint32_t*>(tile + row * kOutRowBytes + col * 2) =
            pack_pair<T>(acc[4 * j + 2 * h], acc[4 * j + 2 * h + 1]);
      }
    consumers_sync();
    constexpr int kChunks = kBN / 8;
    for (int idx = threadIdx.x - 128; idx < kBlockM * kChunks; idx += 256) {
      const int row = idx / kChunks, ch = idx % kChunks;
      const int m = m0 + row;
      if (m < g.gemm_m)
        *reinterpret_cast<uint4*>(y + m * g.k + n0 + ch * 8) =
            *reinterpret_cast<const uint4*>(tile + row * kOutRowBytes + ch * 16);
    }
  }
#endif
}

WgmmaGeometry geometry(const ConvArgs& a) {
  WgmmaGeometry g{};
  g.h = a.h, g.w = a.w, g.c = a.c, g.k = a.k, g.r = a.r, g.s = a.s;
  g.pad_h = a.pad_h, g.pad_w = a.pad_w, g.stride_h = a.stride_h, g.stride_w = a.stride_w;
  g.dil_h = a.dil_h, g.dil_w = a.dil_w;
  g.p = conv_output_h(a), g.q = conv_output_w(a);
  g.gemm_m = a.n * g.p * g.q;
  g.gemm_k = a.r * a.s * a.c;
  return g;
}

template <typename T, int kBN>
void launch_tile(const ConvArgs& a, const WgmmaGeometry& g, cudaStream_t stream) {
  const auto kernel = conv_wgmma_kernel<T, kBN>;
  constexpr int kSmem = TileShape<kBN>::kSmemBytes;
  check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem),
        "cudaFuncSetAttribute(conv_wgmma_kernel)");
  const dim3 grid(static_cast<unsigned>(ceil_div(g.gemm_m, kBlockM)),
                  static_cast<unsigned>(g.k / kBN));
  kernel<<<grid, kThreads, kSmem, stream>>>(g, static_cast<const T*>(a.x),
                                            static_cast<const T*>(a.filter), static_cast<T*>(a.y));
  check_launch("conv_wgmma_kernel");
}

// 128 filters a tile when K allows it and the tiles fill the SMs about as well as 64 would: the
// busiest SM's work is its share of tiles (rounded up to whole waves of the CTAs an SM holds at
// once: 1 of the wide tile, 2 of the narrow one) times the tile's width, with the narrow tile's
// lower efficiency (A copied and read once per 64 filters instead of 128) priced in. A guess, to
// be tuned on the device.
template <typename T>
void launch_typed(const ConvArgs& a, cudaStream_t stream) {
  const WgmmaGeometry g = geometry(a);
  int device = 0, sms = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device),
        "cudaDeviceGetAttribute(MultiProcessorCount)");
  const long long m_tiles = ceil_div(g.gemm_m, kBlockM);
  const auto busiest_sm = [&](int bn, int ctas_per_sm, double cost) {
    const long long tiles = m_tiles * (g.k / bn);
    const long long slots = static_cast<long long>(sms) * ctas_per_sm;
    return static_cast<double>((tiles + slots - 1) / slots) * ctas_per_sm * bn * cost;
  };
  if (g.k % 128 == 0 && busiest_sm(128, 1, 1.0) <= busiest_sm(64, 2, 1.2))
    return launch_tile<T, 128>(a, g, stream);
  launch_tile<T, 64>(a, g, stream);
}

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

}  // namespace

const char* support_implicit_gemm_wgmma(const ConvArgs& a, int cc) {
  if (a.dtype != DType::f16 && a.dtype != DType::bf16)
    return "implicit-gemm-wgmma runs float16 and bfloat16 only";
  if (a.direction != ConvDirection::forward)
    return "implicit-gemm-wgmma runs the forward direction only";
  if (a.layout != ConvLayout::nhwc)
    return "implicit-gemm-wgmma needs the NHWC layout (channels contiguous per filter tap)";
  if (a.groups != 1) return "implicit-gemm-wgmma needs groups == 1";
  if (a.c % 64 != 0 || a.k % 64 != 0)
    return "implicit-gemm-wgmma needs C and K to be multiples of 64 (a 64-channel tap slice is "
           "one 128-byte swizzled row)";
  if (!aligned16(a.x) || !aligned16(a.filter) || !aligned16(a.y))
    return "implicit-gemm-wgmma needs x, filter and y 16-byte aligned";
  if (a.k / 64 > 65535) return "implicit-gemm-wgmma needs K <= 64 * 65535 (one grid dimension)";
  // Tap coordinates (from -pad to beyond the input) are 32-bit ints.
  const long long span_h = a.h + 2LL * a.pad_h + static_cast<long long>(a.dil_h) * (a.r - 1);
  const long long span_w = a.w + 2LL * a.pad_w + static_cast<long long>(a.dil_w) * (a.s - 1);
  if (span_h >= (1LL << 30) || span_w >= (1LL << 30))
    return "implicit-gemm-wgmma needs padded input extents below 2**30";
  if (cc != 90)
    return "implicit-gemm-wgmma needs compute capability 9.0 (sm_90a wgmma)";
  // Only the sm_90a pass compiles the kernel body; a build without that target (or a device
  // running compute_90 PTX) gets an empty kernel, recognisable by its lack of the static
  // shared memory the body declares.
  cudaFuncAttributes attr{};
  if (cudaFuncGetAttributes(&attr, conv_wgmma_kernel<__nv_bfloat16, 64>) != cudaSuccess) {
    cudaGetLastError();
    return "implicit-gemm-wgmma has no kernel image for this device (build with sm_90a)";
  }
  if (attr.sharedSizeBytes == 0)
    return "implicit-gemm-wgmma was built without sm_90a machine code (only an empty fallback "
           "image)";
  return nullptr;
}

std::size_t workspace_implicit_gemm_wgmma(const ConvArgs&) { return 0; }

void launch_implicit_gemm_wgmma(const ConvArgs& a, cudaStream_t stream) {
  if (a.dtype == DType::bf16) return launch_typed<__nv_bfloat16>(a, stream);
  launch_typed<__half>(a, stream);
}

}  // namespace dlcb::cuda::conv_variants_impl
