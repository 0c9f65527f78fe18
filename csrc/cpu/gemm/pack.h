#pragma once
// Packing of A and B into the micro-kernel's order. Included by each ISA's translation unit so
// the compiler vectorizes the copies for that ISA. The layouts:
//   A panel: dst[p * MR + i] = alpha * A(i, p)   (MR rows interleaved per k step)
//   B panel: dst[p * NR + j] = B(p, j)           (NR columns contiguous per k step)
// Rows/columns beyond the matrix edge are zero, so the micro-kernel never branches on them.
#include <cstdint>
#include <cstring>

namespace dlcb::gemm {

template <int64_t MR>
void pack_a_panel(int64_t rows, int64_t kc, const float* src, int64_t rs, int64_t cs, float alpha,
                  float* dst) {
  if (rs == 1 && rows == MR) {
    // Column-major source (A transposed): each k step is MR contiguous floats.
    for (int64_t p = 0; p < kc; ++p) {
      const float* s = src + p * cs;
      float* d = dst + p * MR;
      for (int64_t i = 0; i < MR; ++i) d[i] = alpha * s[i];
    }
    return;
  }
  if (cs == 1 && rows == MR) {
    // Row-major source: transpose MR rows in blocks of 8 k steps so every source row is read
    // sequentially and the writes stay in one cache-resident block.
    int64_t p = 0;
    for (; p + 8 <= kc; p += 8) {
      for (int64_t i = 0; i < MR; ++i) {
        const float* s = src + i * rs + p;
        for (int64_t q = 0; q < 8; ++q) dst[(p + q) * MR + i] = alpha * s[q];
      }
    }
    for (; p < kc; ++p)
      for (int64_t i = 0; i < MR; ++i) dst[p * MR + i] = alpha * src[i * rs + p];
    return;
  }
  for (int64_t p = 0; p < kc; ++p) {
    float* d = dst + p * MR;
    int64_t i = 0;
    for (; i < rows; ++i) d[i] = alpha * src[i * rs + p * cs];
    for (; i < MR; ++i) d[i] = 0.0f;
  }
}

template <int64_t NR>
void pack_b_panel(int64_t cols, int64_t kc, const float* src, int64_t rs, int64_t cs, float* dst) {
  if (cs == 1 && cols == NR) {
    // Row-major source: each k step is NR contiguous floats.
    for (int64_t p = 0; p < kc; ++p) std::memcpy(dst + p * NR, src + p * rs, NR * sizeof(float));
    return;
  }
  if (rs == 1 && cols == NR) {
    // Column-major source (B transposed): read each column sequentially, 8 k steps at a time.
    int64_t p = 0;
    for (; p + 8 <= kc; p += 8) {
      for (int64_t j = 0; j < NR; ++j) {
        const float* s = src + j * cs + p;
        for (int64_t q = 0; q < 8; ++q) dst[(p + q) * NR + j] = s[q];
      }
    }
    for (; p < kc; ++p)
      for (int64_t j = 0; j < NR; ++j) dst[p * NR + j] = src[j * cs + p];
    return;
  }
  for (int64_t p = 0; p < kc; ++p) {
    float* d = dst + p * NR;
    int64_t j = 0;
    for (; j < cols; ++j) d[j] = src[p * rs + j * cs];
    for (; j < NR; ++j) d[j] = 0.0f;
  }
}

}  // namespace dlcb::gemm
