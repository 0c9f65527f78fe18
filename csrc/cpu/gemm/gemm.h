#pragma once
// Single-precision GEMM, Goto/BLIS style: C = alpha * A * B + beta * C, row-major C.
//
// A (m x k) and B (k x n) are read through arbitrary element strides, so transposed and
// non-contiguous operands need no copy: the packing routines absorb the layout.
#include <cstdint>

namespace dlcb::gemm {

struct StridedMatrix {
  const float* data;
  int64_t row_stride;  // elements between (i, j) and (i + 1, j)
  int64_t col_stride;  // elements between (i, j) and (i, j + 1)
};

// B given by a function instead of a matrix in memory (implicit GEMM: a convolution's im2col
// matrix is packed panel by panel straight from the image and never materialized).
struct PanelSource {
  // Writes rows k0 .. k0+kc-1, columns j0 .. j0+cols-1 (cols <= nr) of the logical B into
  // dst[p * nr + j], columns cols .. nr-1 zero: the layout of KernelSet::pack_b. Called from
  // OpenMP worker threads, concurrently, so it must only read ctx; it must not throw.
  using Fn = void (*)(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t cols, int64_t nr, float* dst);
  Fn pack;
  const void* ctx;
};

struct SgemmArgs {
  int64_t m, n, k;
  StridedMatrix a;  // logical m x k
  StridedMatrix b;  // logical k x n (ignored when b_source is set)
  float* c;         // m x n, unit column stride
  int64_t ldc;      // elements between rows of C
  float alpha, beta;
  const PanelSource* b_source = nullptr;  // when set, B's panels come from it
  // When set, A's micro-panels come from it (a is ignored): pack(ctx, k0, kc, i0, rows, mr, dst)
  // writes alpha-free rows i0 .. i0+rows-1 (rows <= mr), k steps k0 .. k0+kc-1 of the logical A
  // into dst[p * mr + i], rows rows .. mr-1 zero: the layout of KernelSet::pack_a. The driver
  // applies alpha. Same threading rules as b_source.
  const PanelSource* a_source = nullptr;
  // When set (and b_source is not), B already in KernelSet::pack_b's layout, whole: columns
  // j0 .. j0+nr-1 (j0 a multiple of nr, missing columns zero) are k x nr floats at
  // b_packed + (j0 / nr) * k * nr; 64-byte aligned. The narrow-N schedule reads it in place.
  const float* b_packed = nullptr;
};

// One instruction set's packing routines and micro-kernel. Its cache blocking is not part of it:
// that depends on the CPU's caches as much as on the register block (see blocking.h).
struct KernelSet {
  const char* isa;
  int64_t mr, nr;  // register block of the micro-kernel
  // Packs rows x kc of A into ceil(rows / mr) micro-panels, panel q at dst + q * mr * kc in
  // [kc][mr] order, scaled by alpha, rows past `rows` zero. Several panels at once let a
  // column-major A be read a whole run of rows per k step instead of mr floats.
  void (*pack_a)(int64_t rows, int64_t kc, const float* src, int64_t rs, int64_t cs, float alpha,
                 float* dst);
  // Packs kc x cols of B into ceil(cols / nr) micro-panels, panel q at dst + q * nr * kc in
  // [kc][nr] order, columns past `cols` zero.
  void (*pack_b)(int64_t cols, int64_t kc, const float* src, int64_t rs, int64_t cs, float* dst);
  // C[0:rows, 0:cols] = A_panel * B_panel + beta * C (C not read when beta == 0).
  void (*micro)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float beta,
                int64_t rows, int64_t cols);
  // Optional (nullptr when absent): the micro-kernel reading a full mr-row block of A in place,
  // element (i, p) at a[i * row_stride + p * k_stride]; C[0:mr, 0:cols] = alpha * A B + beta * C.
  void (*micro_strided_a)(int64_t kc, const float* a, int64_t row_stride, int64_t k_stride,
                          const float* b, float* c, int64_t ldc, float alpha, float beta, int64_t cols);
  // Small GEMMs whose A rows and B columns both run along k, as dot products without packing
  // (inner_product_isa.h).
  void (*inner_product)(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                        int64_t ldb, float* c, int64_t ldc, float alpha, float beta);
  // The driver takes inner_product when m <= inner_product_rows or m * n <= inner_product_outputs
  // (and A fits half of L2), where, measured per ISA, it beats packing; and for n <= 4 (GEMV).
  int64_t inner_product_rows, inner_product_outputs;
};

const KernelSet* kernel_set_avx512();   // nullptr when not compiled for this target
const KernelSet* kernel_set_avx2();     // nullptr when not compiled for this target
const KernelSet& kernel_set_portable();

// The named kernel set ("avx512", "avx2", "portable"), or for "auto" (or nullptr) the one the
// environment variable DLCB_ISA names, else the best this CPU runs; nullptr when the name is
// unknown or the CPU cannot run it.
const KernelSet* select_kernel_set(const char* isa);

// The loop nest around the micro-kernel (see blocking_driver.cpp).
// kInnerProduct: dot products without packing (inner_product.h), chosen by plan_for only.
enum class Schedule { kAuto, kBlocked, kNarrowN, kNarrowM, kInnerProduct };

// The schedule kAuto picks for an m x n result, and a schedule's name.
Schedule choose_schedule(const KernelSet& ks, int64_t m, int64_t n);
const char* schedule_name(Schedule s);

// Cache blocks to use instead of the derived ones (0 keeps the derived one) and a forced
// schedule; for tuning and for testing every schedule.
struct Blocking {
  int64_t kc = 0, mc = 0, nc = 0;
  Schedule schedule = Schedule::kAuto;
};

// What a call runs: the schedule and the cache blocks it uses (upper bounds; the driver splits
// each dimension into equal blocks no larger than these).
struct Plan {
  Schedule schedule;
  int64_t kc, mc, nc;
  bool transposed = false;  // C^T = B^T A^T run instead, with this plan for the n x m problem
};
// The loop nest and blocks for an m x n x k problem, whatever the operands' layout.
Plan plan(const KernelSet& ks, int64_t m, int64_t n, int64_t k, Blocking overrides = {});
// What sgemm runs for these arguments: plan(), or for some layouts the inner-product kernel or
// the transposed problem (only args' shapes, strides and sources are read).
Plan plan_for(const KernelSet& ks, const SgemmArgs& args, Blocking overrides = {});

// Runs the blocked GEMM on `threads` OpenMP threads (>= 1). Returns the thread count used.
int sgemm(const KernelSet& ks, const SgemmArgs& args, int threads, Blocking blocking = {});

}  // namespace dlcb::gemm
