// Small k-contiguous GEMMs as blocked dot products (inner_product.h), 16-byte vectors (SSE2 on x86, NEON on ARM): 2 x 4 dot products, 8 accumulators of 16.
#include "gemm/inner_product.h"
#include "gemm/inner_product_isa.h"

namespace dlcb::gemm {

void inner_product_portable(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                        float* c, int64_t ldc, float alpha, float beta) {
  typedef float vec __attribute__((vector_size(16)));
  inner_product_detail::gemm<vec, 2, 4>(m, n, k, a, lda, b, ldb, c, ldc, alpha, beta);
}

}  // namespace dlcb::gemm
