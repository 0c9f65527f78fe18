// Packs W_hh once per call (or once per prepared weights object) into the micro-kernel's A
// panels, so the T recurrent steps read it in the order the micro-kernel consumes it.
//
// The recurrent GEMM is computed transposed, gates^T (G*H x N) = W_hh (G*H x H) * h^T (H x N):
// the long dimension G*H goes to the micro-kernel's rows and the small batch to its vector
// columns, where the AVX-512 kernel's 8- and 16-wide bodies waste no FMAs on batch 8 or 16
// (with the batch as rows, a 14-row kernel would run batch 8 at 57 % efficiency).
//
// Forward layout: for each group u of mr hidden units, G panels (one per gate, in PyTorch's
// order) of mr rows x H deep: panel (u, g) holds rows g*H + u*mr ... of W_hh. A thread that
// owns unit group u thus produces all G gate pre-activations of those units and can apply the
// cell math to them at once.
//
// Backward layout: dh_{t-1}^T (H x N) = W_hh^T (H x G*H) * dgates^T (G*H x N): for each group u
// of mr units one panel of mr rows (columns u*mr ... of W_hh) x G*H deep.
#include <algorithm>

#include "rnn/buffer.h"
#include "rnn/rnn.h"

namespace dlcb::rnn {

int64_t packed_forward_floats(const gemm::KernelSet& ks, Cell cell, int64_t H) {
  return ceil_div(H, ks.mr) * gate_count(cell) * ks.mr * H;
}

int64_t packed_backward_floats(const gemm::KernelSet& ks, Cell cell, int64_t H) {
  return ceil_div(H, ks.mr) * ks.mr * gate_count(cell) * H;
}

void pack_forward(const gemm::KernelSet& ks, Cell cell, int64_t H, const float* w_hh, float* dst,
                  int threads) {
  const int64_t G = gate_count(cell), MR = ks.mr, groups = ceil_div(H, MR);
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, groups * G)));
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t q = 0; q < groups * G; ++q) {
    const int64_t u = q / G, g = q % G, u0 = u * MR;
    ks.pack_a(std::min(MR, H - u0), H, w_hh + (g * H + u0) * H, H, 1, 1.0f, dst + q * MR * H);
  }
}

void pack_backward(const gemm::KernelSet& ks, Cell cell, int64_t H, const float* w_hh, float* dst,
                   int threads) {
  const int64_t GH = gate_count(cell) * H, MR = ks.mr, groups = ceil_div(H, MR);
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, groups)));
  // Element (i, p) of the panel is W_hh[p][u0 + i]: row stride 1, k stride H.
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t u = 0; u < groups; ++u) {
    const int64_t u0 = u * MR;
    ks.pack_a(std::min(MR, H - u0), GH, w_hh + u0, 1, H, 1.0f, dst + u * MR * GH);
  }
}

}  // namespace dlcb::rnn
