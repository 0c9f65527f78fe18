// The RNN variants by name (see rnn.h): argument checks common to all of them, then each
// variant's own support check on the requested device, then the launches: initial state, input
// projection, and the variant's recurrence, all on the requested stream.
#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "common/check.cuh"
#include "common/device_guard.cuh"
#include "common/variant_table.cuh"
#include "rnn/kernels.h"
#include "rnn/rnn.h"

namespace dlcb::cuda {

namespace {

using namespace rnn_impl;

std::string support_fused(const RnnArgs& a) {
  const char* r = support_fused_sequence(a);
  return r ? r : "";
}

struct Entry {
  RnnVariantInfo info;
  std::string (*support)(const RnnArgs&);  // on the current device
  void (*launch)(const RnnArgs&, const Workspace&, cudaStream_t);
};

constexpr const char* kFusedTechnique =
    "one launch per step: recurrent GEMM of all gates of a block of units fused with the cell "
    "math";
constexpr const char* kFusedTcTechnique =
    "one launch per step: the recurrent GEMM of all gates of a block of units on tensor cores "
    "(mma.sync, cp.async pipeline) fused with the cell math; steps overlap by programmatic "
    "dependent launch on sm_90+";
constexpr const char* kPersistentTechnique =
    "one cooperative launch: W_hh slices resident in shared memory, grid barrier per step";

const std::vector<Entry>& entries() {
  static const std::vector<Entry> table = {
      {{"fused-sequence", DType::f32, kFusedTechnique, 80}, support_fused, launch_fused_sequence},
      {{"fused-sequence", DType::f16, kFusedTechnique, 80}, support_fused, launch_fused_sequence},
      {{"fused-sequence", DType::bf16, kFusedTechnique, 80}, support_fused, launch_fused_sequence},
      {{"persistent", DType::f32, kPersistentTechnique, 80}, support_persistent, launch_persistent},
      {{"persistent", DType::f16, kPersistentTechnique, 80}, support_persistent, launch_persistent},
      {{"persistent", DType::bf16, kPersistentTechnique, 80}, support_persistent,
       launch_persistent},
      {{"fused-sequence-tc", DType::f16, kFusedTcTechnique, 80}, support_fused_sequence_tc,
       launch_fused_sequence_tc},
      {{"fused-sequence-tc", DType::bf16, kFusedTcTechnique, 80}, support_fused_sequence_tc,
       launch_fused_sequence_tc},
  };
  return table;
}

const Entry* find(const std::string& name, DType dtype, std::string* reason) {
  return find_variant(entries(), name, dtype, "RNN", reason);
}

bool misaligned(const void* p, std::size_t bytes) {
  return reinterpret_cast<std::uintptr_t>(p) % bytes != 0;
}

std::string common_reason(const RnnArgs& a) {
  if (a.timesteps < 1 || a.batch < 1 || a.input_size < 1 || a.hidden < 1)
    return "timesteps, batch, input_size and hidden must all be >= 1";
  const bool lstm = a.cell == RnnCell::lstm;
  if (!a.x || !a.h0 || !a.w_ih || !a.w_hh || !a.b_ih || !a.b_hh || !a.y || !a.h_n)
    return "x, h0, w_ih, w_hh, b_ih, b_hh, y and h_n must be non-null device pointers";
  if (lstm && (!a.c0 || !a.c_n)) return "LSTM needs non-null c0 and c_n";
  if (!a.workspace) return "workspace must be a non-null device pointer (rnn_workspace_bytes)";
  const std::size_t e = dtype_size(a.dtype);
  for (const void* p : {a.x, a.h0, a.w_ih, a.w_hh, a.b_ih, a.b_hh,
                        static_cast<const void*>(a.y), static_cast<const void*>(a.h_n)})
    if (misaligned(p, e)) return std::string("pointers must be aligned to the ") +
                                 dtype_name(a.dtype) + " element size";
  if (lstm && (misaligned(a.c0, e) || misaligned(a.c_n, e)))
    return std::string("pointers must be aligned to the ") + dtype_name(a.dtype) +
           " element size";
  if (misaligned(a.workspace, 16)) return "workspace must be 16-byte aligned";
  // The kernels index rows and tiles with 32-bit integers (element offsets are 64-bit).
  const long long limit = (1LL << 31) - 1;
  const long long t = a.timesteps, n = a.batch, i = a.input_size, h = a.hidden;
  const long long g = rnn_gates(a.cell);
  if (t * n > limit / (i > g * h ? i : g * h))
    return "timesteps x batch x max(input_size, gates x hidden) must be < 2**31";
  if (g * h > limit / (i > h ? i : h)) return "gates x hidden x max(input_size, hidden) must be < 2**31";
  return "";
}

// Expects `device` to be current.
std::string reason_on_current(const Entry* e, const RnnArgs& a, int device) {
  if (compute_capability(device) < e->info.min_cc)
    return e->info.name + " needs compute capability >= " + std::to_string(e->info.min_cc / 10) +
           "." + std::to_string(e->info.min_cc % 10);
  std::string reason = common_reason(a);
  return reason.empty() ? e->support(a) : reason;
}

}  // namespace

std::vector<RnnVariantInfo> rnn_variants() {
  std::vector<RnnVariantInfo> out;
  for (const Entry& e : entries()) out.push_back(e.info);
  return out;
}

std::string rnn_unsupported_reason(const std::string& variant, const RnnArgs& args, int device) {
  std::string reason;
  const Entry* e = find(variant, args.dtype, &reason);
  if (!e) return reason;
  DeviceGuard guard(device);
  return reason_on_current(e, args, device);
}

std::size_t rnn_workspace_bytes(const std::string& variant, const RnnArgs& args) {
  std::string reason;
  if (!find(variant, args.dtype, &reason)) throw std::invalid_argument(reason);
  if (args.timesteps < 1 || args.batch < 1 || args.hidden < 1)
    throw std::invalid_argument("timesteps, batch and hidden must all be >= 1");
  return workspace_bytes(args);
}

void rnn_forward(const std::string& variant, const RnnArgs& args, int device,
                 std::uintptr_t stream) {
  std::string reason;
  const Entry* e = find(variant, args.dtype, &reason);
  if (!e) throw std::invalid_argument(reason);
  DeviceGuard guard(device);
  reason = reason_on_current(e, args, device);
  if (!reason.empty()) throw std::invalid_argument(reason);
  const cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
  const Workspace ws = workspace_parts(args);
  launch_initial_state(args, ws, s);
  launch_input_projection(args, ws, s);
  e->launch(args, ws, s);
}

}  // namespace dlcb::cuda
