#pragma once
// Small GEMMs whose operands both run along k (A row-major, B column-major: x W^T of a small
// fully-connected layer, e.g. a 10-class head at batch 8) computed as dot products of A's rows
// with B's columns, vectorized along k, with no packing. Packing copies (m + n) k floats, about
// as much work as the m n k multiply-adds when m and n are both small; here every operand
// element is read from where it lies, a block of rows x cols dot products at a time (each A
// and B vector load feeds several accumulators), and the lanes are summed once at the end.
// Instantiated per ISA with GCC vector types (inner_product_{portable,avx2,avx512}.cpp), so
// each is compiled with its own instruction set.
#include <cstdint>
#include <cstring>

namespace dlcb::gemm::inner_product_detail {

template <class V>
inline V load(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);  // unaligned; one instruction
  return v;
}

template <class V>
inline float lane_sum(V v) {
  constexpr int W = sizeof(V) / sizeof(float);
  float s = 0.0f;
  for (int l = 0; l < W; ++l) s += v[l];
  return s;
}

// C[0:ROWS, 0:COLS] = alpha * A B + beta * C for one register block.
template <class V, int ROWS, int COLS>
void block(int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc,
           float alpha, float beta) {
  constexpr int W = sizeof(V) / sizeof(float);
  V acc[ROWS][COLS] = {};
  int64_t p = 0;
  for (; p + W <= k; p += W) {
    V av[ROWS];
    for (int i = 0; i < ROWS; ++i) av[i] = load<V>(a + i * lda + p);
    for (int j = 0; j < COLS; ++j) {
      const V bv = load<V>(b + j * ldb + p);
      for (int i = 0; i < ROWS; ++i) acc[i][j] += av[i] * bv;
    }
  }
  for (int i = 0; i < ROWS; ++i)
    for (int j = 0; j < COLS; ++j) {
      float s = lane_sum(acc[i][j]);
      for (int64_t q = p; q < k; ++q) s += a[i * lda + q] * b[j * ldb + q];
      float& out = c[i * ldc + j];
      out = beta == 0.0f ? alpha * s : alpha * s + beta * out;  // C not read when beta == 0
    }
}

// Blocks of ROWS x COLS dot products, or taller ones (up to 8 rows) where fewer columns are left
// (a GEMV): the same number of accumulators, each B vector load shared by more rows of A. Edges
// take smaller instantiations.
template <class V, int ROWS, int COLS>
void gemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
          int64_t ldc, float alpha, float beta) {
  using Fn = void (*)(int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t, float, float);
  static_assert(ROWS <= 8 && COLS <= 4, "the block table covers up to 8 x 4");
  static constexpr Fn kBlocks[8][4] = {
      {block<V, 1, 1>, block<V, 1, 2>, block<V, 1, 3>, block<V, 1, 4>},
      {block<V, 2, 1>, block<V, 2, 2>, block<V, 2, 3>, block<V, 2, 4>},
      {block<V, 3, 1>, block<V, 3, 2>, block<V, 3, 3>, block<V, 3, 4>},
      {block<V, 4, 1>, block<V, 4, 2>, block<V, 4, 3>, block<V, 4, 4>},
      {block<V, 5, 1>, block<V, 5, 2>, nullptr, nullptr},
      {block<V, 6, 1>, block<V, 6, 2>, nullptr, nullptr},
      {block<V, 7, 1>, block<V, 7, 2>, nullptr, nullptr},
      {block<V, 8, 1>, block<V, 8, 2>, nullptr, nullptr},
  };
  // Columns outermost: each block of B's columns is read once and meets every row of A while it
  // is in L1.
  for (int64_t j = 0; j < n; j += COLS) {
    const int64_t cols = n - j < COLS ? n - j : COLS;
    const int64_t height = cols > 2 ? ROWS : (ROWS * COLS / cols < 8 ? ROWS * COLS / cols : 8);
    for (int64_t i = 0; i < m; i += height) {
      const int64_t rows = m - i < height ? m - i : height;
      kBlocks[rows - 1][cols - 1](k, a + i * lda, lda, b + j * ldb, ldb, c + i * ldc + j, ldc, alpha, beta);
    }
  }
}

}  // namespace dlcb::gemm::inner_product_detail
