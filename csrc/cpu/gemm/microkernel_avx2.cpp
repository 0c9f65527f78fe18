// AVX2 micro-kernel: a 6 x 16 block of C in 12 ymm accumulators (16 registers in all: 12
// accumulators, 2 for B, 1 broadcast of A), the classic Haswell-era shape.
#include <immintrin.h>

#include "gemm/gemm.h"
#include "gemm/pack.h"

namespace dlcb::gemm {
namespace {

constexpr int64_t MR = 6;
constexpr int64_t NR = 16;

void micro_6x16(int64_t kc, const float* __restrict a, const float* __restrict b, float* c,
                int64_t ldc, float beta, int64_t rows, int64_t cols) {
  __m256 acc[MR][2];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();

  for (int64_t p = 0; p < kc; ++p) {
    const __m256 b0 = _mm256_load_ps(b);
    const __m256 b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
      acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
    }
    a += MR;
    b += NR;
  }

  if (rows == MR && cols == NR) {
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      float* ci = c + i * ldc;
      __m256 r0 = acc[i][0], r1 = acc[i][1];
      if (beta != 0.0f) {
        const __m256 vbeta = _mm256_set1_ps(beta);
        r0 = _mm256_fmadd_ps(vbeta, _mm256_loadu_ps(ci), r0);
        r1 = _mm256_fmadd_ps(vbeta, _mm256_loadu_ps(ci + 8), r1);
      }
      _mm256_storeu_ps(ci, r0);
      _mm256_storeu_ps(ci + 8, r1);
    }
    return;
  }
  // Edge tile: spill the accumulators and copy the part inside C.
  alignas(32) float tile[MR][NR];
  for (int i = 0; i < MR; ++i) {
    _mm256_store_ps(tile[i], acc[i][0]);
    _mm256_store_ps(tile[i] + 8, acc[i][1]);
  }
  for (int64_t i = 0; i < rows; ++i) {
    float* ci = c + i * ldc;
    for (int64_t j = 0; j < cols; ++j) ci[j] = beta != 0.0f ? tile[i][j] + beta * ci[j] : tile[i][j];
  }
}

const KernelSet kAvx2{
    "avx2", MR, NR,
    /*kc=*/256, /*mc=*/1008, /*nc=*/512,
    pack_a_panel<MR>, pack_b_panel<NR>, micro_6x16, /*micro_strided_a=*/nullptr,
};

}  // namespace

const KernelSet* kernel_set_avx2() { return &kAvx2; }

}  // namespace dlcb::gemm
