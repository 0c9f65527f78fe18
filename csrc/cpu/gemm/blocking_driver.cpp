// The Goto/BLIS loop nests around a micro-kernel, for row-major C. Vectors run along N (C's
// contiguous axis), so the micro-panel kept in L1 is A's and the block kept in each core's L2 is
// B's: the transpose of BLIS's column-major roles. Three schedules share the packing routines
// and the micro-kernel:
//
// Large M and N ("blocked"):
//   for ic in M by MC:                 A panel (MC x KC) packed once, shared, lives in L3
//     for pc in K by KC:
//       pack A panel                   (threads split its MR-row micro-panels)
//       for jc in N by NC:
//         pack B block (KC x NC)       (threads split its NR-column micro-panels; fits L2)
//         for ir, jr tiles:            (threads split the tile grid in contiguous halves)
//           micro-kernel               (A micro-panel KC x MR stays in L1, B streams from L2)
//
// Few columns ("narrow N", e.g. DeepBench's batch 8-128 GEMMs): each A element meets only a
// few B panels, so packing A into a shared panel is a separate pass over memory that nothing
// overlaps. Instead B (KC x N) is packed once per k block and every thread takes one MR-row
// block of A at a time and runs all of N against it at once: reading A from memory overlaps
// with the arithmetic. Where the kernel set can, it reads a row-major A in place; otherwise it
// packs the block into its own L1-sized buffer.
//
// Few rows ("narrow M", e.g. 35 x 8457): the mirror image: A packed once per k block, each
// thread packs one B micro-panel at a time and runs every row of A against it.
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
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

// At most this many micro-panels across makes a dimension "narrow".
constexpr int64_t kNarrowPanels = 4;

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};

// Grow-only, 64-byte aligned scratch owned by the calling thread: repeated calls (a benchmark,
// an RNN over timesteps) neither allocate nor fault in fresh pages. Allocated before any
// parallel region, so an allocation failure is an exception in the caller, not in a worker.
struct Scratch {
  std::unique_ptr<float, FreeDeleter> buf;
  size_t capacity = 0;

  float* get(size_t floats) {
    if (floats > capacity) {
      const size_t bytes = round_up(static_cast<int64_t>(floats * sizeof(float)), 64);
      buf.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
      if (!buf) {
        capacity = 0;
        throw std::bad_alloc();
      }
      capacity = floats;
    }
    return buf.get();
  }
};

void scale_c(const SgemmArgs& g) {
  for (int64_t i = 0; i < g.m; ++i) {
    float* ci = g.c + i * g.ldc;
    for (int64_t j = 0; j < g.n; ++j) ci[j] = g.beta == 0.0f ? 0.0f : g.beta * ci[j];
  }
}

// Helpers that name the source of a micro-panel.
void pack_a(const KernelSet& ks, const SgemmArgs& g, int64_t i0, int64_t pc, int64_t kc, float* dst) {
  if (g.a_source != nullptr) {
    g.a_source->pack(g.a_source->ctx, pc, kc, i0, std::min(ks.mr, g.m - i0), ks.mr, dst);
    if (g.alpha != 1.0f)
      for (int64_t e = 0; e < kc * ks.mr; ++e) dst[e] *= g.alpha;
    return;
  }
  ks.pack_a(std::min(ks.mr, g.m - i0), kc, g.a.data + i0 * g.a.row_stride + pc * g.a.col_stride,
            g.a.row_stride, g.a.col_stride, g.alpha, dst);
}

void pack_b(const KernelSet& ks, const SgemmArgs& g, int64_t pc, int64_t j0, int64_t kc, float* dst) {
  if (g.b_source != nullptr) {
    g.b_source->pack(g.b_source->ctx, pc, kc, j0, std::min(ks.nr, g.n - j0), ks.nr, dst);
    return;
  }
  if (g.b_packed != nullptr) {
    std::memcpy(dst, g.b_packed + (j0 / ks.nr * g.k + pc) * ks.nr, sizeof(float) * kc * ks.nr);
    return;
  }
  ks.pack_b(std::min(ks.nr, g.n - j0), kc, g.b.data + pc * g.b.row_stride + j0 * g.b.col_stride,
            g.b.row_stride, g.b.col_stride, dst);
}

void micro(const KernelSet& ks, const SgemmArgs& g, int64_t kc, const float* a, const float* b,
           int64_t i0, int64_t j0, float beta) {
  ks.micro(kc, a, b, g.c + i0 * g.ldc + j0, g.ldc, beta, std::min(ks.mr, g.m - i0), std::min(ks.nr, g.n - j0));
}

int blocked(const KernelSet& ks, const SgemmArgs& g, int threads, const Blocking& bl) {
  const int64_t MR = ks.mr, NR = ks.nr;
  const int64_t MC = balanced_block(g.m, bl.mc > 0 ? bl.mc : ks.mc, MR);
  const int64_t NC = balanced_block(g.n, bl.nc > 0 ? bl.nc : ks.nc, NR);
  const int64_t KC = balanced_block(g.k, bl.kc > 0 ? bl.kc : ks.kc, 1);
  // No more threads than tiles of the first block: a thread with nothing to do still pays for
  // every barrier.
  const int64_t tiles = ceil_div(std::min(g.m, MC), MR) * ceil_div(std::min(g.n, NC), NR);
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, tiles)));

  thread_local Scratch a_scratch, b_scratch;
  float* const a_pack = a_scratch.get(static_cast<size_t>(MC * KC));
  float* const b_pack = b_scratch.get(static_cast<size_t>(KC * NC));

#pragma omp parallel num_threads(nt)
  for (int64_t ic = 0; ic < g.m; ic += MC) {
    const int64_t mc = std::min(MC, g.m - ic);
    const int64_t a_panels = ceil_div(mc, MR);
    for (int64_t pc = 0; pc < g.k; pc += KC) {
      const int64_t kc = std::min(KC, g.k - pc);
      const float beta = pc == 0 ? g.beta : 1.0f;

#pragma omp for schedule(static)
      for (int64_t ip = 0; ip < a_panels; ++ip) pack_a(ks, g, ic + ip * MR, pc, kc, a_pack + ip * MR * kc);

      for (int64_t jc = 0; jc < g.n; jc += NC) {
        const int64_t nc = std::min(NC, g.n - jc);
        const int64_t b_panels = ceil_div(nc, NR);

#pragma omp for schedule(static)
        for (int64_t jp = 0; jp < b_panels; ++jp) pack_b(ks, g, pc, jc + jp * NR, kc, b_pack + jp * NR * kc);

        // The implicit barrier at the end also guards the packed buffers against the next
        // iteration's packing.
#pragma omp for schedule(static) collapse(2)
        for (int64_t ip = 0; ip < a_panels; ++ip)
          for (int64_t jp = 0; jp < b_panels; ++jp)
            micro(ks, g, kc, a_pack + ip * MR * kc, b_pack + jp * NR * kc, ic + ip * MR, jc + jp * NR, beta);
      }
    }
  }
  return nt;
}

// Narrow N: B packed whole per k block (shared), A packed a micro-panel at a time per thread.
int narrow_n(const KernelSet& ks, const SgemmArgs& g, int threads, const Blocking& bl) {
  const int64_t MR = ks.mr, NR = ks.nr;
  const int64_t KC = balanced_block(g.k, bl.kc > 0 ? bl.kc : ks.kc, 1);
  const int64_t a_panels = ceil_div(g.m, MR), b_panels = ceil_div(g.n, NR);
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, a_panels)));
  // A row-major A would have to be transposed into each packed panel. With a single B panel
  // that transpose costs about a third of the arithmetic, so the strided micro-kernel reads A
  // where it is instead (edge blocks, with fewer than mr rows, are still packed). With more B
  // panels the packed copy pays for itself: it is read from L1 once per panel, while in-place
  // reads of 14 rows at once keep too few cache misses in flight.
  const bool read_a_in_place =
      g.a_source == nullptr && ks.micro_strided_a != nullptr && g.a.col_stride == 1 && b_panels == 1;

  // B already packed whole is read in place: panel jp's k block pc is at (jp * k + pc) * NR.
  const bool b_in_place = g.b_packed != nullptr && g.b_source == nullptr;

  thread_local Scratch a_scratch, b_scratch;
  float* const a_bufs = a_scratch.get(static_cast<size_t>(nt * MR * KC));
  float* const b_pack = b_in_place ? nullptr : b_scratch.get(static_cast<size_t>(b_panels * NR * KC));

#pragma omp parallel num_threads(nt)
  {
    float* const a_buf = a_bufs + omp_get_thread_num() * MR * KC;
    for (int64_t pc = 0; pc < g.k; pc += KC) {
      const int64_t kc = std::min(KC, g.k - pc);
      const float beta = pc == 0 ? g.beta : 1.0f;
      const float* const b_base = b_in_place ? g.b_packed + pc * NR : b_pack;
      const int64_t b_step = b_in_place ? NR * g.k : NR * kc;  // floats between B panels
      if (!b_in_place) {
#pragma omp for schedule(static)
        for (int64_t jp = 0; jp < b_panels; ++jp) pack_b(ks, g, pc, jp * NR, kc, b_pack + jp * NR * kc);
      }
#pragma omp for schedule(static)
      for (int64_t ip = 0; ip < a_panels; ++ip) {
        const int64_t i0 = ip * MR;
        if (read_a_in_place && i0 + MR <= g.m) {
          const float* a = g.a.data + i0 * g.a.row_stride + pc * g.a.col_stride;
          for (int64_t jp = 0; jp < b_panels; ++jp)
            ks.micro_strided_a(kc, a, g.a.row_stride, g.a.col_stride, b_base + jp * b_step,
                               g.c + i0 * g.ldc + jp * NR, g.ldc, g.alpha, beta, std::min(NR, g.n - jp * NR));
          continue;
        }
        pack_a(ks, g, i0, pc, kc, a_buf);
        for (int64_t jp = 0; jp < b_panels; ++jp) micro(ks, g, kc, a_buf, b_base + jp * b_step, i0, jp * NR, beta);
      }
    }
  }
  return nt;
}

// Narrow M: A packed whole per k block (shared), B packed a micro-panel at a time per thread.
int narrow_m(const KernelSet& ks, const SgemmArgs& g, int threads, const Blocking& bl) {
  const int64_t MR = ks.mr, NR = ks.nr;
  const int64_t KC = balanced_block(g.k, bl.kc > 0 ? bl.kc : ks.kc, 1);
  const int64_t a_panels = ceil_div(g.m, MR), b_panels = ceil_div(g.n, NR);
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, b_panels)));

  thread_local Scratch a_scratch, b_scratch;
  float* const a_pack = a_scratch.get(static_cast<size_t>(a_panels * MR * KC));
  float* const b_bufs = b_scratch.get(static_cast<size_t>(nt * NR * KC));

#pragma omp parallel num_threads(nt)
  {
    float* const b_buf = b_bufs + omp_get_thread_num() * NR * KC;
    for (int64_t pc = 0; pc < g.k; pc += KC) {
      const int64_t kc = std::min(KC, g.k - pc);
      const float beta = pc == 0 ? g.beta : 1.0f;
#pragma omp for schedule(static)
      for (int64_t ip = 0; ip < a_panels; ++ip) pack_a(ks, g, ip * MR, pc, kc, a_pack + ip * MR * kc);
#pragma omp for schedule(static)
      for (int64_t jp = 0; jp < b_panels; ++jp) {
        pack_b(ks, g, pc, jp * NR, kc, b_buf);
        for (int64_t ip = 0; ip < a_panels; ++ip) micro(ks, g, kc, a_pack + ip * MR * kc, b_buf, ip * MR, jp * NR, beta);
      }
    }
  }
  return nt;
}

}  // namespace

Schedule choose_schedule(const KernelSet& ks, int64_t m, int64_t n) {
  const int64_t a_panels = ceil_div(m, ks.mr), b_panels = ceil_div(n, ks.nr);
  if (b_panels <= kNarrowPanels && b_panels <= a_panels) return Schedule::kNarrowN;
  if (a_panels <= kNarrowPanels) return Schedule::kNarrowM;
  return Schedule::kBlocked;
}

const char* schedule_name(Schedule s) {
  switch (s) {
    case Schedule::kNarrowN: return "narrow-n";
    case Schedule::kNarrowM: return "narrow-m";
    default: return "blocked";
  }
}

int sgemm(const KernelSet& ks, const SgemmArgs& g, int threads, Blocking blocking) {
  if (g.m <= 0 || g.n <= 0) return 1;
  if (g.k <= 0) {
    scale_c(g);
    return 1;
  }
  const Schedule s = blocking.schedule == Schedule::kAuto ? choose_schedule(ks, g.m, g.n) : blocking.schedule;
  switch (s) {
    case Schedule::kNarrowN: return narrow_n(ks, g, threads, blocking);
    case Schedule::kNarrowM: return narrow_m(ks, g, threads, blocking);
    default: return blocked(ks, g, threads, blocking);
  }
}

}  // namespace dlcb::gemm
