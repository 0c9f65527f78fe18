// Small k-contiguous GEMMs as blocked dot products (inner_product.h), AVX2: 2 x 4 dot products, 8 accumulators + 2 A + 1 B of the 16 ymm registers.
#include "gemm/inner_product.h"
#include "gemm/inner_product_isa.h"

namespace dlcb::gemm {

void inner_product_avx2(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                        float* c, int64_t ldc, float alpha, float beta) {
  typedef float vec __attribute__((vector_size(32)));
  inner_product_detail::gemm<vec, 2, 4>(m, n, k, a, lda, b, ldb, c, ldc, alpha, beta);
}

}  // namespace dlcb::gemm
