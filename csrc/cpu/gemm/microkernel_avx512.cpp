// AVX-512 micro-kernel: a 14 x 32 block of C held in 28 zmm accumulators.
//
// Per k step it loads two 16-float vectors of B and broadcasts 14 elements of A straight from
// memory into the FMAs (embedded broadcast), so 28 FMAs share 2 full loads. 28 accumulators
// cover the FMA latency (4 cycles on Zen4 / Skylake) many times over and leave 2 registers
// for B. Zen4 executes each 512-bit FMA on its two 256-bit pipes: 32 FP32 FLOP per cycle.
//
// Narrow tiles (at most 16 or 8 columns: the N edge, or a skinny problem such as DeepBench's
// batch-8/16 GEMMs) run a 14 x 16 (zmm) or 14 x 8 (ymm) body instead, so no FMA is spent on
// the zero padding of the B panel.
//
// The same bodies also read A in place (micro_strided_a): for a row-major A the broadcasts come
// from 14 rows at once, which spares skinny problems the transpose that packing A would be.
#include <immintrin.h>

#include "gemm/gemm.h"
#include "gemm/inner_product_isa.h"
#include "gemm/pack.h"
#include "gemm/pack_isa.h"

namespace dlcb::gemm {
namespace {

constexpr int64_t MR = 14;
constexpr int64_t NR = 32;

// Where the 14 elements of A for one k step come from: a packed panel (k steps MR apart,
// rows adjacent) or A itself (any row and k strides). Two base pointers, 7 rows apart, keep
// every row address a base plus a multiple of the row stride that fits x86 addressing.
struct PackedA {
  const float* a;
  float at(int i) const { return a[i]; }
  void next() { a += MR; }
};

struct StridedA {
  const float* top;
  const float* bottom;
  int64_t row_stride, k_stride;
  float at(int i) const { return i < 7 ? top[i * row_stride] : bottom[(i - 7) * row_stride]; }
  void next() {
    top += k_stride;
    bottom += k_stride;
  }
};

__mmask16 column_mask(int64_t cols) {
  if (cols >= 16) return 0xFFFF;
  if (cols <= 0) return 0;
  return static_cast<__mmask16>((1u << cols) - 1);
}

// C is read (beta != 0) and written only after the k loop; fetching its lines first hides the
// miss latency behind the whole loop instead of stalling on it at the end.
void prefetch_c(const float* c, int64_t ldc, int64_t rows, int64_t width) {
#pragma GCC unroll 14
  for (int i = 0; i < MR; ++i) {
    if (i >= rows) break;
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + width - 1), _MM_HINT_T0);
  }
}

// ROWS x (16 * VECS) tile (ROWS <= 14 rows of the 14-row A panel), VECS = 1 or 2 zmm per
// row. C = alpha * A B + beta * C.
template <int VECS, int ROWS, class ASource>
void tile_zmm(int64_t kc, ASource a, const float* __restrict b, float* c, int64_t ldc, float alpha,
              float beta, int64_t rows, int64_t cols) {
  prefetch_c(c, ldc, rows, 16 * VECS);
  __m512 acc[ROWS][VECS];
#pragma GCC unroll 14
  for (int i = 0; i < ROWS; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < VECS; ++v) acc[i][v] = _mm512_setzero_ps();

  for (int64_t p = 0; p < kc; ++p) {
    __m512 bv[VECS];
#pragma GCC unroll 2
    for (int v = 0; v < VECS; ++v) bv[v] = _mm512_load_ps(b + 16 * v);
    _mm_prefetch(reinterpret_cast<const char*>(b + 8 * NR), _MM_HINT_T0);
#pragma GCC unroll 14
    for (int i = 0; i < ROWS; ++i) {
      const __m512 ai = _mm512_set1_ps(a.at(i));
#pragma GCC unroll 2
      for (int v = 0; v < VECS; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
    }
    a.next();
    b += NR;
  }

  // Edge tiles store through column masks and skip absent rows.
  __mmask16 mask[VECS];
#pragma GCC unroll 2
  for (int v = 0; v < VECS; ++v) mask[v] = column_mask(cols - 16 * v);
  const __m512 valpha = _mm512_set1_ps(alpha), vbeta = _mm512_set1_ps(beta);
#pragma GCC unroll 14
  for (int i = 0; i < ROWS; ++i) {
    if (i >= rows) break;
    float* ci = c + i * ldc;
#pragma GCC unroll 2
    for (int v = 0; v < VECS; ++v) {
      __m512 r = alpha == 1.0f ? acc[i][v] : _mm512_mul_ps(valpha, acc[i][v]);
      if (beta != 0.0f) r = _mm512_fmadd_ps(vbeta, _mm512_maskz_loadu_ps(mask[v], ci + 16 * v), r);
      _mm512_mask_storeu_ps(ci + 16 * v, mask[v], r);
    }
  }
}

// 14 x 8 tile in ymm registers: Zen4 and Intel run two 256-bit FMAs per cycle, so a narrow
// tile keeps the full FLOP rate with half-width vectors.
template <int ROWS, class ASource>
void tile_ymm8(int64_t kc, ASource a, const float* __restrict b, float* c, int64_t ldc, float alpha,
               float beta, int64_t rows, int64_t cols) {
  prefetch_c(c, ldc, rows, 8);
  __m256 acc[ROWS];
#pragma GCC unroll 14
  for (int i = 0; i < ROWS; ++i) acc[i] = _mm256_setzero_ps();
  for (int64_t p = 0; p < kc; ++p) {
    const __m256 bv = _mm256_load_ps(b);
#pragma GCC unroll 14
    for (int i = 0; i < ROWS; ++i) acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(a.at(i)), bv, acc[i]);
    a.next();
    b += NR;
  }
  const __mmask8 mask = static_cast<__mmask8>(cols >= 8 ? 0xFF : (1u << cols) - 1);
  const __m256 valpha = _mm256_set1_ps(alpha), vbeta = _mm256_set1_ps(beta);
#pragma GCC unroll 14
  for (int i = 0; i < ROWS; ++i) {
    if (i >= rows) break;
    float* ci = c + i * ldc;
    __m256 r = alpha == 1.0f ? acc[i] : _mm256_mul_ps(valpha, acc[i]);
    if (beta != 0.0f) r = _mm256_fmadd_ps(vbeta, _mm256_maskz_loadu_ps(mask, ci), r);
    _mm256_mask_storeu_ps(ci, mask, r);
  }
}

template <int ROWS, class ASource>
void run_tile_rows(int64_t kc, ASource a, const float* b, float* c, int64_t ldc, float alpha, float beta,
                   int64_t rows, int64_t cols) {
  if (cols > 16) {
    tile_zmm<2, ROWS>(kc, a, b, c, ldc, alpha, beta, rows, cols);
  } else if (cols > 8) {
    tile_zmm<1, ROWS>(kc, a, b, c, ldc, alpha, beta, rows, cols);
  } else {
    tile_ymm8<ROWS>(kc, a, b, c, ldc, alpha, beta, rows, cols);
  }
}

// Edge blocks of at most 8 rows (e.g. the last of M = 64 = 4 x 14 + 8, a convolution's 64
// output channels) run an 8-row body: 16 FMAs per k step instead of 28 on zero padding.
template <class ASource>
void run_tile(int64_t kc, ASource a, const float* b, float* c, int64_t ldc, float alpha, float beta,
              int64_t rows, int64_t cols) {
  if (rows <= 8) {
    run_tile_rows<8>(kc, a, b, c, ldc, alpha, beta, rows, cols);
  } else {
    run_tile_rows<MR>(kc, a, b, c, ldc, alpha, beta, rows, cols);
  }
}

void micro_14x32(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float beta,
                 int64_t rows, int64_t cols) {
  run_tile(kc, PackedA{a}, b, c, ldc, 1.0f, beta, rows, cols);  // alpha is folded into packed A
}

void micro_14x32_strided_a(int64_t kc, const float* a, int64_t row_stride, int64_t k_stride,
                           const float* b, float* c, int64_t ldc, float alpha, float beta, int64_t cols) {
  run_tile(kc, StridedA{a, a + 7 * row_stride, row_stride, k_stride}, b, c, ldc, alpha, beta, MR, cols);
}

const KernelSet kAvx512{
    "avx512", MR, NR, pack_a_avx512, pack_b_panels<NR>, micro_14x32, micro_14x32_strided_a, inner_product_avx512,
    /*inner_product_rows=*/8, /*inner_product_outputs=*/1024,
};

}  // namespace

const KernelSet* kernel_set_avx512() { return &kAvx512; }

}  // namespace dlcb::gemm
