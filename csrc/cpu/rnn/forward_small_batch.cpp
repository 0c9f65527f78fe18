// Forward recurrent steps at batch 1 to 4 (inference): the recurrent GEMM is (nearly) a GEMV, on which the
// micro-kernel would spend most of its vector lanes on batch padding and one broadcast load per
// W_hh element, and the cell math, called per unit on a few batch elements, would cost more
// than the arithmetic. Here, per block of units:
//   - h_{t-1} as y holds it (batch-major, H contiguous) against W_hh's rows in place, as dot
//     products (gemm/inner_product.h): full vector loads of W_hh, no packing;
//   - the input projection and the biases gathered into unit-contiguous vectors (biases folded
//     in, so the cell math's per-row bias is 0) and the cell math run across the units: its
//     element-wise loops do not care which axis they run along;
//   - h_t written straight into y, the cell state and saved gates copied to their unit-major
//     slots (stride N).
// Units are split between threads in contiguous runs; one barrier per step.
#include "rnn/forward_small_batch.h"

#include <omp.h>

#include <algorithm>

#include "rnn/buffer.h"

namespace dlcb::rnn {
namespace {

constexpr int64_t kUnitBlock = 64;  // units per cell-math call: the vectors below stay in L1

// Per-thread vectors of kUnitBlock floats: rec per gate and batch element, x and saved gates per
// gate, c in and out, GRU hn.
int64_t vectors(Cell cell) { return (kSmallBatchMax + 2) * gate_count(cell) + 3; }

}  // namespace

int64_t small_batch_scratch_floats(Cell cell) { return vectors(cell) * kUnitBlock; }

void small_batch_steps(const gemm::KernelSet& ks, const CellMath& cm, const Dims& d, const ForwardArgs& a,
                       const float* xproj, const float* bias, const float* bias_hn, float* c, bool training,
                       float* scratch, int nt) {
  const int64_t G = gate_count(d.cell), T = d.T, N = d.N, H = d.H, GH = G * H, TN = T * N;
  const bool lstm = d.cell == Cell::kLstm, gru = d.cell == Cell::kGru;
  const int64_t runs = small_batch_unit_runs(H);
#pragma omp parallel num_threads(nt)
  {
    const int tid = omp_get_thread_num();
    const int64_t u_begin = std::min(H, split_begin(runs, tid, nt) * kSmallBatchUnitRun);
    const int64_t u_end = std::min(H, split_begin(runs, tid + 1, nt) * kSmallBatchUnitRun);
    float* const v = scratch + tid * small_batch_scratch_floats(d.cell);
    float *rec = v, *x = v + kSmallBatchMax * G * kUnitBlock, *save = x + G * kUnitBlock;
    float *c_in = save + G * kUnitBlock, *c_out = c_in + kUnitBlock, *hn = c_out + kUnitBlock;
    for (int64_t t = 0; t < T; ++t) {
      const float* const c_t = lstm ? (training ? c + t * H * N : c) : nullptr;
      float* const c_next = lstm ? (training ? c + (t + 1) * H * N : c) : nullptr;
      for (int64_t u0 = u_begin; u0 < u_end; u0 += kUnitBlock) {
        const int64_t n = std::min(kUnitBlock, u_end - u0);
        // rec (per gate, N x n): each batch element's pre-activations run along the units. At
        // batch 2 to 4, h_{t-1} (N x H) times these units' rows of W_hh transposed: each W_hh
        // vector load serves several batch elements. At batch 1, W_hh's rows times h: blocks of 8 rows
        // share each h load (measured 10-25 % faster than 1 x 4 blocks).
        for (int64_t gi = 0; gi < G; ++gi) {
          const float* const w = a.w_hh + (gi * H + u0) * H;
          float* const rg = rec + gi * N * kUnitBlock;
          if (N == 1)
            ks.inner_product(n, 1, H, w, H, a.hs + t * H, H, rg, 1, 1.0f, 0.0f);
          else
            ks.inner_product(N, n, H, a.hs + t * N * H, H, w, H, rg, kUnitBlock, 1.0f, 0.0f);
        }
        if (gru)  // hn = W_hn h + b_hn: b_hn folded into the recurrent part, where r multiplies it
          for (int64_t j = 0; j < N; ++j)
            for (int64_t i = 0; i < n; ++i) rec[(2 * N + j) * kUnitBlock + i] += bias_hn[u0 + i];
        for (int64_t j = 0; j < N; ++j) {
          FwdRow r{};
          for (int64_t gi = 0; gi < G; ++gi) {
            float* const xg = x + gi * kUnitBlock;
            const float* const xs = xproj + (gi * H + u0) * TN + t * N + j;
            for (int64_t i = 0; i < n; ++i) xg[i] = xs[i * TN] + bias[gi * H + u0 + i];
            r.rec[gi] = rec + (gi * N + j) * kUnitBlock;
            r.x[gi] = xg;
            r.save[gi] = a.gates != nullptr ? save + gi * kUnitBlock : nullptr;
          }
          r.relu = d.relu;
          r.h_prev = a.hs + (t * N + j) * H + u0;
          r.h_out = a.hs + ((t + 1) * N + j) * H + u0;
          if (lstm) {
            for (int64_t i = 0; i < n; ++i) c_in[i] = c_t[(u0 + i) * N + j];
            r.c_in = c_in;
            r.c_out = c_out;
            cm.fwd_lstm(r, n);
            for (int64_t i = 0; i < n; ++i) c_next[(u0 + i) * N + j] = c_out[i];
          } else if (gru) {
            r.save_hn = a.hn != nullptr ? hn : nullptr;
            cm.fwd_gru(r, n);
            if (a.hn != nullptr)
              for (int64_t i = 0; i < n; ++i) a.hn[(t * H + u0 + i) * N + j] = hn[i];
          } else {
            cm.fwd_vanilla(r, n);
          }
          if (a.gates != nullptr)
            for (int64_t gi = 0; gi < G; ++gi)
              for (int64_t i = 0; i < n; ++i) a.gates[(t * GH + gi * H + u0 + i) * N + j] = save[gi * kUnitBlock + i];
        }
      }
      // h_t complete in every unit before anyone reads it.
#pragma omp barrier
    }
  }
}

}  // namespace dlcb::rnn
