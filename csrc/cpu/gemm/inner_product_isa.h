#pragma once
// Small GEMMs of k-contiguous operands as blocked dot products, per ISA (inner_product.h): the
// KernelSet::inner_product of each kernel set. a: m rows, element (i, p) at a[i * lda + p];
// b: n columns, element (p, j) at b[j * ldb + p]; C = alpha A B + beta C, row-major, ldc.
#include <cstdint>

namespace dlcb::gemm {

void inner_product_portable(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                            int64_t ldb, float* c, int64_t ldc, float alpha, float beta);
void inner_product_avx2(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                        int64_t ldb, float* c, int64_t ldc, float alpha, float beta);
void inner_product_avx512(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                          int64_t ldb, float* c, int64_t ldc, float alpha, float beta);

}  // namespace dlcb::gemm
