// fp16/bf16 GEMM on sm_80+ tensor cores: mma.sync m16n8k16 with fp32 accumulators, operands
// read from shared memory by ldmatrix, shared memory filled by cp.async in a ring of 2-4 stages.
//
// A CTA of 8 warps computes a 128x256 tile of C, each warp a 64x64 piece (2 warps along M,
// 4 along N), stepping K by 64. An operand tile is stored "K-major" (rows along M or N, 64 K
// elements = 128 bytes each) when K is its contiguous global dimension, else "MN-major" (rows
// along K, 128 or 256 elements each); ldmatrix reads K-major tiles plain and MN-major tiles with
// .trans. Every row is a run of 16-byte chunks, and chunk c of row r is stored at chunk
// c ^ (r % 8): the 8 rows of an 8x8 ldmatrix matrix, and the 8 chunks that 8 consecutive threads
// copy in, then fall in 8 different bank groups.
//
// Edges: cp.async copies only the valid part of a chunk and zero-fills the rest, so rows or
// columns past m, n or k contribute zeros; the epilogue stores only elements inside C.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdint>
#include <stdexcept>
#include <type_traits>
#include <string>

#include "common/check.cuh"
#include "common/launch.cuh"
#include "gemm/tc_fragments.cuh"
#include "gemm/variants.h"

namespace dlcb::cuda::gemm_variants_impl {

namespace {

constexpr int kBlockM = 128;
constexpr int kBlockN = 256;
constexpr int kBlockK = 64;
constexpr int kWarpTileM = 64;
constexpr int kWarpTileN = 64;
constexpr int kWarpsN = kBlockN / kWarpTileN;  // 4; 2 warps along M
constexpr int kThreads = 32 * (kBlockM / kWarpTileM) * kWarpsN;
constexpr int kFragmentsM = kWarpTileM / 16;  // m16 tiles per warp
constexpr int kFragmentsN = kWarpTileN / 8;   // n8 tiles per warp
constexpr int kTileBytesA = kBlockM * kBlockK * 2;
constexpr int kTileBytesB = kBlockN * kBlockK * 2;
constexpr int kStageBytes = kTileBytesA + kTileBytesB;  // 48 KiB
constexpr int kMinStages = 2;
constexpr int kMaxStages = 4;  // cp_async_wait handles up to kMaxStages - 2 pending groups
// Consecutive CTAs walk down kGroupM tile rows before moving right, so that the CTAs resident at
// one time share A and B tiles in L2.
constexpr int kGroupM = 8;

struct Params {
  const void* a;
  const void* b;
  void* c;
  long long lda, ldb, ldc;
  int m, n, k;
  int tiles_m, tiles_n;
  int stages;
  float alpha, beta;
};

// Byte offset of (row, 16-byte chunk) in a tile whose rows are kRowBytes (a multiple of 128).
template <int kRowBytes>
__device__ __forceinline__ uint32_t swizzled_offset(int row, int chunk) {
  return static_cast<uint32_t>(row * kRowBytes + ((chunk ^ (row & 7)) << 4));
}

// Copies one operand tile of kRows rows x kRowElems elements into shared memory. Thread tid
// copies chunk tid % (chunks per row) of rows tid / (chunks per row) + i * kRowsPerPass; the
// rows of one thread are 8k apart, so they share one swizzle and one shared-memory stride.
template <typename T, int kRows, int kRowElems>
struct TileLoader {
  static constexpr int kChunksPerRow = kRowElems / 8;
  static constexpr int kRowsPerPass = kThreads / kChunksPerRow;
  static constexpr int kPasses = kRows / kRowsPerPass;
  static_assert(kRowsPerPass % 8 == 0 && kRows % kRowsPerPass == 0, "uneven tile split");

  const T* first;         // this thread's first chunk of the tile at k tile 0
  const T* fallback;      // an address inside the matrix for chunks that read nothing
  long long pass_stride;  // elements between this thread's successive chunks
  uint32_t smem_offset;   // byte offset of the first chunk in the swizzled tile
  int row;
  int chunk;

  // Tile row r is global row outer0 + r, tile element e of a row global column inner0 + e;
  // global element (o, i) is base[o * ld + i].
  __device__ TileLoader(const T* base, long long ld, long long outer0, long long inner0, int tid)
      : row(tid / kChunksPerRow), chunk(tid % kChunksPerRow) {
    first = base + (outer0 + row) * ld + inner0 + 8 * chunk;
    fallback = base;
    pass_stride = kRowsPerPass * ld;
    smem_offset = swizzled_offset<kRowElems * 2>(row, chunk);
  }

  // Queues the copy of the tile that starts `offset` elements after the k-tile-0 one; only its
  // first outer_left rows and inner_left elements of a row exist, the rest becomes zeros.
  __device__ __forceinline__ void load(uint32_t tile, long long offset, int outer_left,
                                       int inner_left) const {
    const int left = inner_left - 8 * chunk;
    const int valid_in_row = left < 0 ? 0 : (left > 8 ? 8 : left);
#pragma unroll
    for (int i = 0; i < kPasses; ++i) {
      const int valid = row + i * kRowsPerPass < outer_left ? valid_in_row : 0;
      const T* src = valid > 0 ? first + offset + i * pass_stride : fallback;
      tc::cp_async_16_zfill(tile + smem_offset + i * kRowsPerPass * kRowElems * 2, src,
                            2 * valid);
    }
  }
};

// The shared-memory offsets a lane hands to ldmatrix.x4. Lane 8j + r addresses row r of matrix
// j; A's matrices are (m0,k0) (m8,k0) (m0,k8) (m8,k8) = a0..a3, B's are (n0,k0) (n0,k8) (n8,k0)
// (n8,k8) = b0, b1 of one n8 tile, then b0, b1 of the next. A K-major tile has MN rows, and a
// matrix row is one chunk of 8 K elements; an MN-major tile has K rows, and .trans turns its
// 8 K x 8 MN matrices into the fragments' K pairs.
//
// Fragment f (MN elements warp_mn0 + 16f ..) of k step q (K elements 16q ..), f, q < 4: only
// the chunk index within an aligned group of 8 depends on the swizzle, and it is the lane's own
// chunk XOR 2q (K-major) or XOR 2f (MN-major), so each offset is one XOR and one constant add.
template <bool kIsA, bool kKMajor, int kTileMN>
struct FragmentAddress {
  uint32_t lane_offset;

  __device__ FragmentAddress(int lane, int warp_mn0) {
    const int r = lane & 7;
    const int j = lane >> 3;
    const int mn_half = kIsA ? (j & 1) : (j >> 1);
    const int k_half = kIsA ? (j >> 1) : (j & 1);
    if constexpr (kKMajor)
      lane_offset = swizzled_offset<kBlockK * 2>(warp_mn0 + 8 * mn_half + r, k_half);
    else
      lane_offset = swizzled_offset<kTileMN * 2>(8 * k_half + r, warp_mn0 / 8 + mn_half);
  }

  __device__ __forceinline__ uint32_t operator()(int f, int q) const {
    if constexpr (kKMajor)
      return (lane_offset ^ (32 * q)) + f * 16 * kBlockK * 2;
    else
      return (lane_offset ^ (32 * f)) + q * 16 * kTileMN * 2;
  }
};

template <bool kKMajor>
__device__ __forceinline__ void load_fragment(uint32_t (&r)[4], uint32_t addr) {
  if constexpr (kKMajor)
    tc::ldmatrix_x4(r, addr);
  else
    tc::ldmatrix_x4_trans(r, addr);
}

template <typename T>
struct Pair;
template <>
struct Pair<__half> {
  using type = __half2;
  static __device__ float2 to_float2(type v) { return __half22float2(v); }
  static __device__ type from_floats(float x, float y) { return __floats2half2_rn(x, y); }
  static __device__ float to_float(__half v) { return __half2float(v); }
  static __device__ __half from_float(float x) { return __float2half_rn(x); }
};
template <>
struct Pair<__nv_bfloat16> {
  using type = __nv_bfloat162;
  static __device__ float2 to_float2(type v) { return __bfloat1622float2(v); }
  static __device__ type from_floats(float x, float y) { return __floats2bfloat162_rn(x, y); }
  static __device__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
  static __device__ __nv_bfloat16 from_float(float x) { return __float2bfloat16_rn(x); }
};

// C[row][col..col+1] = alpha * (v0, v1) + beta * C, for the columns inside n.
template <typename T>
__device__ __forceinline__ void store_pair(const Params& p, long long row, long long col, float v0,
                                           float v1) {
  using P = Pair<T>;
  if (row >= p.m || col >= p.n) return;
  T* dst = static_cast<T*>(p.c) + row * p.ldc + col;
  v0 *= p.alpha;
  v1 *= p.alpha;
  if (col + 1 < p.n) {
    // col is even and ldc a multiple of 8: the pair is 4-byte aligned.
    auto* dst2 = reinterpret_cast<typename P::type*>(dst);
    if (p.beta != 0.0f) {
      const float2 old = P::to_float2(*dst2);
      v0 = fmaf(p.beta, old.x, v0);
      v1 = fmaf(p.beta, old.y, v1);
    }
    *dst2 = P::from_floats(v0, v1);
  } else {
    if (p.beta != 0.0f) v0 = fmaf(p.beta, P::to_float(*dst), v0);
    *dst = P::from_float(v0);
  }
}

// kAKMajor: A is m x k row-major (not trans_a); kBKMajor: B is n x k row-major (trans_b).
template <typename T, bool kAKMajor, bool kBKMajor>
__global__ void __launch_bounds__(kThreads, 1) tc_mma_sync_multistage_kernel(const Params p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t smem_base = tc::shared_address(smem);
  const int tid = static_cast<int>(threadIdx.x);
  const int lane = tid & 31;
  const int warp = tid >> 5;
  const int warp_m0 = (warp / kWarpsN) * kWarpTileM;
  const int warp_n0 = (warp % kWarpsN) * kWarpTileN;

  const int block = static_cast<int>(blockIdx.x);
  const int tiles_per_group = kGroupM * p.tiles_n;
  const int first_tile_m = (block / tiles_per_group) * kGroupM;
  const int group_rows = min(p.tiles_m - first_tile_m, kGroupM);
  const int in_group = block % tiles_per_group;
  const int block_m = (first_tile_m + in_group % group_rows) * kBlockM;  // < m
  const int block_n = (in_group / group_rows) * kBlockN;                 // < n
  const int m_left = p.m - block_m;
  const int n_left = p.n - block_n;

  const T* a = static_cast<const T*>(p.a);
  const T* b = static_cast<const T*>(p.b);
  using LoaderA = std::conditional_t<kAKMajor, TileLoader<T, kBlockM, kBlockK>,
                                     TileLoader<T, kBlockK, kBlockM>>;
  using LoaderB = std::conditional_t<kBKMajor, TileLoader<T, kBlockN, kBlockK>,
                                     TileLoader<T, kBlockK, kBlockN>>;
  const LoaderA loader_a = kAKMajor ? LoaderA(a, p.lda, block_m, 0, tid)
                                    : LoaderA(a, p.lda, 0, block_m, tid);
  const LoaderB loader_b = kBKMajor ? LoaderB(b, p.ldb, block_n, 0, tid)
                                    : LoaderB(b, p.ldb, 0, block_n, tid);
  const int k_tiles = (p.k + kBlockK - 1) / kBlockK;

  auto load_stage = [&](int stage, int k_tile) {
    const uint32_t tile_a = smem_base + stage * kStageBytes;
    const uint32_t tile_b = tile_a + kTileBytesA;
    const int k0 = k_tile * kBlockK;
    const int k_left = p.k - k0;
    if constexpr (kAKMajor)
      loader_a.load(tile_a, k0, m_left, k_left);
    else
      loader_a.load(tile_a, k0 * p.lda, k_left, m_left);
    if constexpr (kBKMajor)
      loader_b.load(tile_b, k0, n_left, k_left);
    else
      loader_b.load(tile_b, k0 * p.ldb, k_left, n_left);
  };

  const FragmentAddress<true, kAKMajor, kBlockM> address_a(lane, warp_m0);
  const FragmentAddress<false, kBKMajor, kBlockN> address_b(lane, warp_n0);

  float acc[kFragmentsM][kFragmentsN][4];
#pragma unroll
  for (int i = 0; i < kFragmentsM; ++i)
#pragma unroll
    for (int j = 0; j < kFragmentsN; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

  // Prologue: stages - 1 tiles in flight, one commit group each (empty past the last tile, so
  // that the group count, and with it cp_async_wait's arithmetic, stays the same).
  for (int s = 0; s < p.stages - 1; ++s) {
    if (s < k_tiles) load_stage(s, s);
    tc::cp_async_commit();
  }

  int read_stage = 0;
  int write_stage = p.stages - 1;
  for (int kt = 0; kt < k_tiles; ++kt) {
    // Groups 0..kt are complete once at most stages - 2 are pending; the barrier publishes
    // every thread's copies and also tells that all warps are done with the stage read at
    // kt - 1, which is the one refilled next.
    tc::cp_async_wait(p.stages - 2);
    __syncthreads();
    if (kt + p.stages - 1 < k_tiles) load_stage(write_stage, kt + p.stages - 1);
    tc::cp_async_commit();

    const uint32_t tile_a = smem_base + read_stage * kStageBytes;
    const uint32_t tile_b = tile_a + kTileBytesA;
#pragma unroll
    for (int q = 0; q < kBlockK / 16; ++q) {
      uint32_t frag_a[kFragmentsM][4];
      uint32_t frag_b[kFragmentsN / 2][4];
#pragma unroll
      for (int i = 0; i < kFragmentsM; ++i)
        load_fragment<kAKMajor>(frag_a[i], tile_a + address_a(i, q));
#pragma unroll
      for (int j = 0; j < kFragmentsN / 2; ++j)
        load_fragment<kBKMajor>(frag_b[j], tile_b + address_b(j, q));
#pragma unroll
      for (int i = 0; i < kFragmentsM; ++i)
#pragma unroll
        for (int j = 0; j < kFragmentsN; ++j)
          tc::mma_m16n8k16<T>(acc[i][j], frag_a[i], frag_b[j / 2][2 * (j % 2)],
                              frag_b[j / 2][2 * (j % 2) + 1]);
    }
    read_stage = read_stage + 1 == p.stages ? 0 : read_stage + 1;
    write_stage = write_stage + 1 == p.stages ? 0 : write_stage + 1;
  }

  // Accumulator (i, j) holds C rows g and g + 8 of m16 tile i, columns 2t, 2t + 1 of n8 tile j.
  const int g = lane >> 2;
  const int t = lane & 3;
#pragma unroll
  for (int i = 0; i < kFragmentsM; ++i) {
    const long long row = static_cast<long long>(block_m) + warp_m0 + 16 * i + g;
#pragma unroll
    for (int j = 0; j < kFragmentsN; ++j) {
      const long long col = static_cast<long long>(block_n) + warp_n0 + 8 * j + 2 * t;
      store_pair<T>(p, row, col, acc[i][j][0], acc[i][j][1]);
      store_pair<T>(p, row + 8, col, acc[i][j][2], acc[i][j][3]);
    }
  }
#else
  (void)p;
#endif
}

// Largest ring that fits the device's opt-in shared memory: 4 stages (192 KiB) on sm_90/sm_100,
// 3 (144 KiB) on sm_80/sm_87, 2 (96 KiB) on the 99 KiB parts (sm_86, sm_89, sm_120).
int stages_for_current_device(int* device) {
  check(cudaGetDevice(device), "cudaGetDevice");
  int optin = 0;
  check(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, *device),
        "cudaDeviceGetAttribute(MaxSharedMemoryPerBlockOptin)");
  const int stages = std::min(kMaxStages, optin / kStageBytes);
  if (stages < kMinStages)
    throw std::runtime_error("tc-mma-sync-multistage needs " +
                             std::to_string(kMinStages * kStageBytes) +
                             " bytes of shared memory per block; the device allows " +
                             std::to_string(optin));
  return stages;
}

long long tile_count(int64_t extent, int tile) {
  return ceil_div(static_cast<long long>(extent), static_cast<long long>(tile));
}

template <typename T, bool kAKMajor, bool kBKMajor>
void launch_typed(const GemmArgs& args, cudaStream_t stream) {
  auto* kernel = tc_mma_sync_multistage_kernel<T, kAKMajor, kBKMajor>;
  int device = 0;
  const int stages = stages_for_current_device(&device);
  const int smem_bytes = stages * kStageBytes;
  // The opt-in above 48 KiB is a per-device attribute of the kernel: set it once per device.
  static std::atomic<uint64_t> configured_devices{0};
  const uint64_t bit = device < 64 ? uint64_t{1} << device : 0;
  if (!(configured_devices.load() & bit)) {
    check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_bytes),
          "cudaFuncSetAttribute(tc_mma_sync_multistage_kernel, MaxDynamicSharedMemorySize)");
    configured_devices.fetch_or(bit);
  }

  Params p;
  p.a = args.a;
  p.b = args.b;
  p.c = args.c;
  p.lda = args.lda;
  p.ldb = args.ldb;
  p.ldc = args.ldc;
  p.m = static_cast<int>(args.m);
  p.n = static_cast<int>(args.n);
  p.k = static_cast<int>(args.k);
  p.tiles_m = static_cast<int>(tile_count(args.m, kBlockM));
  p.tiles_n = static_cast<int>(tile_count(args.n, kBlockN));
  p.stages = stages;
  p.alpha = args.alpha;
  p.beta = args.beta;
  const unsigned blocks = static_cast<unsigned>(p.tiles_m) * static_cast<unsigned>(p.tiles_n);
  kernel<<<blocks, kThreads, smem_bytes, stream>>>(p);
  check_launch("tc_mma_sync_multistage_kernel");
}

template <typename T>
void launch_layout(const GemmArgs& args, cudaStream_t stream) {
  // A is K-major unless transposed; B is K-major only when transposed.
  if (!args.trans_a && !args.trans_b) return launch_typed<T, true, false>(args, stream);
  if (!args.trans_a && args.trans_b) return launch_typed<T, true, true>(args, stream);
  if (args.trans_a && !args.trans_b) return launch_typed<T, false, false>(args, stream);
  return launch_typed<T, false, true>(args, stream);
}

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

}  // namespace

const char* support_tc_mma_sync_multistage(const GemmArgs& args, int cc) {
  if (args.dtype != DType::f16 && args.dtype != DType::bf16)
    return "tc-mma-sync-multistage runs float16 and bfloat16 only";
  if (cc < 80)
    return "tc-mma-sync-multistage needs compute capability >= 8.0 (bf16 mma.sync, cp.async)";
  if (!aligned16(args.a)) return "a must be 16-byte aligned (cp.async copies 16-byte chunks)";
  if (!aligned16(args.b)) return "b must be 16-byte aligned (cp.async copies 16-byte chunks)";
  if (!aligned16(args.c)) return "c must be 16-byte aligned";
  if (args.lda % 8 != 0) return "lda must be a multiple of 8 elements (16-byte aligned rows)";
  if (args.ldb % 8 != 0) return "ldb must be a multiple of 8 elements (16-byte aligned rows)";
  if (args.ldc % 8 != 0) return "ldc must be a multiple of 8 elements (16-byte aligned rows)";
  if (tile_count(args.m, kBlockM) * tile_count(args.n, kBlockN) > INT_MAX)
    return "m x n needs more than 2**31 - 1 tiles of 128 x 256";
  return nullptr;
}

void launch_tc_mma_sync_multistage(const GemmArgs& args, cudaStream_t stream) {
  if (args.dtype == DType::f16)
    launch_layout<__half>(args, stream);
  else
    launch_layout<__nv_bfloat16>(args, stream);
}

}  // namespace dlcb::cuda::gemm_variants_impl
