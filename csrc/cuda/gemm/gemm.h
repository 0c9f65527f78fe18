#pragma once
// GEMM on the GPU, row-major: C (m x n) = alpha * op(A) (m x k) @ op(B) (k x n) + beta * C.
// Plain C++ (no CUDA headers), so the Python binding is compiled by the host compiler alone.
//
// Storage: A is m x k with row stride lda (>= k), or k x m (lda >= m) when trans_a; B is k x n
// (ldb >= n), or n x k (ldb >= k) when trans_b; C is m x n (ldc >= n). A, B and C all have
// `dtype`; fp16/bf16 variants accumulate in fp32 and round once when storing C. Pointers are
// device pointers of `device`; the kernel is queued on `stream` (a cudaStream_t as an integer,
// 0 = the legacy default stream) and the call returns without waiting for it.
//
// Each variant is one technique (see variants.h). gemm_unsupported_reason names why a variant
// cannot run given arguments on a device of compute capability major.minor ("" when it can);
// gemm() throws std::invalid_argument with that reason instead of launching.
#include <cstdint>
#include <string>
#include <vector>

#include "common/dtype.h"

namespace dlcb::cuda {

struct GemmArgs {
  int64_t m = 0, n = 0, k = 0;
  DType dtype = DType::f32;
  const void* a = nullptr;
  int64_t lda = 0;
  bool trans_a = false;
  const void* b = nullptr;
  int64_t ldb = 0;
  bool trans_b = false;
  void* c = nullptr;
  int64_t ldc = 0;
  float alpha = 1.0f;
  float beta = 0.0f;
};

struct GemmVariantInfo {
  std::string name;         // e.g. "sgemm-warp-tiled-double-buffered"
  DType dtype;
  std::string technique;    // one line: what the variant does
  int min_cc = 0;           // lowest compute capability, 10 * major + minor (80 = sm_80)
  int exact_cc = 0;         // when not 0, the only compute capability it runs on (90 for sm_90a)
};

std::vector<GemmVariantInfo> gemm_variants();

// "" when `variant` can run `args` on a device of compute capability cc (10 * major + minor).
std::string gemm_unsupported_reason(const std::string& variant, const GemmArgs& args, int cc);

// Queues the GEMM; throws std::invalid_argument for an unknown variant or unsupported
// arguments, std::runtime_error for a CUDA error.
void gemm(const std::string& variant, const GemmArgs& args, int device, std::uintptr_t stream);

}  // namespace dlcb::cuda
