// fp16/bf16 GEMM for Hopper (sm_90a): TMA copies A and B tiles into a ring of shared-memory
// stages, warpgroup MMAs (wgmma) read them from there, accumulators stay in registers.
//
// Warp specialization, 3 warpgroups a CTA, persistent over the output tiles:
//  - warpgroup 0, the producer, gives its registers up (setmaxnreg.dec); one thread walks the
//    CTA's tiles and their K blocks, waits until a stage is free ("empty" mbarrier), announces
//    the stage's bytes on its "full" mbarrier and issues the 2-D TMA loads of A and B into it.
//  - warpgroups 1 and 2, the consumers, take those registers (setmaxnreg.inc); each owns 64 rows
//    of the 128 x 256 block tile: it waits for a stage to be full, issues 4 wgmma m64n256k16
//    (K = 64 a stage), keeps one stage of wgmma in flight and frees the stage before it.
//    After a tile's last stage it writes C = alpha * acc + beta * C from registers.
// The producer runs ahead into the next tile while the consumers store, so loads overlap the
// epilogue. Tiles are visited in groups of kGroupM block rows, so that CTAs running at the same
// time share A and B blocks in L2.
//
// Layouts (row-major storage, gemm.h): A is K-major when not transposed (one TMA box of 128 rows
// x 64 K), M-major when trans_a (two boxes of 64 K-rows x 64 M); B is N-major when not
// transposed (four boxes of 64 K-rows x 64 N), K-major when trans_b (one box of 256 rows x 64 K).
// Every box row is 128 bytes with the TMA's 128-byte swizzle, which the wgmma descriptors name
// (hopper_wgmma.cuh). TMA fills out-of-bounds elements with zeros, so edge tiles need no
// special loads; the epilogue is predicated.
#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "common/check.cuh"
#include "common/launch.cuh"
#include "common/hopper_tma.cuh"
#include "common/hopper_wgmma.cuh"
#include "gemm/variants.h"

namespace dlcb::cuda::gemm_variants_impl {

namespace {

constexpr int kBlockM = 128;
constexpr int kBlockN = 256;
constexpr int kBlockK = 64;  // 64 16-bit elements = one 128-byte swizzled row
constexpr int kStages = 4;
constexpr int kConsumers = 2;  // warpgroups, 64 rows of the block tile each
constexpr int kThreads = 128 * (1 + kConsumers);

constexpr int kStageBytesA = kBlockM * kBlockK * 2;
constexpr int kStageBytesB = kBlockN * kBlockK * 2;
constexpr int kStageBytes = kStageBytesA + kStageBytesB;
// Swizzled tiles must start 1024-byte aligned; dynamic shared memory is only 16-byte aligned.
constexpr int kSmemBytes = kStages * kStageBytes + 1024;

int64_t output_tiles(const GemmArgs& args) {
  return ((args.m + kBlockM - 1) / kBlockM) * ((args.n + kBlockN - 1) / kBlockN);
}

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)

// Device-only tuning: the constants below are used by the sm_90a body alone.
constexpr int kGroupM = 16;  // block rows visited together (L2 reuse)
constexpr int kBoxBytes = 64 * 64 * 2;  // a 64 x 64 box: 64 rows of 128 bytes
constexpr int kProducerRegisters = 40;
constexpr int kConsumerRegisters = 232;  // 128 * 40 + 256 * 232 <= 65536

template <typename T>
__device__ __forceinline__ void store_pair(T* p, float x, float y) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>)
    *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(x, y);
  else
    *reinterpret_cast<__half2*>(p) = __floats2half2_rn(x, y);
}

template <typename T>
__device__ __forceinline__ float2 load_pair(const T* p) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>)
    return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
  else
    return __half22float2(*reinterpret_cast<const __half2*>(p));
}

__device__ __forceinline__ void tile_origin(int tile, int m_tiles, int n_tiles, int& m0, int& n0) {
  const int group = tile / (kGroupM * n_tiles);
  const int first_m = group * kGroupM;
  const int rows = min(m_tiles - first_m, kGroupM);
  const int in_group = tile - group * kGroupM * n_tiles;
  m0 = (first_m + in_group % rows) * kBlockM;
  n0 = (in_group / rows) * kBlockN;
}

#endif

// One CTA per SM (192 KB of stages); the register cap at entry (launch bounds with
// min blocks 1) is what lets setmaxnreg move registers between the warpgroups.
template <typename T, bool kTransA, bool kTransB>
__global__ void __launch_bounds__(kThreads, 1)
    wgmma_tma_gemm_kernel(const __grid_constant__ CUtensorMap map_a,
                          const __grid_constant__ CUtensorMap map_b, T* __restrict__ c,
                          int64_t ldc, int m, int n, int k, float alpha, float beta) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using namespace hopper;
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

  const int warpgroup = threadIdx.x / 128;
  if (threadIdx.x == 0) {
    prefetch_tensor_map(&map_a);
    prefetch_tensor_map(&map_b);
    for (int s = 0; s < kStages; ++s) {
      mbarrier_init(full(s), 1);                  // the producer's arrive.expect_tx
      mbarrier_init(empty(s), kConsumers * 4);    // lane 0 of every consumer warp
    }
    mbarrier_init_fence();
  }
  __syncthreads();

  // (x - 1) / b + 1 rounds up without overflowing for x up to 2**31 - 1 (m, n, k >= 1).
  const int m_tiles = (m - 1) / kBlockM + 1;
  const int n_tiles = (n - 1) / kBlockN + 1;
  const int tiles = m_tiles * n_tiles;  // < 2**30 (support check)
  const int k_blocks = (k - 1) / kBlockK + 1;

  if (warpgroup == 0) {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kProducerRegisters));
    if (threadIdx.x == 0) {
      int stage = 0;
      uint32_t phase = 0;
      for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
        int m0, n0;
        tile_origin(tile, m_tiles, n_tiles, m0, n0);
        for (int kb = 0; kb < k_blocks; ++kb) {
          const int k0 = kb * kBlockK;
          mbarrier_wait(empty(stage), phase ^ 1);
          mbarrier_arrive_expect_tx(full(stage), kStageBytes);
          // Tensor coordinates are (innermost, outer): (k, m) / (m, k) for A, (n, k) / (k, n) for B.
          if constexpr (kTransA) {
            for (int j = 0; j < kBlockM / 64; ++j)
              tma_load_2d(stage_a(stage) + j * kBoxBytes, &map_a, full(stage), m0 + 64 * j, k0);
          } else {
            tma_load_2d(stage_a(stage), &map_a, full(stage), k0, m0);
          }
          if constexpr (kTransB) {
            tma_load_2d(stage_b(stage), &map_b, full(stage), k0, n0);
          } else {
            for (int j = 0; j < kBlockN / 64; ++j)
              tma_load_2d(stage_b(stage) + j * kBoxBytes, &map_b, full(stage), n0 + 64 * j, k0);
          }
          if (++stage == kStages) {
            stage = 0;
            phase ^= 1;
          }
        }
      }
    }
  } else {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kConsumerRegisters));
    const int slab = warpgroup - 1;  // rows 64 * slab .. 64 * slab + 63 of the block tile
    const int warp = (threadIdx.x % 128) / 32;
    const int lane = threadIdx.x % 32;
    constexpr bool kBf16 = std::is_same_v<T, __nv_bfloat16>;
    // Stored A (m x k) is K-major, stored A^T (k x m) M-major; stored B (k x n) is N-major,
    // stored B^T (n x k) K-major.
    constexpr bool kMnMajorA = kTransA;
    constexpr bool kMnMajorB = !kTransB;
    // Byte offsets of the slab and of the k-th 16-deep slice (hopper_wgmma.cuh):
    // K-major tiles step 32 bytes along a swizzled row, M/N-major tiles step 16 rows of 128 B.
    const uint32_t a_slab = slab * kBoxBytes;  // 64 rows x 128 B, or the slab's own 64-wide box
    constexpr uint32_t kStepA = kMnMajorA ? 16 * 128 : 32;
    constexpr uint32_t kStepB = kMnMajorB ? 16 * 128 : 32;
    constexpr uint32_t kLboA = kMnMajorA ? kBoxBytes : 16;
    constexpr uint32_t kLboB = kMnMajorB ? kBoxBytes : 16;

    int stage = 0;
    uint32_t phase = 0;
    for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
      int m0, n0;
      tile_origin(tile, m_tiles, n_tiles, m0, n0);
      float acc[128];
      int previous = 0;
      for (int kb = 0; kb < k_blocks; ++kb) {
        mbarrier_wait(full(stage), phase);
        for (int i = 0; i < 128; ++i) fence_accumulator(acc[i]);
        wgmma_fence();
        for (int kk = 0; kk < kBlockK / 16; ++kk) {
          const uint64_t desc_a = smem_desc_sw128(stage_a(stage) + a_slab + kk * kStepA, kLboA, 1024);
          const uint64_t desc_b = smem_desc_sw128(stage_b(stage) + kk * kStepB, kLboB, 1024);
          wgmma_m64n256k16<kBf16, kMnMajorA, kMnMajorB>(acc, desc_a, desc_b, kb > 0 || kk > 0);
        }
        wgmma_commit_group();
        for (int i = 0; i < 128; ++i) fence_accumulator(acc[i]);
        // The stage before this one has been read once at most this stage's group is pending.
        wgmma_wait_group<1>();
        if (kb > 0 && lane == 0) mbarrier_arrive(empty(previous));
        previous = stage;
        if (++stage == kStages) {
          stage = 0;
          phase ^= 1;
        }
      }
      wgmma_wait_group<0>();
      for (int i = 0; i < 128; ++i) fence_accumulator(acc[i]);
      if (lane == 0) mbarrier_arrive(empty(previous));

      // acc[4j + 2h + e] is C[row0 + 8h][n0 + 8j + 2(lane % 4) + e] (wgmma D fragment).
      const int row0 = m0 + 64 * slab + 16 * warp + lane / 4;
      const bool read_c = beta != 0.0f;
#pragma unroll
      for (int j = 0; j < kBlockN / 8; ++j) {
        const int col = n0 + 8 * j + 2 * (lane % 4);
        if (col >= n) continue;
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int row = row0 + 8 * h;
          if (row >= m) continue;
          T* out = c + static_cast<int64_t>(row) * ldc + col;
          float x = alpha * acc[4 * j + 2 * h];
          float y = alpha * acc[4 * j + 2 * h + 1];
          if (col + 1 < n) {
            if (read_c) {
              const float2 old = load_pair(out);
              x = fmaf(beta, old.x, x);
              y = fmaf(beta, old.y, y);
            }
            store_pair(out, x, y);
          } else {
            if (read_c) x = fmaf(beta, static_cast<float>(*out), x);
            *out = static_cast<T>(x);
          }
        }
      }
    }
  }
#endif
}

// cuTensorMapEncodeTiled from the driver, found at run time: the module links no libcuda.
PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault,
                                         &found) != cudaSuccess ||
        found != cudaDriverEntryPointSuccess) {
      cudaGetLastError();
      p = nullptr;
    }
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(p);
  }();
  return fn;
}

// A row-major matrix of `rows` x `cols` (cols contiguous, rows `ld` elements apart), read in
// boxes of box_rows x box_cols with the 128-byte swizzle; out-of-bounds elements read as zero.
CUtensorMap tensor_map(const void* base, DType dtype, int64_t rows, int64_t cols, int64_t ld,
                       uint32_t box_rows, uint32_t box_cols) {
  CUtensorMap map;
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(cols), static_cast<cuuint64_t>(rows)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(ld) * 2};  // bytes, of the outer dim
  const cuuint32_t box[2] = {box_cols, box_rows};
  const cuuint32_t element_strides[2] = {1, 1};
  const CUresult r = tensor_map_encoder()(
      &map,
      dtype == DType::bf16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
      2, const_cast<void*>(base), dims, strides, box, element_strides,
      CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
      CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS)
    throw std::runtime_error("cuTensorMapEncodeTiled failed with CUresult " + std::to_string(r));
  return map;
}

template <typename T, bool kTransA, bool kTransB>
void launch_typed(const GemmArgs& args, cudaStream_t stream) {
  const auto kernel = wgmma_tma_gemm_kernel<T, kTransA, kTransB>;
  // Box shapes follow the operand layouts in the comment at the top of this file.
  const CUtensorMap map_a = kTransA ? tensor_map(args.a, args.dtype, args.k, args.m, args.lda, 64, 64)
                                    : tensor_map(args.a, args.dtype, args.m, args.k, args.lda, kBlockM, 64);
  const CUtensorMap map_b = kTransB ? tensor_map(args.b, args.dtype, args.n, args.k, args.ldb, kBlockN, 64)
                                    : tensor_map(args.b, args.dtype, args.k, args.n, args.ldb, 64, 64);
  int device = 0, sms = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device),
        "cudaDeviceGetAttribute(MultiProcessorCount)");
  check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes),
        "cudaFuncSetAttribute(wgmma_tma_gemm_kernel)");
  const int64_t tiles = output_tiles(args);
  const int grid = static_cast<int>(tiles < sms ? tiles : sms);
  kernel<<<grid, kThreads, kSmemBytes, stream>>>(
      map_a, map_b, static_cast<T*>(args.c), args.ldc, static_cast<int>(args.m),
      static_cast<int>(args.n), static_cast<int>(args.k), args.alpha, args.beta);
  check_launch("wgmma_tma_gemm_kernel");
}

template <typename T>
void launch_layout(const GemmArgs& args, cudaStream_t stream) {
  if (args.trans_a) {
    args.trans_b ? launch_typed<T, true, true>(args, stream) : launch_typed<T, true, false>(args, stream);
  } else {
    args.trans_b ? launch_typed<T, false, true>(args, stream) : launch_typed<T, false, false>(args, stream);
  }
}

bool aligned(const void* p, uintptr_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

}  // namespace

const char* support_tc_wgmma_tma(const GemmArgs& args, int cc) {
  if (args.dtype != DType::f16 && args.dtype != DType::bf16)
    return "tc-wgmma-tma runs float16 and bfloat16 only";
  if (cc != 90) return "tc-wgmma-tma needs compute capability 9.0 (sm_90a wgmma and setmaxnreg)";
  // TMA: 16-byte aligned base addresses, row strides a multiple of 16 bytes below 2**40 bytes.
  if (!aligned(args.a, 16) || !aligned(args.b, 16))
    return "tc-wgmma-tma needs A and B 16-byte aligned (TMA)";
  if (args.lda % 8 != 0 || args.ldb % 8 != 0)
    return "tc-wgmma-tma needs lda and ldb to be multiples of 8 elements (TMA: 16-byte row strides)";
  if (args.lda >= (int64_t{1} << 39) || args.ldb >= (int64_t{1} << 39))
    return "tc-wgmma-tma needs lda and ldb below 2**39 elements (TMA stride limit)";
  // The epilogue stores C two elements (4 bytes) at a time from even columns.
  if (!aligned(args.c, 4) || args.ldc % 2 != 0)
    return "tc-wgmma-tma needs C 4-byte aligned and ldc even";
  // Tile indices are ints and step by the grid size.
  if (output_tiles(args) >= (int64_t{1} << 30))
    return "tc-wgmma-tma needs fewer than 2**30 output tiles of 128 x 256";
  if (!tensor_map_encoder())
    return "tc-wgmma-tma needs cuTensorMapEncodeTiled from the CUDA driver (12.0 or newer)";
  // Only the sm_90a pass compiles the kernel body; a build without that target (or a device
  // running compute_90 PTX) would get an empty kernel, recognisable by its lack of the static
  // shared memory the body declares.
  cudaFuncAttributes attr{};
  if (cudaFuncGetAttributes(&attr, wgmma_tma_gemm_kernel<__nv_bfloat16, false, false>) != cudaSuccess) {
    cudaGetLastError();
    return "tc-wgmma-tma has no kernel image for this device (build with sm_90a)";
  }
  if (attr.sharedSizeBytes == 0)
    return "tc-wgmma-tma was built without sm_90a machine code (only an empty fallback image)";
  return nullptr;
}

void launch_tc_wgmma_tma(const GemmArgs& args, cudaStream_t stream) {
  if (args.dtype == DType::bf16)
    launch_layout<__nv_bfloat16>(args, stream);
  else
    launch_layout<__half>(args, stream);
}

}  // namespace dlcb::cuda::gemm_variants_impl
