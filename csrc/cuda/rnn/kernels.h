#pragma once
// Internals shared by the RNN techniques (see rnn.h for the API): the workspace layout, the
// launch functions of each technique file, and the support checks that need the device.
//
// Workspace (all fp32, each part 256-byte aligned):
//   gx       T*N x G*H   input projection of every step, biases folded in (input_projection.cu)
//   h        2 x N x H   the carried hidden state, ping-pong: step t reads h[t & 1], writes the other
//   c        N x H       LSTM cell state, updated in place by the thread that owns (n, j)
//   counter  1 uint32    persistent: the grid barrier's arrival count
#include <cuda_runtime_api.h>

#include <cstddef>
#include <string>

#include "rnn/rnn.h"

namespace dlcb::cuda::rnn_impl {

struct Workspace {
  float* gx;
  float* h;
  float* c;
  unsigned* counter;
};

inline std::size_t align256(std::size_t n) { return (n + 255) / 256 * 256; }

inline std::size_t workspace_bytes(const RnnArgs& a) {
  const std::size_t t = a.timesteps, n = a.batch, h = a.hidden, g = rnn_gates(a.cell);
  return align256(t * n * g * h * 4) + align256(2 * n * h * 4) +
         (a.cell == RnnCell::lstm ? align256(n * h * 4) : 0) + align256(4);
}

inline Workspace workspace_parts(const RnnArgs& a) {
  const std::size_t t = a.timesteps, n = a.batch, h = a.hidden, g = rnn_gates(a.cell);
  char* p = static_cast<char*>(a.workspace);
  Workspace w;
  w.gx = reinterpret_cast<float*>(p);
  p += align256(t * n * g * h * 4);
  w.h = reinterpret_cast<float*>(p);
  p += align256(2 * n * h * 4);
  w.c = nullptr;
  if (a.cell == RnnCell::lstm) {
    w.c = reinterpret_cast<float*>(p);
    p += align256(n * h * 4);
  }
  w.counter = reinterpret_cast<unsigned*>(p);
  return w;
}

// initial_state.cu: h0 (and c0 for LSTM) converted to fp32 into ws.h[0] (and ws.c).
void launch_initial_state(const RnnArgs& a, const Workspace& ws, cudaStream_t stream);

// input_projection.cu: ws.gx = x W_ih^T + b_ih (+ b_hh, except GRU's n gate).
void launch_input_projection(const RnnArgs& a, const Workspace& ws, cudaStream_t stream);

// fused_sequence.cu: one launch per step.
const char* support_fused_sequence(const RnnArgs& a);
void launch_fused_sequence(const RnnArgs& a, const Workspace& ws, cudaStream_t stream);

// fused_sequence_tc.cu: one launch per step on tensor cores (f16/bf16, sm_80+); the step's 16-bit
// operand h_{t-1} is h0 or y[t-1], so it needs no workspace beyond the layout above. Both look
// at the current device (shared memory per block, compute capability).
std::string support_fused_sequence_tc(const RnnArgs& a);
void launch_fused_sequence_tc(const RnnArgs& a, const Workspace& ws, cudaStream_t stream);

// persistent.cu: one cooperative launch. Both look at the current device (SMs, shared memory,
// occupancy), which must be the one that runs it.
std::string support_persistent(const RnnArgs& a);
void launch_persistent(const RnnArgs& a, const Workspace& ws, cudaStream_t stream);

}  // namespace dlcb::cuda::rnn_impl
