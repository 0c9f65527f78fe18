#pragma once
// Single-layer, unidirectional recurrent layers (vanilla RNN, LSTM, GRU) on the CPU.
//
// Conventions (the same as torch.nn.RNN / LSTM / GRU, so weights can be exchanged):
//   x (T, N, I) time-major, h0 and c0 (N, H), hidden states hs (T + 1, N, H) with hs[0] = h0
//   (the layer's output y is hs[1:]), weight_ih (G*H, I), weight_hh (G*H, H), biases (G*H),
//   G = 1 (vanilla), 4 (LSTM, gates i, f, g, o), 3 (GRU, gates r, z, n).
//   vanilla: h' = act(W_ih x + b_ih + W_hh h + b_hh), act = relu or tanh
//   LSTM:    c' = f * c + i * g, h' = o * tanh(c')  (i, f, o sigmoid, g tanh, no peepholes)
//   GRU:     n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (1 - z) * n + z * h
//
// Internal ("unit-major") layouts, chosen so the element-wise cell math reads the batch
// contiguously: saved gates (T, G*H, N), LSTM cell states cs (T + 1, H, N), GRU hn (T, H, N).
// All sizes are int64_t; every buffer is allocated before a parallel region, and no exception
// leaves one.
#include <cstdint>

#include "gemm/gemm.h"

namespace dlcb::rnn {

enum class Cell : int { kVanilla = 0, kLstm = 1, kGru = 2 };

inline int64_t gate_count(Cell c) { return c == Cell::kLstm ? 4 : c == Cell::kGru ? 3 : 1; }

struct Dims {
  Cell cell;
  bool relu;  // vanilla only: relu (DeepBench) or tanh
  int64_t T, N, I, H;
};

// Packed recurrent weights (recurrent_pack.cpp). Forward: W_hh's rows as micro-kernel A panels
// (H deep), the G gates of the same mr units side by side. Backward: W_hh^T's rows (one per
// unit) as A panels G*H deep.
int64_t packed_forward_floats(const gemm::KernelSet& ks, Cell cell, int64_t H);
int64_t packed_backward_floats(const gemm::KernelSet& ks, Cell cell, int64_t H);
void pack_forward(const gemm::KernelSet& ks, Cell cell, int64_t H, const float* w_hh, float* dst, int threads);
void pack_backward(const gemm::KernelSet& ks, Cell cell, int64_t H, const float* w_hh, float* dst, int threads);

struct ForwardArgs {
  const float* x;       // (T, N, I)
  const float* h0;      // (N, H)
  const float* c0;      // (N, H), LSTM; nullptr = zeros
  const float* w_ih;    // (G*H, I)
  const float* w_hh;    // (G*H, H)
  const float* b_ih;    // (G*H)
  const float* b_hh;    // (G*H)
  const float* packed;  // pack_forward's panels for this kernel set, or nullptr (packed here)
  float* hs;            // out (T + 1, N, H)
  float* c_n;           // out (N, H), LSTM
  // Training only (nullptr otherwise): what backward needs.
  float* gates;  // (T, G*H, N) activated gates, LSTM and GRU
  float* cs;     // (T + 1, H, N) LSTM cell states, cs[0] = c0
  float* hn;     // (T, H, N) GRU: W_hn h + b_hn
};

// Returns the number of threads the recurrent loop ran on.
int forward(const gemm::KernelSet& ks, const Dims& d, const ForwardArgs& a, int threads);

struct BackwardArgs {
  const float* x;       // (T, N, I)
  const float* w_ih;    // (G*H, I)
  const float* w_hh;    // (G*H, H)
  const float* packed;  // pack_backward's panels, or nullptr
  const float* hs;      // (T + 1, N, H) from forward
  const float* gates;   // (T, G*H, N) from forward (LSTM, GRU)
  const float* cs;      // (T + 1, H, N) (LSTM)
  const float* hn;      // (T, H, N) (GRU)
  const float* dy;      // (T, N, H) gradient w.r.t. every output h_t
  const float* dh_n;    // (N, H) or nullptr
  const float* dc_n;    // (N, H) or nullptr (LSTM)
  float* dw_ih;         // out (G*H, I)
  float* dw_hh;         // out (G*H, H)
  float* db_ih;         // out (G*H)
  float* db_hh;         // out (G*H)
  float* dh0;           // out (N, H)
  float* dc0;           // out (N, H), LSTM
  float* dx;            // out (T, N, I) or nullptr (input gradient not wanted)
};

int backward(const gemm::KernelSet& ks, const Dims& d, const BackwardArgs& a, int threads);

}  // namespace dlcb::rnn
