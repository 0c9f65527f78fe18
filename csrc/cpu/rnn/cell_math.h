#pragma once
// The element-wise part of each cell, one hidden unit over a run of up to nr batch columns at
// a time (all operands contiguous along the batch). The drivers call these right after the
// micro-kernel has produced the unit's recurrent pre-activations, while they are still in L1.
//
// The table of function pointers is filled once per ISA (cell_math_{avx512,avx2,portable}.cpp
// include cell_math_impl.h), so the loops vectorize for the CPU that runs them.
#include <cstdint>

#include "gemm/gemm.h"

namespace dlcb::rnn {

// Forward, one unit: pre_g = rec[g] + x[g] + bias[g] (GRU n gate: x + bias + r * (rec + bias_hn)).
struct FwdRow {
  const float* rec[4];  // W_hh h_{t-1} per gate (micro-kernel tile row)
  const float* x[4];    // W_ih x_t per gate (input projection row)
  float bias[4];        // b_ih + b_hh (GRU n gate: b_in only)
  float bias_hn;        // GRU: b_hn
  bool relu;            // vanilla: relu, else tanh
  const float* h_prev;  // GRU: h_{t-1}
  float* h_out;         // h_t
  const float* c_in;    // LSTM: c_{t-1}
  float* c_out;         // LSTM: c_t (may equal c_in)
  float* save[4];       // activated gates (training) or nullptr
  float* save_hn;       // GRU: W_hn h + b_hn (training) or nullptr
};

// Backward, one unit: from dh (the total gradient reaching h_t) to pre-activation gradients.
struct BwdRow {
  const float* dh;       // dL/dh_t
  const float* gate[4];  // saved activated gates (LSTM, GRU)
  const float* h;        // vanilla: h_t; GRU: h_{t-1}
  const float* hn;       // GRU: W_hn h + b_hn
  const float* c;        // LSTM: c_t
  const float* c_prev;   // LSTM: c_{t-1}
  float* dc;             // LSTM: in dL/dc_t from step t+1, out dL/dc_{t-1} (its direct part)
  float* dh_carry;       // GRU: out z * dh, the direct part of dL/dh_{t-1}
  bool relu;
  float* dg[4];          // out: gradients of the recurrent pre-activations (rows of W_hh h + b_hh)
  float* dg_in_n;        // GRU: gradient of the n gate's input pre-activation (W_in x + b_in)
};

struct CellMath {
  const char* isa;
  void (*fwd_vanilla)(const FwdRow& r, int64_t n);
  void (*fwd_lstm)(const FwdRow& r, int64_t n);
  void (*fwd_gru)(const FwdRow& r, int64_t n);
  void (*bwd_vanilla)(const BwdRow& r, int64_t n);
  void (*bwd_lstm)(const BwdRow& r, int64_t n);
  void (*bwd_gru)(const BwdRow& r, int64_t n);
};

const CellMath* cell_math_avx512();  // nullptr when not compiled for this target
const CellMath* cell_math_avx2();    // nullptr when not compiled for this target
const CellMath& cell_math_portable();

// The table compiled for the same ISA as the kernel set (the CPU check already happened there).
const CellMath& cell_math_for(const gemm::KernelSet& ks);

}  // namespace dlcb::rnn
