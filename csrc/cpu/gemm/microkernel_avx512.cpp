// AVX-512 micro-kernel: a 14 x 32 block of C held in 28 zmm accumulators.
//
// Per k step it loads two 16-float vectors of B and broadcasts 14 elements of A straight from
// memory into the FMAs (embedded broadcast), so 28 FMAs share 2 full loads. 28 accumulators
// cover the FMA latency (4 cycles on Zen4 / Skylake) many times over and leave 2 registers
// for B. Zen4 executes each 512-bit FMA on its two 256-bit pipes: 32 FP32 FLOP per cycle.
#include <immintrin.h>

#include "gemm/gemm.h"
#include "gemm/pack.h"

namespace dlcb::gemm {
namespace {

constexpr int64_t MR = 14;
constexpr int64_t NR = 32;

void micro_14x32(int64_t kc, const float* __restrict a, const float* __restrict b, float* c,
                 int64_t ldc, float beta, int64_t rows, int64_t cols) {
  __m512 acc[MR][2];
#pragma GCC unroll 14
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();

  for (int64_t p = 0; p < kc; ++p) {
    const __m512 b0 = _mm512_load_ps(b);
    const __m512 b1 = _mm512_load_ps(b + 16);
    _mm_prefetch(reinterpret_cast<const char*>(b + 8 * NR), _MM_HINT_T0);
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
    }
    a += MR;
    b += NR;
  }

  // Edge tiles store through column masks and skip absent rows.
  const __mmask16 m0 = cols >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << cols) - 1);
  const __mmask16 m1 = cols >= 32 ? __mmask16(0xFFFF) : cols <= 16 ? 0 : __mmask16((1u << (cols - 16)) - 1);
  const __m512 vbeta = _mm512_set1_ps(beta);
#pragma GCC unroll 14
  for (int i = 0; i < MR; ++i) {
    if (i >= rows) break;
    float* ci = c + i * ldc;
    __m512 r0 = acc[i][0], r1 = acc[i][1];
    if (beta != 0.0f) {
      r0 = _mm512_fmadd_ps(vbeta, _mm512_maskz_loadu_ps(m0, ci), r0);
      r1 = _mm512_fmadd_ps(vbeta, _mm512_maskz_loadu_ps(m1, ci + 16), r1);
    }
    _mm512_mask_storeu_ps(ci, m0, r0);
    _mm512_mask_storeu_ps(ci + 16, m1, r1);
  }
}

const KernelSet kAvx512{
    "avx512", MR, NR,
    /*kc=*/384, /*mc=*/1008, /*nc=*/512,
    pack_a_panel<MR>, pack_b_panel<NR>, micro_14x32,
};

}  // namespace

const KernelSet* kernel_set_avx512() { return &kAvx512; }

}  // namespace dlcb::gemm
