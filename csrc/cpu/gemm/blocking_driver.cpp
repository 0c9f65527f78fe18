// The Goto/BLIS loop nest around a micro-kernel, for row-major C:
//
//   for ic in M by MC:                 A panel  (MC x KC) packed once, shared, lives in L3
//     for pc in K by KC:
//       pack A panel                   (threads split its MR-row micro-panels)
//       for jc in N by NC:
//         pack B block (KC x NC)       (threads split its NR-column micro-panels; fits L2)
//         for ir, jr tiles:            (threads split the tile grid in contiguous halves)
//           micro-kernel               (A micro-panel KC x MR stays in L1, B streams from L2)
//
// Vectors run along N (C's contiguous axis), so the micro-panel kept in L1 is A's, and the
// block kept in each core's L2 is B's: the transpose of BLIS's column-major roles.
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <memory>

#include "gemm/gemm.h"

namespace dlcb::gemm {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// Splits `extent` into equal blocks no larger than `max_block`, rounded up to `multiple`, so the
// last block is not a sliver.
int64_t balanced_block(int64_t extent, int64_t max_block, int64_t multiple) {
  const int64_t count = ceil_div(extent, max_block);
  return std::min(round_up(ceil_div(extent, count), multiple), round_up(extent, multiple));
}

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};

// Grow-only, 64-byte aligned scratch owned by the calling thread: repeated calls (a benchmark,
// an RNN over timesteps) neither allocate nor fault in fresh pages.
float* scratch(std::unique_ptr<float, FreeDeleter>& buf, size_t& capacity, size_t floats) {
  if (floats > capacity) {
    const size_t bytes = round_up(static_cast<int64_t>(floats * sizeof(float)), 64);
    buf.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
    if (!buf) throw std::bad_alloc();
    capacity = floats;
  }
  return buf.get();
}

void scale_c(const SgemmArgs& g) {
  for (int64_t i = 0; i < g.m; ++i) {
    float* ci = g.c + i * g.ldc;
    for (int64_t j = 0; j < g.n; ++j) ci[j] = g.beta == 0.0f ? 0.0f : g.beta * ci[j];
  }
}

}  // namespace

int sgemm(const KernelSet& ks, const SgemmArgs& g, int threads, Blocking blocking) {
  if (g.m <= 0 || g.n <= 0) return 1;
  if (g.k <= 0) {
    scale_c(g);
    return 1;
  }
  const int64_t MR = ks.mr, NR = ks.nr;
  const int64_t MC = balanced_block(g.m, blocking.mc > 0 ? blocking.mc : ks.mc, MR);
  const int64_t NC = balanced_block(g.n, blocking.nc > 0 ? blocking.nc : ks.nc, NR);
  const int64_t KC = balanced_block(g.k, blocking.kc > 0 ? blocking.kc : ks.kc, 1);

  // No more threads than tiles of the first block: a thread with nothing to do still pays for
  // every barrier.
  const int64_t tiles = ceil_div(std::min(g.m, MC), MR) * ceil_div(std::min(g.n, NC), NR);
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, tiles)));

  thread_local std::unique_ptr<float, FreeDeleter> a_buf, b_buf;
  thread_local size_t a_cap = 0, b_cap = 0;
  float* const a_pack = scratch(a_buf, a_cap, static_cast<size_t>(MC * KC));
  float* const b_pack = scratch(b_buf, b_cap, static_cast<size_t>(KC * NC));

#pragma omp parallel num_threads(nt)
  {
    for (int64_t ic = 0; ic < g.m; ic += MC) {
      const int64_t mc = std::min(MC, g.m - ic);
      const int64_t a_panels = ceil_div(mc, MR);
      for (int64_t pc = 0; pc < g.k; pc += KC) {
        const int64_t kc = std::min(KC, g.k - pc);
        const float beta = pc == 0 ? g.beta : 1.0f;

#pragma omp for schedule(static)
        for (int64_t ip = 0; ip < a_panels; ++ip) {
          const int64_t i0 = ic + ip * MR;
          ks.pack_a(std::min(MR, g.m - i0), kc, g.a.data + i0 * g.a.row_stride + pc * g.a.col_stride,
                    g.a.row_stride, g.a.col_stride, g.alpha, a_pack + ip * MR * kc);
        }

        for (int64_t jc = 0; jc < g.n; jc += NC) {
          const int64_t nc = std::min(NC, g.n - jc);
          const int64_t b_panels = ceil_div(nc, NR);

#pragma omp for schedule(static)
          for (int64_t jp = 0; jp < b_panels; ++jp) {
            const int64_t j0 = jc + jp * NR;
            ks.pack_b(std::min(NR, g.n - j0), kc, g.b.data + pc * g.b.row_stride + j0 * g.b.col_stride,
                      g.b.row_stride, g.b.col_stride, b_pack + jp * NR * kc);
          }

          // The implicit barrier at the end also guards the packed buffers against the next
          // iteration's packing.
#pragma omp for schedule(static) collapse(2)
          for (int64_t ip = 0; ip < a_panels; ++ip) {
            for (int64_t jp = 0; jp < b_panels; ++jp) {
              const int64_t i0 = ip * MR, j0 = jp * NR;
              ks.micro(kc, a_pack + ip * MR * kc, b_pack + jp * NR * kc,
                       g.c + (ic + i0) * g.ldc + jc + j0, g.ldc, beta, std::min(MR, mc - i0),
                       std::min(NR, nc - j0));
            }
          }
        }
      }
    }
  }
  return nt;
}

}  // namespace dlcb::gemm
