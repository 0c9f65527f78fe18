// Portable micro-kernel: a 3 x 12 block of C in plain C++ with GCC/Clang vector types of 4
// floats, which every 64-bit target of the two compilers has (SSE2 on x86-64, NEON on aarch64,
// scalar code elsewhere). It is the fallback on CPUs without AVX2 and on other architectures.
//
// The tile fits the 16 registers of SSE2: 9 accumulators, 3 for the B row, 1 broadcast and 1
// product (SSE2 has no FMA, so multiply and add are separate). On one Zen 4 core, compiled for
// the x86-64 baseline, a 3 x 12 tile ran at 46 GFLOP/s in isolation (78 % of the 16 FLOP/cycle
// SSE peak), ahead of 6 x 8 (38), 4 x 8 and 2 x 16 (41) and of anything with more than 14 live
// vectors, which spills. The accumulators are explicit vectors because auto-vectorized loops
// over a C array of them (what this file held before) keep them in memory: 8 GFLOP/s. Edge
// tiles are specialised by row count and width, as in the AVX2 kernel.
#include <cstring>

#include "gemm/gemm.h"
#include "gemm/inner_product_isa.h"
#include "gemm/pack.h"

namespace dlcb::gemm {
namespace {

constexpr int64_t MR = 3;
constexpr int64_t NR = 12;

typedef float v4 __attribute__((vector_size(16)));

inline v4 load(const float* p) {
  v4 v;
  std::memcpy(&v, p, sizeof v);  // an unaligned load; compilers emit one instruction
  return v;
}
inline void store(float* p, v4 v) { std::memcpy(p, &v, sizeof v); }
inline v4 splat(float x) { return v4{x, x, x, x}; }

// ROWS x (4 * VECS) tile, columns beyond `cols` untouched; C = A B + beta * C.
template <int ROWS, int VECS>
void tile(int64_t kc, const float* __restrict a, const float* __restrict b, float* c, int64_t ldc, float beta,
          int64_t cols) {
  v4 acc[ROWS][VECS];
#pragma GCC unroll 3
  for (int i = 0; i < ROWS; ++i)
#pragma GCC unroll 3
    for (int v = 0; v < VECS; ++v) acc[i][v] = splat(0.0f);
#pragma GCC unroll 2
  for (int64_t p = 0; p < kc; ++p) {
    v4 bv[VECS];
#pragma GCC unroll 3
    for (int v = 0; v < VECS; ++v) bv[v] = load(b + 4 * v);
    // The B panel streams from L2; fetch ahead so each line is in L1 when its turn comes.
    __builtin_prefetch(b + 16 * NR);
#pragma GCC unroll 3
    for (int i = 0; i < ROWS; ++i) {
      const v4 ai = splat(a[i]);
#pragma GCC unroll 3
      for (int v = 0; v < VECS; ++v) acc[i][v] += ai * bv[v];
    }
    a += MR;
    b += NR;
  }
  const bool full = cols == 4 * VECS;
#pragma GCC unroll 3
  for (int i = 0; i < ROWS; ++i) {
    float* ci = c + i * ldc;
    if (full) {
#pragma GCC unroll 3
      for (int v = 0; v < VECS; ++v) store(ci + 4 * v, beta != 0.0f ? acc[i][v] + splat(beta) * load(ci + 4 * v) : acc[i][v]);
      continue;
    }
    alignas(16) float row[4 * VECS];
#pragma GCC unroll 3
    for (int v = 0; v < VECS; ++v) store(row + 4 * v, acc[i][v]);
    for (int64_t j = 0; j < cols; ++j) ci[j] = beta != 0.0f ? row[j] + beta * ci[j] : row[j];
  }
}

template <int ROWS>
void tile_width(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float beta, int64_t cols) {
  if (cols > 8) {
    tile<ROWS, 3>(kc, a, b, c, ldc, beta, cols);
  } else if (cols > 4) {
    tile<ROWS, 2>(kc, a, b, c, ldc, beta, cols);
  } else {
    tile<ROWS, 1>(kc, a, b, c, ldc, beta, cols);
  }
}

void micro_3x12(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float beta, int64_t rows,
                int64_t cols) {
  switch (rows) {
    case 1: return tile_width<1>(kc, a, b, c, ldc, beta, cols);
    case 2: return tile_width<2>(kc, a, b, c, ldc, beta, cols);
    default: return tile_width<3>(kc, a, b, c, ldc, beta, cols);
  }
}

const KernelSet kPortable{
    "portable", MR, NR, pack_a_panels<MR>, pack_b_panels<NR>, micro_3x12, /*micro_strided_a=*/nullptr, inner_product_portable,
    /*inner_product_rows=*/8, /*inner_product_outputs=*/1024,
};

}  // namespace

const KernelSet& kernel_set_portable() { return kPortable; }

}  // namespace dlcb::gemm
