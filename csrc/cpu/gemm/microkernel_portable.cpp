// Portable micro-kernel: a 4 x 16 block in plain C++, for CPUs without AVX2 (and other
// architectures). The fixed-size inner loops let the compiler vectorize with whatever the
// baseline target offers (SSE2 on x86-64, NEON on aarch64).
#include "gemm/gemm.h"
#include "gemm/pack.h"

namespace dlcb::gemm {
namespace {

constexpr int64_t MR = 4;
constexpr int64_t NR = 16;

void micro_4x16(int64_t kc, const float* __restrict a, const float* __restrict b, float* c,
                int64_t ldc, float beta, int64_t rows, int64_t cols) {
  float acc[MR][NR] = {};
  for (int64_t p = 0; p < kc; ++p) {
    for (int64_t i = 0; i < MR; ++i) {
      const float ai = a[p * MR + i];
      for (int64_t j = 0; j < NR; ++j) acc[i][j] += ai * b[p * NR + j];
    }
  }
  for (int64_t i = 0; i < rows; ++i) {
    float* ci = c + i * ldc;
    for (int64_t j = 0; j < cols; ++j) ci[j] = beta != 0.0f ? acc[i][j] + beta * ci[j] : acc[i][j];
  }
}

const KernelSet kPortable{
    "portable", MR, NR,
    /*kc=*/256, /*mc=*/512, /*nc=*/1024,
    pack_a_panel<MR>, pack_b_panel<NR>, micro_4x16, /*micro_strided_a=*/nullptr,
};

}  // namespace

const KernelSet& kernel_set_portable() { return kPortable; }

}  // namespace dlcb::gemm
