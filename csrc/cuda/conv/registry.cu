// The convolution variants by name (see conv.h): geometry checks common to all of them, then
// each variant's own support check, workspace size and launch on the requested device.
#include <cuda_runtime_api.h>

#include <climits>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/check.cuh"
#include "common/device_guard.cuh"
#include "common/variant_table.cuh"
#include "conv/conv.h"
#include "conv/variants.h"

namespace dlcb::cuda {

namespace {

using namespace conv_variants_impl;

struct Entry {
  ConvVariantInfo info;
  const char* (*support)(const ConvArgs&, int);
  std::size_t (*workspace)(const ConvArgs&);
  void (*launch)(const ConvArgs&, cudaStream_t);
};

const std::vector<Entry>& entries() {
  static const char* simt =
      "implicit GEMM on CUDA cores: gathered shared-memory tiles, 4x4 register blocks, fp32 "
      "accumulate; split-K over N*P*Q for the filter gradient";
  static const char* tc =
      "implicit GEMM on tensor cores (NHWC): mma.sync m16n8k16 fed by ldmatrix, cp.async "
      "multi-stage pipeline zero-filling padding taps; split-K filter gradient";
  static const char* wgmma =
      "implicit GEMM on Hopper tensor cores (NHWC forward): wgmma m64nNk16 from 128-byte-swizzled "
      "shared memory, a cp.async producer warpgroup and an mbarrier ring";
  static const std::vector<Entry> table = {
      {{"implicit-gemm-simt", DType::f32, simt, 0}, support_implicit_gemm_simt,
       workspace_implicit_gemm_simt, launch_implicit_gemm_simt},
      {{"implicit-gemm-simt", DType::f16, simt, 0}, support_implicit_gemm_simt,
       workspace_implicit_gemm_simt, launch_implicit_gemm_simt},
      {{"implicit-gemm-simt", DType::bf16, simt, 0}, support_implicit_gemm_simt,
       workspace_implicit_gemm_simt, launch_implicit_gemm_simt},
      {{"implicit-gemm-tc", DType::f16, tc, 80}, support_implicit_gemm_tc,
       workspace_implicit_gemm_tc, launch_implicit_gemm_tc},
      {{"implicit-gemm-tc", DType::bf16, tc, 80}, support_implicit_gemm_tc,
       workspace_implicit_gemm_tc, launch_implicit_gemm_tc},
      {{"implicit-gemm-wgmma", DType::f16, wgmma, 90}, support_implicit_gemm_wgmma,
       workspace_implicit_gemm_wgmma, launch_implicit_gemm_wgmma},
      {{"implicit-gemm-wgmma", DType::bf16, wgmma, 90}, support_implicit_gemm_wgmma,
       workspace_implicit_gemm_wgmma, launch_implicit_gemm_wgmma},
  };
  return table;
}

int64_t output_size(int64_t in, int64_t pad, int64_t dil, int64_t taps, int64_t stride) {
  if (in < 1 || pad < 0 || dil < 1 || taps < 1 || stride < 1) return 0;
  const int64_t span = in + 2 * pad - dil * (taps - 1) - 1;
  if (span < 0) return 0;
  const int64_t out = span / stride + 1;
  return out > INT_MAX ? 0 : out;
}

// Every kernel indexes with 32-bit ints: each tensor (and each GEMM dimension) must have fewer
// than 2**31 elements.
bool fits_int(int64_t a, int64_t b, int64_t c, int64_t d) {
  const int64_t lim = INT_MAX;
  if (a > lim || b > lim || c > lim || d > lim) return false;
  if (a * b > lim) return false;
  if (a * b * c > lim) return false;
  return a * b * c * d <= lim;
}

std::string common_reason(const ConvArgs& a) {
  if (a.n < 1 || a.c < 1 || a.h < 1 || a.w < 1 || a.k < 1 || a.r < 1 || a.s < 1)
    return "n, c, h, w, k, r and s must all be >= 1";
  if (a.pad_h < 0 || a.pad_w < 0) return "padding must be >= 0";
  if (a.stride_h < 1 || a.stride_w < 1) return "stride must be >= 1";
  if (a.dil_h < 1 || a.dil_w < 1) return "dilation must be >= 1";
  if (a.groups < 1) return "groups must be >= 1";
  if (a.c % a.groups != 0 || a.k % a.groups != 0) return "groups must divide both c and k";
  if (a.groups > 65535) return "groups must be <= 65535 (one grid row per group)";
  const int64_t p = output_size(a.h, a.pad_h, a.dil_h, a.r, a.stride_h);
  const int64_t q = output_size(a.w, a.pad_w, a.dil_w, a.s, a.stride_w);
  if (p < 1 || q < 1)
    return "output size P x Q would be empty: the dilated filter is larger than the padded input";
  if (a.layout != ConvLayout::nchw && a.layout != ConvLayout::nhwc) return "unknown layout";
  if (a.direction != ConvDirection::forward && a.direction != ConvDirection::backward_data &&
      a.direction != ConvDirection::backward_filter)
    return "unknown direction";
  if (!a.x || !a.filter || !a.y) return "x, filter (w) and y must be non-null device pointers";
  if (!fits_int(a.n, a.c, a.h, a.w) || !fits_int(a.k, a.c / a.groups, a.r, a.s) ||
      !fits_int(a.n, a.k, p, q) || !fits_int(a.c / a.groups, a.r, a.s, 1) ||
      !fits_int(a.k / a.groups, a.r, a.s, 1))
    return "every tensor must have fewer than 2**31 elements (32-bit indexing)";
  return "";
}

const Entry* find(const std::string& name, DType dtype, std::string* reason) {
  return find_variant(entries(), name, dtype, "convolution", reason);
}

}  // namespace

std::vector<ConvVariantInfo> conv_variants() {
  std::vector<ConvVariantInfo> out;
  for (const Entry& e : entries()) out.push_back(e.info);
  return out;
}

int conv_output_h(const ConvArgs& a) {
  return static_cast<int>(output_size(a.h, a.pad_h, a.dil_h, a.r, a.stride_h));
}

int conv_output_w(const ConvArgs& a) {
  return static_cast<int>(output_size(a.w, a.pad_w, a.dil_w, a.s, a.stride_w));
}

std::string conv_unsupported_reason(const std::string& variant, const ConvArgs& args, int cc) {
  std::string reason;
  const Entry* e = find(variant, args.dtype, &reason);
  if (!e) return reason;
  if (cc < e->info.min_cc)
    return variant + " needs compute capability >= " + std::to_string(e->info.min_cc / 10) + "." +
           std::to_string(e->info.min_cc % 10);
  reason = common_reason(args);
  if (!reason.empty()) return reason;
  const char* own = e->support(args, cc);
  return own ? own : "";
}

std::size_t conv_workspace_bytes(const std::string& variant, const ConvArgs& args) {
  std::string reason;
  const Entry* e = find(variant, args.dtype, &reason);
  if (!e) throw std::invalid_argument(reason);
  // The size depends only on the geometry (callers may ask before allocating tensors): the
  // pointer checks see a stand-in aligned address and no workspace. 0 for geometry the variant
  // cannot run.
  ConvArgs geometry = args;
  const auto stand_in = reinterpret_cast<const void*>(std::uintptr_t{256});
  if (!geometry.x) geometry.x = stand_in;
  if (!geometry.filter) geometry.filter = stand_in;
  if (!geometry.y) geometry.y = const_cast<void*>(stand_in);
  geometry.workspace = nullptr;
  if (!common_reason(geometry).empty() || e->support(geometry, INT_MAX)) return 0;
  return e->workspace(geometry);
}

void conv(const std::string& variant, const ConvArgs& args, int device, std::uintptr_t stream) {
  DeviceGuard guard(device);
  const std::string reason = conv_unsupported_reason(variant, args, compute_capability(device));
  if (!reason.empty()) throw std::invalid_argument(reason);
  std::string unused;
  const Entry* e = find(variant, args.dtype, &unused);
  if (e->workspace(args) > 0 && !args.workspace)
    throw std::invalid_argument(variant + " needs a workspace of conv_workspace_bytes() bytes");
  e->launch(args, reinterpret_cast<cudaStream_t>(stream));
}

}  // namespace dlcb::cuda
