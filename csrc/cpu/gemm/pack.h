#pragma once
// Packing of A and B into the micro-kernel's order. Included by each ISA's translation unit so
// the compiler vectorizes the copies for that ISA. The layouts, per micro-panel:
//   A panel: dst[p * MR + i] = alpha * A(i, p)   (MR rows interleaved per k step)
//   B panel: dst[p * NR + j] = B(p, j)           (NR columns contiguous per k step)
// Rows/columns beyond the matrix edge are zero, so the micro-kernel never branches on them.
// One call packs any number of consecutive micro-panels (panel q at dst + q * MR * kc, or
// q * NR * kc), so the source can be walked in the order its layout favours.
#include <algorithm>
#include <cstdint>
#include <cstring>

namespace dlcb::gemm {

// Walking a matrix across its long stride touches one or two new cache lines per step, each on
// another page: a pattern no hardware prefetcher follows, so the copy waits on one miss after
// another. Prefetching this many steps ahead keeps misses in flight.
constexpr int64_t kPrefetchSteps = 16;

// Prefetches every cache line of the run of `len` floats at p.
inline void prefetch_run(const float* p, int64_t len) {
  for (int64_t i = 0; i < len; i += 16) __builtin_prefetch(p + i);
  __builtin_prefetch(p + len - 1);
}

// One A micro-panel (rows <= MR) from a row-major or general source.
template <int64_t MR>
void pack_a_micro_panel(int64_t rows, int64_t kc, const float* src, int64_t rs, int64_t cs, float alpha,
                        float* dst) {
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

// A column-major source (A transposed): each k step of all the panels is one contiguous run of
// `rows` floats, read in one sweep per k step instead of MR floats per panel.
template <int64_t MR>
void pack_a_column_major(int64_t rows, int64_t kc, const float* src, int64_t cs, float alpha, float* dst) {
  const int64_t panels = (rows + MR - 1) / MR;
  for (int64_t p = 0; p < kc; ++p) {
    const float* s = src + p * cs;
    prefetch_run(s + kPrefetchSteps * cs, rows);
    for (int64_t q = 0; q < panels; ++q) {
      float* d = dst + q * MR * kc + p * MR;
      const int64_t n = std::min(MR, rows - q * MR);
      if (n == MR) {
        for (int64_t i = 0; i < MR; ++i) d[i] = alpha * s[q * MR + i];
      } else {
        for (int64_t i = 0; i < n; ++i) d[i] = alpha * s[q * MR + i];
        for (int64_t i = n; i < MR; ++i) d[i] = 0.0f;
      }
    }
  }
}

template <int64_t MR>
void pack_a_panels(int64_t rows, int64_t kc, const float* src, int64_t rs, int64_t cs, float alpha, float* dst) {
  if (rs == 1 && rows > 1) {
    pack_a_column_major<MR>(rows, kc, src, cs, alpha, dst);
    return;
  }
  for (int64_t i0 = 0; i0 < rows; i0 += MR)
    pack_a_micro_panel<MR>(std::min(MR, rows - i0), kc, src + i0 * rs, rs, cs, alpha, dst + i0 * kc);
}

template <int64_t NR>
void pack_b_panels(int64_t cols, int64_t kc, const float* src, int64_t rs, int64_t cs, float* dst) {
  const int64_t panels = (cols + NR - 1) / NR;
  if (cs == 1) {
    // Row-major source: each k step of all the panels is one run of `cols` floats, read in one
    // sweep (rows of a few panels are too short for the hardware prefetcher on their own).
    for (int64_t p = 0; p < kc; ++p) {
      const float* s = src + p * rs;
      prefetch_run(s + kPrefetchSteps * rs, cols);
      for (int64_t q = 0; q < panels; ++q) {
        float* d = dst + q * NR * kc + p * NR;
        const int64_t n = std::min(NR, cols - q * NR);
        if (n == NR) {
          std::memcpy(d, s + q * NR, NR * sizeof(float));
        } else {
          std::memcpy(d, s + q * NR, n * sizeof(float));
          std::memset(d + n, 0, (NR - n) * sizeof(float));
        }
      }
    }
    return;
  }
  for (int64_t q = 0; q < panels; ++q) {
    const int64_t n = std::min(NR, cols - q * NR);
    const float* s = src + q * NR * cs;
    float* d = dst + q * NR * kc;
    if (rs == 1 && n == NR) {
      // Column-major source (B transposed): read each column sequentially, 8 k steps at a time.
      int64_t p = 0;
      for (; p + 8 <= kc; p += 8) {
        for (int64_t j = 0; j < NR; ++j) {
          const float* sj = s + j * cs + p;
          for (int64_t t = 0; t < 8; ++t) d[(p + t) * NR + j] = sj[t];
        }
      }
      for (; p < kc; ++p)
        for (int64_t j = 0; j < NR; ++j) d[p * NR + j] = s[j * cs + p];
      continue;
    }
    for (int64_t p = 0; p < kc; ++p) {
      float* dp = d + p * NR;
      int64_t j = 0;
      for (; j < n; ++j) dp[j] = s[p * rs + j * cs];
      for (; j < NR; ++j) dp[j] = 0.0f;
    }
  }
}

}  // namespace dlcb::gemm
