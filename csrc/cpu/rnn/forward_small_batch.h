#pragma once
// The recurrent steps of the forward pass at batch 1 to 4 (forward_small_batch.cpp).
#include <cstdint>

#include "rnn/cell_math.h"
#include "rnn/rnn.h"

namespace dlcb::rnn {

// Batches up to this size take small_batch_steps (forward.cpp says why).
constexpr int64_t kSmallBatchMax = 4;

// Threads split the units in runs of this many; the most threads the steps can use for H units.
constexpr int64_t kSmallBatchUnitRun = 8;
inline int64_t small_batch_unit_runs(int64_t H) { return (H + kSmallBatchUnitRun - 1) / kSmallBatchUnitRun; }

// Floats of per-thread scratch small_batch_steps needs.
int64_t small_batch_scratch_floats(Cell cell);

// Runs the T recurrent steps on nt threads (scratch: nt x small_batch_scratch_floats). xproj is
// the input projection, unit-major (G*H, T*N); bias the per-row b_ih + b_hh (GRU n gate: b_in),
// bias_hn the GRU's b_hn; c the LSTM cell states (unit-major, one slot or T + 1 when training).
void small_batch_steps(const gemm::KernelSet& ks, const CellMath& cm, const Dims& d, const ForwardArgs& a,
                       const float* xproj, const float* bias, const float* bias_hn, float* c, bool training,
                       float* scratch, int nt);

}  // namespace dlcb::rnn
