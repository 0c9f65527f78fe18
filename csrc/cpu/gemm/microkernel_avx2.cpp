// AVX2 + FMA micro-kernel: a 6 x 16 block of C in 12 ymm accumulators, the register tile of
// the Haswell-era BLAS kernels (16 registers: 12 accumulators, 2 for the B row, 1 broadcast).
//
// Per k step it loads one 16-float row of B (two ymm) and broadcasts 6 elements of A: 12 FMAs
// for 8 loads, within the 2 loads + 2 FMAs per cycle of Haswell ... Zen 4. Every accumulator
// is touched once per step, so 12 independent chains cover the FMA latency (4-5 cycles) x 2
// pipes.
//
// Edge tiles are specialised by row count (1..6) and by width (8 or 16 floats), so no FMA is
// spent on zero padding and the accumulators never leave registers: with a run-time row loop
// over the accumulator array, GCC keeps a copy of it on the stack and stores all 12 every k
// step, which halves the speed.
//
// The same bodies read A in place for the narrow-N schedule (micro_strided_a).
#include <immintrin.h>

#include "gemm/gemm.h"
#include "gemm/inner_product_isa.h"
#include "gemm/pack.h"
#include "gemm/pack_isa.h"

namespace dlcb::gemm {
namespace {

constexpr int64_t MR = 6;
constexpr int64_t NR = 16;

// The packed panel is in L1 when the GEMM driver calls, but the RNN steps stream W_hh's panels
// straight from L3 or memory (a 1536-unit LSTM's are 38 MB): fetching 64 k steps (1.5 KB) ahead
// made those 12-16 % faster (Zen 4, alternating processes) and changed no GEMM by more than
// the noise. The AVX-512 kernel, whose 14-row panels are longer streams, gained nothing.
struct PackedA {
  const float* a;
  const float* at(int i) const { return a + i; }
  void next() { a += MR; }
  void prefetch() const { _mm_prefetch(reinterpret_cast<const char*>(a + 64 * MR), _MM_HINT_T0); }
};

// A read where it is: element (i, p) at a[i * row_stride + p * k_stride]. Two base pointers
// three rows apart keep every address a base plus 0, 1 or 2 row strides.
struct StridedA {
  const float* top;
  const float* bottom;
  int64_t row_stride, k_stride;
  const float* at(int i) const { return i < 3 ? top + i * row_stride : bottom + (i - 3) * row_stride; }
  void prefetch() const {}
  void next() {
    top += k_stride;
    bottom += k_stride;
  }
};

// Lanes j < cols of 8 enabled, as the sign bits vmaskmovps reads.
__m256i lane_mask(int64_t cols) {
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(cols < 0 ? 0 : cols > 8 ? 8 : cols)), lanes);
}

// ROWS x (8 * VECS) tile: C = alpha * A B + beta * C, columns beyond `cols` untouched.
template <int ROWS, int VECS, class ASource>
void tile(int64_t kc, ASource a, const float* __restrict b, float* c, int64_t ldc, float alpha, float beta,
          int64_t cols) {
  // C is read and written only after the k loop: fetching its lines now hides the misses.
#pragma GCC unroll 6
  for (int i = 0; i < ROWS; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 8 * VECS - 1), _MM_HINT_T0);
  }
  __m256 acc[ROWS][VECS];
#pragma GCC unroll 6
  for (int i = 0; i < ROWS; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < VECS; ++v) acc[i][v] = _mm256_setzero_ps();

#pragma GCC unroll 4
  for (int64_t p = 0; p < kc; ++p) {
    __m256 bv[VECS];
#pragma GCC unroll 2
    for (int v = 0; v < VECS; ++v) bv[v] = _mm256_load_ps(b + 8 * v);
    // The B panel streams from L2; one line per k step, fetched 8 steps ahead.
    _mm_prefetch(reinterpret_cast<const char*>(b + 8 * NR), _MM_HINT_T0);
    a.prefetch();
#pragma GCC unroll 6
    for (int i = 0; i < ROWS; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a.at(i));
#pragma GCC unroll 2
      for (int v = 0; v < VECS; ++v) acc[i][v] = _mm256_fmadd_ps(ai, bv[v], acc[i][v]);
    }
    a.next();
    b += NR;
  }

  const __m256 valpha = _mm256_set1_ps(alpha), vbeta = _mm256_set1_ps(beta);
  const bool full = cols == 8 * VECS;
  __m256i mask[VECS];
#pragma GCC unroll 2
  for (int v = 0; v < VECS; ++v) mask[v] = lane_mask(cols - 8 * v);
#pragma GCC unroll 6
  for (int i = 0; i < ROWS; ++i) {
    float* ci = c + i * ldc;
#pragma GCC unroll 2
    for (int v = 0; v < VECS; ++v) {
      __m256 r = alpha == 1.0f ? acc[i][v] : _mm256_mul_ps(valpha, acc[i][v]);
      if (full) {
        if (beta != 0.0f) r = _mm256_fmadd_ps(vbeta, _mm256_loadu_ps(ci + 8 * v), r);
        _mm256_storeu_ps(ci + 8 * v, r);
      } else {
        if (beta != 0.0f) r = _mm256_fmadd_ps(vbeta, _mm256_maskload_ps(ci + 8 * v, mask[v]), r);
        _mm256_maskstore_ps(ci + 8 * v, mask[v], r);
      }
    }
  }
}

template <int ROWS, class ASource>
void tile_width(int64_t kc, ASource a, const float* b, float* c, int64_t ldc, float alpha, float beta,
                int64_t cols) {
  if (cols > 8) {
    tile<ROWS, 2>(kc, a, b, c, ldc, alpha, beta, cols);
  } else {
    tile<ROWS, 1>(kc, a, b, c, ldc, alpha, beta, cols);
  }
}

template <class ASource>
void run_tile(int64_t kc, ASource a, const float* b, float* c, int64_t ldc, float alpha, float beta,
              int64_t rows, int64_t cols) {
  switch (rows) {
    case 1: return tile_width<1>(kc, a, b, c, ldc, alpha, beta, cols);
    case 2: return tile_width<2>(kc, a, b, c, ldc, alpha, beta, cols);
    case 3: return tile_width<3>(kc, a, b, c, ldc, alpha, beta, cols);
    case 4: return tile_width<4>(kc, a, b, c, ldc, alpha, beta, cols);
    case 5: return tile_width<5>(kc, a, b, c, ldc, alpha, beta, cols);
    default: return tile_width<6>(kc, a, b, c, ldc, alpha, beta, cols);
  }
}

void micro_6x16(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float beta, int64_t rows,
                int64_t cols) {
  run_tile(kc, PackedA{a}, b, c, ldc, 1.0f, beta, rows, cols);  // alpha is folded into packed A
}

void micro_6x16_strided_a(int64_t kc, const float* a, int64_t row_stride, int64_t k_stride, const float* b,
                          float* c, int64_t ldc, float alpha, float beta, int64_t cols) {
  run_tile(kc, StridedA{a, a + 3 * row_stride, row_stride, k_stride}, b, c, ldc, alpha, beta, MR, cols);
}

const KernelSet kAvx2{
    "avx2", MR, NR, pack_a_avx2, pack_b_panels<NR>, micro_6x16, micro_6x16_strided_a, inner_product_avx2,
    /*inner_product_rows=*/4, /*inner_product_outputs=*/256,
};

}  // namespace

const KernelSet* kernel_set_avx2() { return &kAvx2; }

}  // namespace dlcb::gemm
