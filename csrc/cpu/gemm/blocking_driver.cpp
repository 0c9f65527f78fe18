// The Goto/BLIS loop nests around a micro-kernel, for row-major C. Vectors run along N (C's
// contiguous axis), so the micro-panel kept in L1 is A's and the block kept in each core's L2 is
// B's: the transpose of BLIS's column-major roles. Three schedules share the packing routines
// and the micro-kernel; their block sizes come from the caches (blocking.h):
//
// Large M and N ("blocked"):
//   for ic in M by MC:                 A panel (MC x KC) packed once, shared, lives in L3
//     for pc in K by KC:
//       pack A panel                   (threads split it in groups of micro-panels)
//       for jc in N by NC:
//         pack B block (KC x NC)       (threads split it in groups of micro-panels; fits L2)
//         for ir, jr tiles:            (threads split the tile grid in contiguous halves)
//           micro-kernel               (A micro-panel KC x MR stays in L1, B streams from L2)
//
// Few columns ("narrow N", e.g. DeepBench's batch 8-128 GEMMs): each A element meets only a
// few B panels, so packing A into a shared panel is a separate pass over memory that nothing
// overlaps. Instead B (KC x N) is packed once per k block and every thread takes a group of
// A's micro-panels at a time and runs all of N against them: reading A from memory overlaps
// with the arithmetic of the other thread, and a column-major A is read in runs of a whole
// group per k step. Where the kernel set can, it reads a row-major A in place.
//
// Few rows ("narrow M", e.g. 35 x 8457): the mirror image: A packed once per k block, each
// thread packs a group of B's micro-panels at a time and runs every row of A against them.
// The narrow schedules take k blocks as deep as L2 allows: fewer passes over C, and a skinny
// operand's packing is spread over fewer, longer runs.
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "gemm/blocking.h"
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

// Shortest run (floats) a packing step should read from a strided source.
constexpr int64_t kRunFloats = 64;

// Micro-panels packed together: a column-major A (or row-major B) is then read a run of at
// least kRunFloats (256 bytes) per k step, long enough for the hardware prefetcher.
int64_t panels_per_group(int64_t r) { return ceil_div(kRunFloats, r); }

// A dimension is narrow when the operand packed whole across it, with one group of the other
// operand's micro-panels beside it, fits the narrow schedules' L2 budget at a k block of at
// least kMinNarrowKc; or, whatever the caches, when it spans at most 4 micro-panels or 64
// floats. Measured on Zen 4 (1 thread, AVX2 and AVX-512): narrow-N beats the blocked schedule
// by 3-13 % from N = 128 to 256 and ties at 384 to 512, where its k block falls to about 256.
constexpr int64_t kMinNarrowKc = 256;
bool narrow(const BlockSizes& bs, int64_t extent, int64_t r, int64_t other_r) {
  const int64_t whole = round_up(extent, r), group = panels_per_group(other_r) * other_r;
  return extent <= 4 * r || extent <= 64 || 4 * (whole + group) * kMinNarrowKc <= bs.narrow_bytes;
}

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

// Packs rows [i0, i0 + rows) x k steps [pc, pc + kc) of A into consecutive micro-panels.
void pack_a(const KernelSet& ks, const SgemmArgs& g, int64_t i0, int64_t rows, int64_t pc, int64_t kc, float* dst) {
  if (g.a_source != nullptr) {
    for (int64_t r0 = 0; r0 < rows; r0 += ks.mr) {
      float* d = dst + r0 * kc;
      g.a_source->pack(g.a_source->ctx, pc, kc, i0 + r0, std::min(ks.mr, rows - r0), ks.mr, d);
      if (g.alpha != 1.0f)
        for (int64_t e = 0; e < kc * ks.mr; ++e) d[e] *= g.alpha;
    }
    return;
  }
  ks.pack_a(rows, kc, g.a.data + i0 * g.a.row_stride + pc * g.a.col_stride, g.a.row_stride, g.a.col_stride,
            g.alpha, dst);
}

// Packs columns [j0, j0 + cols) x k steps [pc, pc + kc) of B into consecutive micro-panels.
void pack_b(const KernelSet& ks, const SgemmArgs& g, int64_t pc, int64_t j0, int64_t cols, int64_t kc, float* dst) {
  if (g.b_source != nullptr) {
    for (int64_t c0 = 0; c0 < cols; c0 += ks.nr)
      g.b_source->pack(g.b_source->ctx, pc, kc, j0 + c0, std::min(ks.nr, cols - c0), ks.nr, dst + c0 * kc);
    return;
  }
  if (g.b_packed != nullptr) {
    for (int64_t c0 = 0; c0 < cols; c0 += ks.nr)
      std::memcpy(dst + c0 * kc, g.b_packed + ((j0 + c0) / ks.nr * g.k + pc) * ks.nr, sizeof(float) * kc * ks.nr);
    return;
  }
  ks.pack_b(cols, kc, g.b.data + pc * g.b.row_stride + j0 * g.b.col_stride, g.b.row_stride, g.b.col_stride, dst);
}

void micro(const KernelSet& ks, const SgemmArgs& g, int64_t kc, const float* a, const float* b,
           int64_t i0, int64_t j0, float beta) {
  ks.micro(kc, a, b, g.c + i0 * g.ldc + j0, g.ldc, beta, std::min(ks.mr, g.m - i0), std::min(ks.nr, g.n - j0));
}

int blocked(const KernelSet& ks, const SgemmArgs& g, int threads, const Plan& pl) {
  const int64_t MR = ks.mr, NR = ks.nr;
  const int64_t MC = balanced_block(g.m, pl.mc, MR);
  const int64_t NC = balanced_block(g.n, pl.nc, NR);
  const int64_t KC = balanced_block(g.k, pl.kc, 1);
  // No more threads than tiles of the first block: a thread with nothing to do still pays for
  // every barrier.
  const int64_t tiles = ceil_div(std::min(g.m, MC), MR) * ceil_div(std::min(g.n, NC), NR);
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, tiles)));
  const int64_t a_group = panels_per_group(MR) * MR, b_group = panels_per_group(NR) * NR;

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
      for (int64_t r0 = 0; r0 < mc; r0 += a_group)
        pack_a(ks, g, ic + r0, std::min(a_group, mc - r0), pc, kc, a_pack + r0 * kc);

      for (int64_t jc = 0; jc < g.n; jc += NC) {
        const int64_t nc = std::min(NC, g.n - jc);
        const int64_t b_panels = ceil_div(nc, NR);

#pragma omp for schedule(static)
        for (int64_t c0 = 0; c0 < nc; c0 += b_group)
          pack_b(ks, g, pc, jc + c0, std::min(b_group, nc - c0), kc, b_pack + c0 * kc);

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

// Narrow N: B packed whole per k block (shared); each thread packs a group of A's micro-panels
// at a time and runs all of N against them.
int narrow_n(const KernelSet& ks, const SgemmArgs& g, int threads, const Plan& pl) {
  const int64_t MR = ks.mr, NR = ks.nr;
  const int64_t KC = balanced_block(g.k, pl.kc, 1);
  const int64_t a_panels = ceil_div(g.m, MR), b_panels = ceil_div(g.n, NR);
  // Groups of panels, but at least one group per thread.
  const int64_t group = std::max<int64_t>(1, std::min(pl.mc / MR, ceil_div(a_panels, threads)));
  const int64_t groups = ceil_div(a_panels, group);
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, groups)));
  // A row-major A would have to be transposed into each packed panel. With a single B panel
  // that transpose costs about a third of the arithmetic, so the strided micro-kernel reads A
  // where it is instead (edge blocks, with fewer than mr rows, are still packed). With more B
  // panels the packed copy pays for itself: it is read from L1 once per panel, while in-place
  // reads of many rows at once keep too few cache misses in flight.
  const bool read_a_in_place =
      g.a_source == nullptr && ks.micro_strided_a != nullptr && g.a.col_stride == 1 && b_panels == 1;

  // B already packed whole is read in place: panel jp's k block pc is at (jp * k + pc) * NR.
  const bool b_in_place = g.b_packed != nullptr && g.b_source == nullptr;

  thread_local Scratch a_scratch, b_scratch;
  float* const a_bufs = a_scratch.get(static_cast<size_t>(nt * group * MR * KC));
  float* const b_pack = b_in_place ? nullptr : b_scratch.get(static_cast<size_t>(b_panels * NR * KC));

#pragma omp parallel num_threads(nt)
  {
    float* const a_buf = a_bufs + omp_get_thread_num() * group * MR * KC;
    for (int64_t pc = 0; pc < g.k; pc += KC) {
      const int64_t kc = std::min(KC, g.k - pc);
      const float beta = pc == 0 ? g.beta : 1.0f;
      const float* const b_base = b_in_place ? g.b_packed + pc * NR : b_pack;
      const int64_t b_step = b_in_place ? NR * g.k : NR * kc;  // floats between B panels
      if (!b_in_place) {
#pragma omp for schedule(static)
        for (int64_t jp = 0; jp < b_panels; ++jp) pack_b(ks, g, pc, jp * NR, std::min(NR, g.n - jp * NR), kc, b_pack + jp * NR * kc);
      }
#pragma omp for schedule(static)
      for (int64_t gi = 0; gi < groups; ++gi) {
        const int64_t g0 = gi * group * MR, rows = std::min(group * MR, g.m - g0);
        if (read_a_in_place) {
          for (int64_t i0 = g0; i0 < g0 + rows; i0 += MR) {
            if (i0 + MR <= g.m) {
              ks.micro_strided_a(kc, g.a.data + i0 * g.a.row_stride + pc * g.a.col_stride, g.a.row_stride,
                                 g.a.col_stride, b_base, g.c + i0 * g.ldc, g.ldc, g.alpha, beta, g.n);
            } else {
              pack_a(ks, g, i0, g.m - i0, pc, kc, a_buf);
              micro(ks, g, kc, a_buf, b_base, i0, 0, beta);
            }
          }
          continue;
        }
        pack_a(ks, g, g0, rows, pc, kc, a_buf);
        for (int64_t i0 = g0; i0 < g0 + rows; i0 += MR)
          for (int64_t jp = 0; jp < b_panels; ++jp)
            micro(ks, g, kc, a_buf + (i0 - g0) * kc, b_base + jp * b_step, i0, jp * NR, beta);
      }
    }
  }
  return nt;
}

// Narrow M: A packed whole per k block (shared); each thread packs a group of B's micro-panels
// at a time and runs every row of A against them.
int narrow_m(const KernelSet& ks, const SgemmArgs& g, int threads, const Plan& pl) {
  const int64_t MR = ks.mr, NR = ks.nr;
  const int64_t KC = balanced_block(g.k, pl.kc, 1);
  const int64_t a_panels = ceil_div(g.m, MR), b_panels = ceil_div(g.n, NR);
  const int64_t group = std::max<int64_t>(1, std::min(pl.nc / NR, ceil_div(b_panels, threads)));
  const int64_t groups = ceil_div(b_panels, group);
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, groups)));

  thread_local Scratch a_scratch, b_scratch;
  float* const a_pack = a_scratch.get(static_cast<size_t>(a_panels * MR * KC));
  float* const b_bufs = b_scratch.get(static_cast<size_t>(nt * group * NR * KC));

#pragma omp parallel num_threads(nt)
  {
    float* const b_buf = b_bufs + omp_get_thread_num() * group * NR * KC;
    for (int64_t pc = 0; pc < g.k; pc += KC) {
      const int64_t kc = std::min(KC, g.k - pc);
      const float beta = pc == 0 ? g.beta : 1.0f;
#pragma omp for schedule(static)
      for (int64_t ip = 0; ip < a_panels; ++ip) pack_a(ks, g, ip * MR, std::min(MR, g.m - ip * MR), pc, kc, a_pack + ip * MR * kc);
#pragma omp for schedule(static)
      for (int64_t gi = 0; gi < groups; ++gi) {
        const int64_t g0 = gi * group * NR, cols = std::min(group * NR, g.n - g0);
        pack_b(ks, g, pc, g0, cols, kc, b_buf);
        for (int64_t j0 = g0; j0 < g0 + cols; j0 += NR)
          for (int64_t ip = 0; ip < a_panels; ++ip)
            micro(ks, g, kc, a_pack + ip * MR * kc, b_buf + (j0 - g0) * kc, ip * MR, j0, beta);
      }
    }
  }
  return nt;
}

// The k block of a narrow schedule: the operand packed whole (`whole` floats per k step) and
// one group of the other (`group` floats per k step) fill the L2 budget.
int64_t narrow_kc(const BlockSizes& bs, int64_t whole, int64_t group) {
  return std::clamp<int64_t>(bs.narrow_bytes / (4 * (whole + group)) / 16 * 16, 64, 4096);
}

// Operands given as strided matrices (no panel sources, no prepacked B): the only ones the
// transposed and inner-product paths can read.
bool plain_operands(const SgemmArgs& g) {
  return g.a_source == nullptr && g.b_source == nullptr && g.b_packed == nullptr;
}

// A few rows of A against a column-major B (a fully-connected layer at batch 8: x W^T, W row
// by row): narrow M would transpose all of the large B into packed panels, where each element
// then meets only a few rows. C^T = B^T A^T instead makes W the row-major A of a narrow-N
// GEMM, read in place or packed with contiguous row reads, and the small A^T the packed B.
// Measured on Zen 4 (AVX2, 1 thread, alternating processes): 8x1000x1024 NT 29 -> 74 GFLOP/s,
// 8x4096x4096 1.8x, 8x2500x784 2.3x.
bool transposing_pays(const SgemmArgs& g) {
  return plain_operands(g) && g.b.row_stride == 1 && g.b.col_stride != 1 && g.n > g.m;
}

// The Goto/BLIS loop nest the plan names (the schedules that pack).
int packed_loop_nest(const KernelSet& ks, const SgemmArgs& g, int threads, const Plan& p) {
  switch (p.schedule) {
    case Schedule::kNarrowN: return narrow_n(ks, g, threads, p);
    case Schedule::kNarrowM: return narrow_m(ks, g, threads, p);
    default: return blocked(ks, g, threads, p);
  }
}

// C = alpha A B + beta C computed as C^T = alpha B^T A^T + beta C^T in an n x m scratch.
int transposed(const KernelSet& ks, const SgemmArgs& g, int threads, const Plan& p) {
  thread_local Scratch ct_scratch;
  float* const ct = ct_scratch.get(static_cast<size_t>(g.n * g.m));
  if (g.beta != 0.0f)
    for (int64_t i = 0; i < g.m; ++i)
      for (int64_t j = 0; j < g.n; ++j) ct[j * g.m + i] = g.c[i * g.ldc + j];
  SgemmArgs t = g;
  t.m = g.n;
  t.n = g.m;
  t.a = {g.b.data, g.b.col_stride, g.b.row_stride};
  t.b = {g.a.data, g.a.col_stride, g.a.row_stride};
  t.c = ct;
  t.ldc = g.m;
  const int used = packed_loop_nest(ks, t, threads, p);
  for (int64_t i = 0; i < g.m; ++i)
    for (int64_t j = 0; j < g.n; ++j) g.c[i * g.ldc + j] = ct[j * g.m + i];
  return used;
}

// Both operands run along k (A row-major, B column-major) and one of them is small: packing
// (m + n) k floats would cost about as much as the arithmetic (see inner_product.h). Few rows of
// A (x W^T at batch 8), few columns of B (a GEMV, W x) or few outputs; thresholds per kernel set,
// measured on Zen 4, 1 thread, against the packed schedules: 8x10x384 NT 4.1x (AVX2) and 5.7x
// (AVX-512) faster, 1x1000x1024 NT 4.1x and 8.6x; on AVX2 the transposed narrow-N schedule
// stays 1.5x faster from 8 rows and 128 columns up.
constexpr int64_t kInnerProductColumns = 4;  // B columns per block of inner_product.h, every ISA
bool inner_product_pays(const KernelSet& ks, const SgemmArgs& g) {
  return plain_operands(g) && g.a.col_stride == 1 && g.b.row_stride == 1 &&
         (g.m <= ks.inner_product_rows || g.m * g.n <= ks.inner_product_outputs || g.n <= kInnerProductColumns);
}

// k is split into blocks so that the operand met again and again stays in half of L2: A's rows
// (every column block meets all of them) or, for a GEMV, B's few columns. Threads take
// contiguous ranges of column blocks, or of rows when there are fewer column blocks than threads
// (a GEMV); a thread gets at least ~1 MFLOP, or none.
int inner_product(const KernelSet& ks, const SgemmArgs& g, int threads) {
  constexpr int64_t kFlopsPerThread = int64_t{1} << 20, kRowBlock = 8;
  const int64_t col_blocks = ceil_div(g.n, kInnerProductColumns), row_blocks = ceil_div(g.m, kRowBlock);
  const bool split_rows = col_blocks < threads && row_blocks > col_blocks;
  const int64_t blocks = split_rows ? row_blocks : col_blocks;
  const int nt = static_cast<int>(std::clamp<int64_t>(2 * g.m * g.n * g.k / kFlopsPerThread, 1,
                                                      std::min<int64_t>(threads, blocks)));
  const int64_t reused = g.n <= kInnerProductColumns ? g.n : g.m;  // floats per k step kept in cache
  const int64_t KC = balanced_block(g.k, std::max<int64_t>(256, block_sizes(ks).narrow_bytes / (4 * reused)), 64);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    const int t = omp_get_thread_num();
    const int64_t step = split_rows ? kRowBlock : kInnerProductColumns, extent = split_rows ? g.m : g.n;
    const int64_t lo = blocks * t / nt * step, hi = std::min(extent, blocks * (t + 1) / nt * step);
    for (int64_t pc = 0; pc < g.k && hi > lo; pc += KC) {
      const int64_t kc = std::min(KC, g.k - pc);
      const float beta = pc == 0 ? g.beta : 1.0f;
      const float* a = g.a.data + pc + (split_rows ? lo * g.a.row_stride : 0);
      const float* b = g.b.data + pc + (split_rows ? 0 : lo * g.b.col_stride);
      float* c = g.c + (split_rows ? lo * g.ldc : lo);
      ks.inner_product(split_rows ? hi - lo : g.m, split_rows ? g.n : hi - lo, kc, a, g.a.row_stride, b,
                       g.b.col_stride, c, g.ldc, g.alpha, beta);
    }
  }
  return nt;
}

}  // namespace

Schedule choose_schedule(const KernelSet& ks, int64_t m, int64_t n) {
  const BlockSizes& bs = block_sizes(ks);
  if (round_up(n, ks.nr) <= round_up(m, ks.mr) && narrow(bs, n, ks.nr, ks.mr)) return Schedule::kNarrowN;
  if (narrow(bs, m, ks.mr, ks.nr)) return Schedule::kNarrowM;
  return Schedule::kBlocked;
}

const char* schedule_name(Schedule s) {
  switch (s) {
    case Schedule::kNarrowN: return "narrow-n";
    case Schedule::kNarrowM: return "narrow-m";
    case Schedule::kInnerProduct: return "inner-product";
    case Schedule::kBlocked: return "blocked";
    default: return "auto";
  }
}

namespace {

// DLCB_GEMM_SCHEDULE=blocked|narrow-n|narrow-m forces the loop nest of every GEMM that does not
// name one (read once; for experiments, e.g. on the GEMMs inside a convolution).
Schedule forced_schedule() {
  static const Schedule forced = [] {
    const char* e = std::getenv("DLCB_GEMM_SCHEDULE");
    for (Schedule s : {Schedule::kBlocked, Schedule::kNarrowN, Schedule::kNarrowM})
      if (e != nullptr && std::strcmp(e, schedule_name(s)) == 0) return s;
    return Schedule::kAuto;
  }();
  return forced;
}

}  // namespace

Plan plan(const KernelSet& ks, int64_t m, int64_t n, int64_t k, Blocking ov) {
  (void)k;
  const BlockSizes& bs = block_sizes(ks);
  if (ov.schedule == Schedule::kAuto) ov.schedule = forced_schedule();
  Plan p{ov.schedule == Schedule::kAuto ? choose_schedule(ks, m, n) : ov.schedule, bs.kc, bs.mc, bs.nc};
  if (p.schedule == Schedule::kNarrowN) {
    // mc: the rows of A packed per step; nc: B's padded width.
    p.mc = panels_per_group(ks.mr) * ks.mr;
    p.nc = round_up(std::max<int64_t>(n, 1), ks.nr);
    p.kc = narrow_kc(bs, p.nc, p.mc);
  } else if (p.schedule == Schedule::kNarrowM) {
    // mc: A's padded height; nc: the columns of B packed per step.
    p.mc = round_up(std::max<int64_t>(m, 1), ks.mr);
    p.nc = panels_per_group(ks.nr) * ks.nr;
    p.kc = narrow_kc(bs, p.mc, p.nc);
  }
  if (ov.kc > 0) p.kc = ov.kc;
  if (ov.mc > 0) p.mc = ov.mc;
  if (ov.nc > 0) p.nc = ov.nc;
  return p;
}

Plan plan_for(const KernelSet& ks, const SgemmArgs& g, Blocking blocking) {
  const bool automatic = blocking.schedule == Schedule::kAuto && forced_schedule() == Schedule::kAuto;
  if (automatic && inner_product_pays(ks, g)) return {Schedule::kInnerProduct, g.k, g.m, g.n};
  const Plan p = plan(ks, g.m, g.n, g.k, blocking);
  if (automatic && p.schedule == Schedule::kNarrowM && transposing_pays(g)) {
    Plan t = plan(ks, g.n, g.m, g.k, blocking);
    t.transposed = true;
    return t;
  }
  return p;
}

int sgemm(const KernelSet& ks, const SgemmArgs& g, int threads, Blocking blocking) {
  if (g.m <= 0 || g.n <= 0) return 1;
  if (g.k <= 0) {
    scale_c(g);
    return 1;
  }
  const Plan p = plan_for(ks, g, blocking);
  if (p.schedule == Schedule::kInnerProduct) return inner_product(ks, g, threads);
  if (p.transposed) return transposed(ks, g, threads, p);
  return packed_loop_nest(ks, g, threads, p);
}

}  // namespace dlcb::gemm
