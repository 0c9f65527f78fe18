// Forward pass over T timesteps.
//
// 1. The input projection of all timesteps at once, one large GEMM that runs near peak:
//      xproj^T (G*H x T*N) = W_ih (G*H x I) * X^T (I x T*N)
//    stored unit-major so that the cell math reads a unit's batch contiguously.
// 2. Per step, the recurrent GEMM fused with the cell math (at batch 1 to 4: see
//    forward_small_batch.cpp). h_{t-1} lives in the micro-kernel's
//    B-panel layout (nr batch columns per panel, H deep), double-buffered. The work items are
//    (group of mr hidden units, batch panel) pairs; each thread owns a contiguous run of them
//    (whole unit groups, except that with several batch panels a group may be shared at the ends
//    of a run, which balances the threads when the groups are few). For an item it runs the
//    micro-kernel for the G gate panels of the group (recurrent_pack.cpp) into a small per-thread
//    tile (beta = 0: the recurrent part stays separate, which the GRU's r * (W_hn h + b_hn)
//    needs), then at once applies the cell math to that tile while it is in L1 and writes h_t
//    straight into the next step's B panels (and into y). A (unit, batch) element's cell state
//    never leaves its thread, so one barrier per step is all the synchronization there is.
#include <omp.h>

#include <algorithm>
#include <cstring>

#include "rnn/buffer.h"
#include "rnn/cell_math.h"
#include "rnn/forward_small_batch.h"
#include "rnn/rnn.h"

namespace dlcb::rnn {

int forward(const gemm::KernelSet& ks, const Dims& d, const ForwardArgs& a, int threads) {
  const int64_t G = gate_count(d.cell), T = d.T, N = d.N, I = d.I, H = d.H;
  const int64_t GH = G * H, TN = T * N, MR = ks.mr, NR = ks.nr;
  const int64_t groups = ceil_div(H, MR), panels = ceil_div(N, NR), ldt = panels * NR;
  const int64_t hpack_floats = panels * H * NR;
  const bool training = a.gates != nullptr || a.cs != nullptr || a.hn != nullptr;
  const CellMath& cm = cell_math_for(ks);
  threads = std::max(1, threads);
  // Batch 1 to 4 (inference): the steps of forward_small_batch.cpp. Measured on Zen 4, 1 thread,
  // against the micro-kernel steps: LSTM T=25 h=512 batch 1 3.3x, batch 2 2.2x, batch 4 1.2x
  // faster, h=1024 batch 1 2.6x, batch 4 1.3x; LSTM h=256 T=150 batch 1 3x, batch 4 1.5x; GRU
  // h=2816 batch 1 2x (AVX2; AVX-512 alike). At batch 8 the micro-kernel's lanes are full enough.
  const bool small_batch = N <= kSmallBatchMax;

  // Everything is allocated here, before the parallel region.
  Scratch xproj_buf(kXproj, GH * TN);
  float* const xproj = xproj_buf.get();
  // W_hh packed here unless prepared (scratch: a call with a plain dict then costs the packing
  // itself, not a fresh multi-MB allocation and its page faults).
  Scratch packed_own(kPacked, a.packed == nullptr && !small_batch ? packed_forward_floats(ks, d.cell, H) : 0);
  Scratch hpack_buf(kHpack, small_batch ? 0 : 2 * hpack_floats, /*zero=*/true);  // batch padding stays 0
  float* const hpack = hpack_buf.get();
  // Work items: (unit group, batch panel) pairs, split in contiguous runs so a thread owns whole
  // unit groups except at most one at each end of its run (balance when groups are few).
  const int64_t items = small_batch ? small_batch_unit_runs(H) : groups * panels;
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, items)));
  Scratch tiles_buf(kTiles, nt * (small_batch ? small_batch_scratch_floats(d.cell) : G * MR * ldt));
  float* const tiles = tiles_buf.get();
  const bool lstm = d.cell == Cell::kLstm;
  Buffer c_own(lstm && a.cs == nullptr ? H * N : 0);

  // 1. Input projection for all timesteps.
  gemm::SgemmArgs g{};
  g.m = GH;
  g.n = TN;
  g.k = I;
  g.a = {a.w_ih, I, 1};
  g.b = {a.x, 1, I};  // X^T
  g.c = xproj;
  g.ldc = TN;
  g.alpha = 1.0f;
  g.beta = 0.0f;
  gemm::sgemm(ks, g, threads);

  const float* packed = a.packed;
  if (packed == nullptr && !small_batch) {
    pack_forward(ks, d.cell, H, a.w_hh, packed_own.get(), threads);
    packed = packed_own.get();
  }

  // h0 into hs[0] and into the B panels of step 0; c0 transposed into the unit-major state.
  std::memcpy(a.hs, a.h0, static_cast<size_t>(N * H) * sizeof(float));
  for (int64_t j = 0; j < N && !small_batch; ++j) {
    float* const dst = hpack + (j / NR) * H * NR + j % NR;
    for (int64_t p = 0; p < H; ++p) dst[p * NR] = a.h0[j * H + p];
  }
  float* const c_base = a.cs != nullptr ? a.cs : c_own.get();
  if (lstm)
    for (int64_t p = 0; p < H; ++p)
      for (int64_t j = 0; j < N; ++j) c_base[p * N + j] = a.c0 != nullptr ? a.c0[j * H + p] : 0.0f;

  // Per-gate bias added in the cell math: b_ih + b_hh, except the GRU's n gate, whose b_hn
  // sits inside r * (W_hn h + b_hn).
  Buffer bias(GH), bias_hn(d.cell == Cell::kGru ? H : 0);
  for (int64_t r = 0; r < GH; ++r) {
    const bool gru_n = d.cell == Cell::kGru && r >= 2 * H;
    bias.get()[r] = gru_n ? a.b_ih[r] : a.b_ih[r] + a.b_hh[r];
    if (gru_n) bias_hn.get()[r - 2 * H] = a.b_hh[r];
  }

  if (small_batch) {
    small_batch_steps(ks, cm, d, a, xproj, bias.get(), bias_hn.get(), c_base, training, tiles, nt);
  } else {
#pragma omp parallel num_threads(nt)
  {
    const int tid = omp_get_thread_num();
    const int64_t w_begin = split_begin(items, tid, nt), w_end = split_begin(items, tid + 1, nt);
    float* const tile = tiles + tid * G * MR * ldt;
    for (int64_t t = 0; t < T; ++t) {
      const float* const hcur = hpack + (t & 1) * hpack_floats;
      float* const hnext = hpack + ((t + 1) & 1) * hpack_floats;
      const float* const c_in = lstm ? (training ? c_base + t * H * N : c_base) : nullptr;
      float* const c_out = lstm ? (training ? c_base + (t + 1) * H * N : c_base) : nullptr;
      for (int64_t u = w_begin / panels; u * panels < w_end; ++u) {
        // This thread's batch panels of group u: all of them except at the ends of its run.
        const int64_t b_lo = std::max<int64_t>(0, w_begin - u * panels);
        const int64_t b_hi = std::min<int64_t>(panels, w_end - u * panels);
        const int64_t u0 = u * MR, rows = std::min(MR, H - u0);
        const int64_t c0 = b_lo * NR, cn = std::min(N, b_hi * NR) - c0;  // batch columns
        for (int64_t gi = 0; gi < G; ++gi)
          prefetch_rows(xproj + (gi * H + u0) * TN + t * N + c0, rows, TN, cn);
        // Gate-major: each gate's A panel (mr x H) is reused from L1 across the batch panels.
        for (int64_t gi = 0; gi < G; ++gi)
          for (int64_t b = b_lo; b < b_hi; ++b)
            ks.micro(H, packed + (u * G + gi) * MR * H, hcur + b * H * NR, tile + gi * MR * ldt + b * NR,
                     ldt, 0.0f, rows, std::min(NR, N - b * NR));
        for (int64_t b = b_lo; b < b_hi; ++b) {
          const int64_t j0 = b * NR, n = std::min(NR, N - j0);
          for (int64_t i = 0; i < rows; ++i) {
            const int64_t unit = u0 + i;
            FwdRow r{};
            for (int64_t gi = 0; gi < G; ++gi) {
              r.rec[gi] = tile + (gi * MR + i) * ldt + j0;
              r.x[gi] = xproj + (gi * H + unit) * TN + t * N + j0;
              r.bias[gi] = bias.get()[gi * H + unit];
              if (a.gates != nullptr) r.save[gi] = a.gates + (t * GH + gi * H + unit) * N + j0;
            }
            r.relu = d.relu;
            r.h_prev = hcur + b * H * NR + unit * NR;
            r.h_out = hnext + b * H * NR + unit * NR;
            if (lstm) {
              r.c_in = c_in + unit * N + j0;
              r.c_out = c_out + unit * N + j0;
            }
            switch (d.cell) {
              case Cell::kVanilla: cm.fwd_vanilla(r, n); break;
              case Cell::kLstm: cm.fwd_lstm(r, n); break;
              case Cell::kGru:
                r.bias_hn = bias_hn.get()[unit];
                if (a.hn != nullptr) r.save_hn = a.hn + (t * H + unit) * N + j0;
                cm.fwd_gru(r, n);
                break;
            }
          }
          // h_t of these units into y: a transposed copy of the panel rows just written.
          for (int64_t jj = 0; jj < n; ++jj) {
            float* const y = a.hs + ((t + 1) * N + j0 + jj) * H + u0;
            const float* const src = hnext + b * H * NR + u0 * NR + jj;
            for (int64_t i = 0; i < rows; ++i) y[i] = src[i * NR];
          }
        }
      }
      // h_t complete in every unit before anyone reads it; also keeps a fast thread from
      // overwriting the buffer of h_{t-1} while a slow one still reads it.
#pragma omp barrier
    }
  }
  }

  if (lstm && a.c_n != nullptr) {
    const float* c_last = training ? c_base + T * H * N : c_base;
    for (int64_t j = 0; j < N; ++j)
      for (int64_t p = 0; p < H; ++p) a.c_n[j * H + p] = c_last[p * N + j];
  }
  return nt;
}

}  // namespace dlcb::rnn
