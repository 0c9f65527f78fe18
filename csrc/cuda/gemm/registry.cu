// The GEMM variants by name (see gemm.h): argument checks common to all of them, then each
// variant's own support check, then its launch on the requested device and stream.
#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>

#include "common/check.cuh"
#include "common/device_guard.cuh"
#include "common/variant_table.cuh"
#include "gemm/gemm.h"
#include "gemm/variants.h"

namespace dlcb::cuda {

namespace {

using namespace gemm_variants_impl;

struct Entry {
  GemmVariantInfo info;
  const char* (*support)(const GemmArgs&, int);
  void (*launch)(const GemmArgs&, cudaStream_t);
};

const std::vector<Entry>& entries() {
  static const std::vector<Entry> table = {
      {{"sgemm-naive", DType::f32, "one thread per element of C, operands from global memory", 0, 0},
       support_sgemm_naive, launch_sgemm_naive},
      {{"sgemm-smem-tiled", DType::f32, "square tiles of A and B staged in shared memory", 0, 0},
       support_sgemm_smem_tiled, launch_sgemm_smem_tiled},
      {{"sgemm-register-blocked", DType::f32,
        "each thread accumulates a 2-D block of C in registers", 0, 0},
       support_sgemm_register_blocked, launch_sgemm_register_blocked},
      {{"sgemm-vectorized", DType::f32,
        "register blocking with 16-byte loads and a transposed A tile in shared memory", 0, 0},
       support_sgemm_vectorized, launch_sgemm_vectorized},
      {{"sgemm-warp-tiled-double-buffered", DType::f32,
        "warp tiles over thread tiles, vectorized loads, two shared-memory stages", 0, 0},
       support_sgemm_warp_tiled_double_buffered, launch_sgemm_warp_tiled_double_buffered},
      {{"tc-mma-sync-multistage", DType::f16,
        "tensor cores: mma.sync m16n8k16 fed by ldmatrix, cp.async multi-stage pipeline", 80, 0},
       support_tc_mma_sync_multistage, launch_tc_mma_sync_multistage},
      {{"tc-mma-sync-multistage", DType::bf16,
        "tensor cores: mma.sync m16n8k16 fed by ldmatrix, cp.async multi-stage pipeline", 80, 0},
       support_tc_mma_sync_multistage, launch_tc_mma_sync_multistage},
      {{"tc-wgmma-tma", DType::f16,
        "Hopper tensor cores: wgmma from shared memory fed by TMA, producer/consumer warpgroups",
        90, 90},
       support_tc_wgmma_tma, launch_tc_wgmma_tma},
      {{"tc-wgmma-tma", DType::bf16,
        "Hopper tensor cores: wgmma from shared memory fed by TMA, producer/consumer warpgroups",
        90, 90},
       support_tc_wgmma_tma, launch_tc_wgmma_tma},
  };
  return table;
}

std::string common_reason(const GemmArgs& a) {
  if (a.m < 1 || a.n < 1 || a.k < 1) return "m, n and k must all be >= 1";
  if (!a.a || !a.b || !a.c) return "a, b and c must be non-null device pointers";
  const int64_t a_cols = a.trans_a ? a.m : a.k;
  const int64_t b_cols = a.trans_b ? a.k : a.n;
  if (a.lda < a_cols) return "lda is smaller than a row of A";
  if (a.ldb < b_cols) return "ldb is smaller than a row of B";
  if (a.ldc < a.n) return "ldc is smaller than a row of C";
  // The kernels index with 32-bit grid coordinates and 64-bit offsets.
  if (a.m > (int64_t{1} << 31) - 1 || a.n > (int64_t{1} << 31) - 1 || a.k > (int64_t{1} << 31) - 1)
    return "m, n and k must be below 2**31";
  return "";
}

const Entry* find(const std::string& name, DType dtype, std::string* reason) {
  return find_variant(entries(), name, dtype, "GEMM", reason);
}

}  // namespace

std::vector<GemmVariantInfo> gemm_variants() {
  std::vector<GemmVariantInfo> out;
  for (const Entry& e : entries()) out.push_back(e.info);
  return out;
}

std::string gemm_unsupported_reason(const std::string& variant, const GemmArgs& args, int cc) {
  std::string reason;
  const Entry* e = find(variant, args.dtype, &reason);
  if (!e) return reason;
  if (e->info.exact_cc && cc != e->info.exact_cc)
    return variant + " runs only on compute capability " + std::to_string(e->info.exact_cc / 10) +
           "." + std::to_string(e->info.exact_cc % 10) + " (built for sm_" +
           std::to_string(e->info.exact_cc) + "a)";
  if (cc < e->info.min_cc)
    return variant + " needs compute capability >= " + std::to_string(e->info.min_cc / 10) + "." +
           std::to_string(e->info.min_cc % 10);
  reason = common_reason(args);
  if (!reason.empty()) return reason;
  const char* own = e->support(args, cc);
  return own ? own : "";
}

void gemm(const std::string& variant, const GemmArgs& args, int device, std::uintptr_t stream) {
  DeviceGuard guard(device);
  const std::string reason = gemm_unsupported_reason(variant, args, compute_capability(device));
  if (!reason.empty()) throw std::invalid_argument(reason);
  std::string unused;
  find(variant, args.dtype, &unused)->launch(args, reinterpret_cast<cudaStream_t>(stream));
}

}  // namespace dlcb::cuda
