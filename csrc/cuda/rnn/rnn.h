#pragma once
// RNN layers on the GPU, forward over a whole sequence. Plain C++ (no CUDA headers).
//
// PyTorch's conventions (torch.nn.RNN/LSTM/GRU, one layer, one direction, batch_first=False):
//   x  T x N x I,  h0/c0 N x H,  y T x N x H,  h_n/c_n N x H
//   w_ih G*H x I,  w_hh G*H x H,  b_ih/b_hh G*H; G = 1 (vanilla), 4 (LSTM: i,f,g,o), 3 (GRU: r,z,n)
//   GRU: n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (1 - z) * n + z * h.
// All tensors dense and of `dtype`; gate math and the carried state are fp32 inside the
// kernels, rounded to `dtype` only when stored. c0/c_n are used by LSTM only (null otherwise).
// Scratch space: rnn_workspace_bytes(variant, args) bytes in `workspace`.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/dtype.h"

namespace dlcb::cuda {

enum class RnnCell : int { vanilla_relu = 0, vanilla_tanh = 1, lstm = 2, gru = 3 };

inline int rnn_gates(RnnCell c) { return c == RnnCell::lstm ? 4 : c == RnnCell::gru ? 3 : 1; }

struct RnnArgs {
  RnnCell cell = RnnCell::lstm;
  DType dtype = DType::f32;
  int timesteps = 0, batch = 0, input_size = 0, hidden = 0;
  const void* x = nullptr;
  const void* h0 = nullptr;
  const void* c0 = nullptr;
  const void* w_ih = nullptr;
  const void* w_hh = nullptr;
  const void* b_ih = nullptr;
  const void* b_hh = nullptr;
  void* y = nullptr;
  void* h_n = nullptr;
  void* c_n = nullptr;
  void* workspace = nullptr;
};

struct RnnVariantInfo {
  std::string name;
  DType dtype;
  std::string technique;  // one line
  int min_cc = 0;
};

std::vector<RnnVariantInfo> rnn_variants();

// "" when `variant` can run `args` on device `device` (it may look at SM count and shared memory).
std::string rnn_unsupported_reason(const std::string& variant, const RnnArgs& args, int device);

std::size_t rnn_workspace_bytes(const std::string& variant, const RnnArgs& args);

// Queues the whole sequence on `stream` of `device`; throws std::invalid_argument for
// unsupported arguments, std::runtime_error for a CUDA error.
void rnn_forward(const std::string& variant, const RnnArgs& args, int device,
                 std::uintptr_t stream);

}  // namespace dlcb::cuda
