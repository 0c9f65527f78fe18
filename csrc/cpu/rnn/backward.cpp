// Backward pass (backpropagation through time): weight gradients, dh0 (and dc0), optionally dx.
//
// Per step, from t = T-1 down to 0, each thread owns a run of (group of mr hidden units, batch
// panel) work items (as in the forward pass):
//   dh_t = dy_t + (dgates_{t+1} W_hh)[own units] + direct terms (dh_n at the last step; the
//          GRU's z * dh_{t+1}; the LSTM's f * dc_{t+1} travels in dc)
//   dgates_t[own units] = cell math on the saved activations
// The GEMM for its own units, dh^T (mr x N) = W_hh^T panel (mr x G*H) * dgates_{t+1}^T
// (G*H x N), needs every unit's dgates_{t+1}, so dgates live in double-buffered B panels with
// one barrier per step; everything else a unit needs is its own.
//
// The GRU's recurrent and input pre-activation gradients differ in the n gate (r multiplies
// W_hn h + b_hn): dgates (recurrent: W_hh, b_hh, dh) and dgates_in (W_ih, b_ih, dx) are kept
// apart; for the vanilla cell and the LSTM they are the same buffer.
//
// After the loop the weight gradients are single large GEMMs over all timesteps:
//   dW_hh = dgates^T (G*H x T*N) * H_prev (T*N x H)   (H_prev = hs[0:T], contiguous)
//   dW_ih = dgates_in^T (G*H x T*N) * X (T*N x I)
//   dx    = dgates_in (T*N x G*H) * W_ih (G*H x I)
// and the bias gradients are row sums of dgates^T.
#include <omp.h>

#include <algorithm>
#include <cstring>

#include "rnn/buffer.h"
#include "rnn/cell_math.h"
#include "rnn/rnn.h"

namespace dlcb::rnn {
namespace {

void gemm_into(const gemm::KernelSet& ks, int64_t m, int64_t n, int64_t k, gemm::StridedMatrix a,
               gemm::StridedMatrix b, float* c, int64_t ldc, int threads) {
  gemm::SgemmArgs g{};
  g.m = m;
  g.n = n;
  g.k = k;
  g.a = a;
  g.b = b;
  g.c = c;
  g.ldc = ldc;
  g.alpha = 1.0f;
  g.beta = 0.0f;
  gemm::sgemm(ks, g, threads);
}

void row_sums(const float* m, int64_t rows, int64_t cols, float* out, int threads) {
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, rows)));
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t r = 0; r < rows; ++r) {
    // Accumulated in double; the reduction clause lets the compiler keep one partial sum per
    // vector lane instead of one serial chain of dependent adds.
    double s = 0.0;
    const float* row = m + r * cols;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < cols; ++j) s += static_cast<double>(row[j]);
    out[r] = static_cast<float>(s);
  }
}

}  // namespace

int backward(const gemm::KernelSet& ks, const Dims& d, const BackwardArgs& a, int threads) {
  const int64_t G = gate_count(d.cell), T = d.T, N = d.N, I = d.I, H = d.H;
  const int64_t GH = G * H, TN = T * N, MR = ks.mr, NR = ks.nr;
  const int64_t groups = ceil_div(H, MR), panels = ceil_div(N, NR);
  const int64_t dgpack_floats = panels * GH * NR;
  const bool lstm = d.cell == Cell::kLstm, gru = d.cell == Cell::kGru;
  const CellMath& cm = cell_math_for(ks);
  threads = std::max(1, threads);
  // Work items: (unit group, batch panel) pairs, split in contiguous runs (as in forward.cpp).
  const int64_t items = groups * panels;
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, items)));

  Scratch packed_own(kPacked, a.packed == nullptr ? packed_backward_floats(ks, d.cell, H) : 0);
  Scratch dg_buf(kDgates, GH * TN), dgi_buf(kDgatesIn, gru ? GH * TN : 0);
  float* const dg_all = dg_buf.get();                    // (G*H, T*N): dgates^T of every step
  float* const dgi_all = gru ? dgi_buf.get() : dg_all;   // GRU: the input side's own
  Scratch dgpack_buf(kDgpack, 2 * dgpack_floats, /*zero=*/true);  // batch padding stays 0
  float* const dgpack = dgpack_buf.get();
  Scratch carry_h_buf(kCarryH, H * N), carry_c_buf(kCarryC, lstm ? H * N : 0);
  float* const carry_h = carry_h_buf.get();
  float* const carry_c = carry_c_buf.get();
  Scratch tiles_buf(kTiles, nt * MR * NR);
  float* const tiles = tiles_buf.get();
  Buffer scratch(nt * 2 * NR);

  const float* packed = a.packed;
  if (packed == nullptr) {
    pack_backward(ks, d.cell, H, a.w_hh, packed_own.get(), threads);
    packed = packed_own.get();
  }
  for (int64_t p = 0; p < H; ++p)
    for (int64_t j = 0; j < N; ++j) {
      carry_h[p * N + j] = a.dh_n != nullptr ? a.dh_n[j * H + p] : 0.0f;
      if (lstm) carry_c[p * N + j] = a.dc_n != nullptr ? a.dc_n[j * H + p] : 0.0f;
    }
  // The GRU's dgates_in equals dgates in the r and z rows; only the n rows are written apart.
  // (Rows 0..2H of dgi_all are filled by the copy after the loop.)

#pragma omp parallel num_threads(nt)
  {
    const int tid = omp_get_thread_num();
    const int64_t w_begin = split_begin(items, tid, nt), w_end = split_begin(items, tid + 1, nt);
    float* const tile = tiles + tid * MR * NR;
    float* const dh = scratch.get() + tid * 2 * NR;
    float* const hbuf = dh + NR;
    // Step t = -1 only computes dh0 = dgates_0 W_hh + direct terms.
    for (int64_t t = T - 1; t >= -1; --t) {
      const float* const dg_next = dgpack + ((t + 2) & 1) * dgpack_floats;  // dgates_{t+1}
      float* const dg_cur = dgpack + ((t + 1) & 1) * dgpack_floats;        // dgates_t
      const bool has_next = t < T - 1;
      for (int64_t w = w_begin; w < w_end; ++w) {
        const int64_t u = w / panels, b = w % panels;
        const int64_t u0 = u * MR, rows = std::min(MR, H - u0);
        const int64_t j0 = b * NR, n = std::min(NR, N - j0);
        if (t >= 0) {
          prefetch_rows(a.dy + (t * N + j0) * H + u0, n, H, rows);
          if (d.cell != Cell::kLstm)
            prefetch_rows(a.hs + ((t + (d.cell == Cell::kVanilla)) * N + j0) * H + u0, n, H, rows);
        }
        if (has_next) ks.micro(GH, packed + u * MR * GH, dg_next + b * GH * NR, tile, NR, 0.0f, rows, n);
        for (int64_t i = 0; i < rows; ++i) {
          const int64_t unit = u0 + i;
          float* const carry = carry_h + unit * N + j0;
          for (int64_t jj = 0; jj < n; ++jj) {
            float v = carry[jj];
            if (has_next) v += tile[i * NR + jj];
            if (t >= 0) v += a.dy[(t * N + j0 + jj) * H + unit];
            dh[jj] = v;
            carry[jj] = 0.0f;
          }
          if (t < 0) {
            for (int64_t jj = 0; jj < n; ++jj) a.dh0[(j0 + jj) * H + unit] = dh[jj];
            continue;
          }
          BwdRow r{};
          r.dh = dh;
          r.relu = d.relu;
          for (int64_t gi = 0; gi < G; ++gi) {
            r.dg[gi] = dg_all + (gi * H + unit) * TN + t * N + j0;
            if (a.gates != nullptr) r.gate[gi] = a.gates + (t * GH + gi * H + unit) * N + j0;
          }
          switch (d.cell) {
            case Cell::kVanilla:
              for (int64_t jj = 0; jj < n; ++jj) hbuf[jj] = a.hs[((t + 1) * N + j0 + jj) * H + unit];
              r.h = hbuf;
              cm.bwd_vanilla(r, n);
              break;
            case Cell::kLstm:
              r.c = a.cs + ((t + 1) * H + unit) * N + j0;
              r.c_prev = a.cs + (t * H + unit) * N + j0;
              r.dc = carry_c + unit * N + j0;
              cm.bwd_lstm(r, n);
              break;
            case Cell::kGru:
              for (int64_t jj = 0; jj < n; ++jj) hbuf[jj] = a.hs[(t * N + j0 + jj) * H + unit];
              r.h = hbuf;
              r.hn = a.hn + (t * H + unit) * N + j0;
              r.dh_carry = carry;
              r.dg_in_n = dgi_all + (2 * H + unit) * TN + t * N + j0;
              cm.bwd_gru(r, n);
              break;
          }
          for (int64_t gi = 0; gi < G; ++gi)
            std::memcpy(dg_cur + b * GH * NR + (gi * H + unit) * NR, r.dg[gi], static_cast<size_t>(n) * sizeof(float));
        }
      }
      // dgates_t complete for every unit before the next step's GEMM reads it.
      if (t >= 0) {
#pragma omp barrier
      }
    }
  }

  if (lstm && a.dc0 != nullptr)
    for (int64_t j = 0; j < N; ++j)
      for (int64_t p = 0; p < H; ++p) a.dc0[j * H + p] = carry_c[p * N + j];
  if (gru) std::memcpy(dgi_all, dg_all, static_cast<size_t>(2 * H * TN) * sizeof(float));

  gemm_into(ks, GH, H, TN, {dg_all, TN, 1}, {a.hs, H, 1}, a.dw_hh, H, threads);
  gemm_into(ks, GH, I, TN, {dgi_all, TN, 1}, {a.x, I, 1}, a.dw_ih, I, threads);
  row_sums(dg_all, GH, TN, a.db_hh, threads);
  row_sums(dgi_all, GH, TN, a.db_ih, threads);
  if (a.dx != nullptr) gemm_into(ks, TN, I, GH, {dgi_all, 1, TN}, {a.w_ih, I, 1}, a.dx, I, threads);
  return nt;
}

}  // namespace dlcb::rnn
