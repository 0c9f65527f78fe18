// The padded shifted-window forward (see shifted.h): driver, portable packing, path choice.
#include "conv/shifted.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "conv/parallel.h"
#include "conv/pointwise.h"
#include "conv/scratch.h"

namespace dlcb::conv {

void pack_shifted_a(const void* ctx, int64_t k0, int64_t kc, int64_t i0, int64_t rows, int64_t mr, float* dst) {
  const ShiftedWindow& win = *static_cast<const ShiftedWindow*>(ctx);
  const float* base = win.xp + win.first + i0;
  for (int64_t p = 0; p < kc; ++p) {
    const float* s = base + win.off[k0 + p];
    float* d = dst + p * mr;
    int64_t i = 0;
    for (; i < rows; ++i) d[i] = s[i];
    for (; i < mr; ++i) d[i] = 0.0f;
  }
}

void store_transposed(const float* ct, int64_t ldc, int64_t kn, int64_t cols, float* y, int64_t ldy) {
  // 16 x 16 blocks: the reads and the writes each stay within 16 lines.
  for (int64_t j0 = 0; j0 < cols; j0 += 16)
    for (int64_t k0 = 0; k0 < kn; k0 += 16) {
      const int64_t j1 = std::min(cols, j0 + 16), k1 = std::min(kn, k0 + 16);
      for (int64_t k = k0; k < k1; ++k)
        for (int64_t j = j0; j < j1; ++j) y[k * ldy + j] = ct[j * ldc + k];
    }
}

namespace {

int64_t env_int(const char* name, int64_t fallback) {
  const char* e = std::getenv(name);
  return e ? std::atoll(e) : fallback;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Measured on Zen 4 (2 threads, batch 8, against the implicit-im2col GEMM): 3x3 64@56x56 and
// 128@28x28 gain ~8%; 256@14x14 (222 rows) loses ~9% and 512@7x7 (61 rows) ~33%: with few rows
// per image the weights are packed again for little arithmetic and the dropped columns between
// output rows are a larger share. The same bounds hold for stride 2 (phase planes; 2 threads,
// batch 8, A/B in one process): 3x3/2 128ch 56->28 -1..+7%, ResNet conv1 7x7/2 +2..+11%, the
// DeepBench 5x20/2 speech layer +20..+29%; 3x3/2 128ch 28->14 (209 rows) and K = 256, 512
// layers lose, as for stride 1.
constexpr int64_t kMaxFilters = 128;
constexpr int64_t kMinRows = 512;
// The GEMM computes a row for every pixel of a grid as wide as the padded image, and drops the
// Wp - Q columns past each output row. On ordinary layers that is a few percent (3 % for 3x3 on
// 56x56); a filter nearly as wide as the padded image leaves almost nothing: TextCNN's 5 x 128
// filters over 128 columns (Q = 1) computed 127 rows for every useful one and ran 130x slower
// than the implicit-im2col GEMM. Below this share of useful rows the path is not taken.
constexpr double kMinUsefulFraction = 0.75;
// Strides up to this take the path through phase planes (1x1 strided layers stay on the
// implicit-im2col GEMM).
constexpr int64_t kMaxStride = 4;
// GEMM rows per sgemm call: C^T of a chunk (448 x 64 floats, 112 KiB) stays in L2 until it is
// transposed into y.
constexpr int64_t kChunk = 448;
// K block: all of a 64-channel 3x3 layer's 576 taps at once, so C^T is written once (a 14 x 576
// A micro-panel is 32 KiB); measured ~6% faster than the kernel set's 512 (two blocks of 288).
constexpr int64_t kKc = 576;

struct Shifted {
  const gemm::KernelSet& ks;
  const ConvShape& sh;
  const float* x;
  float* y;
  const int64_t* off;
  int64_t hp, wp, rows;  // phase planes; GEMM rows of a whole image ((P-1)*Wp + Q)
  int64_t chunk;         // GEMM rows per sgemm call (a multiple of mr)
  // The A panel source and the transposed store of the kernel set's ISA.
  gemm::PanelSource::Fn pack_a;
  void (*store)(const float*, int64_t, int64_t, int64_t, float*, int64_t);
  const float* b_packed;  // W^T, packed once per call (gemm::SgemmArgs::b_packed)
  gemm::Blocking blocking;

  // GEMM rows [m0, m1) (flat pixels of the padded-width grid) of image n; xp and ct are this
  // thread's scratch (planes, and chunk x K).
  void run(int64_t n, int64_t m0, int64_t m1, float* xp, float* ct) const {
    // The padded rows these pixels read: from the first tap of pixel m0 to the last of m1 - 1.
    const int64_t span = (sh.r - 1) * sh.dil_h / sh.stride_h * wp + (sh.s - 1) * sh.dil_w / sh.stride_w;
    pad_phase_planes(sh, hp, wp, x + n * sh.c * sh.hw(), m0 / wp, std::min(hp, (m1 - 1 + span) / wp + 1), xp);
    for (int64_t c0 = m0; c0 < m1; c0 += chunk) gemm_rows(n, c0, std::min(m1, c0 + chunk), xp, ct);
  }

  // One chunk: C^T rows [m0, m1) into ct, then transposed into y[n] output row by output row,
  // dropping the columns q >= Q.
  void gemm_rows(int64_t n, int64_t m0, int64_t m1, const float* xp, float* ct) const {
    const ShiftedWindow win{xp, off, m0};
    const gemm::PanelSource src{pack_a, &win};
    gemm::SgemmArgs a{};
    a.m = m1 - m0;
    a.n = sh.k;
    a.k = sh.crs();
    a.a = {nullptr, 0, 0};
    a.b = {nullptr, 0, 0};
    a.c = ct;
    a.ldc = sh.k;
    a.alpha = 1.0f;
    a.beta = 0.0f;
    a.a_source = &src;
    a.b_packed = b_packed;
    gemm::sgemm(ks, a, 1, blocking);
    float* yn = y + n * sh.k * sh.pq();
    for (int64_t p = m0 / wp; p * wp < m1 && p < sh.p; ++p) {
      const int64_t q0 = std::max<int64_t>(0, m0 - p * wp), q1 = std::min(sh.q, m1 - p * wp);
      if (q0 >= q1) continue;
      const float* src_row = ct + (p * wp + q0 - m0) * sh.k;
      float* dst = yn + p * sh.q + q0;
      store(src_row, sh.k, sh.k, q1 - q0, dst, sh.pq());
    }
  }
};

// Each thread's share of an image's GEMM rows, in whole micro-panels.
int64_t row_split(int64_t rows, int64_t mr, int slot, int slots) {
  if (slot >= slots) return rows;
  return std::min(rows, ceil_div(rows * slot / slots, mr) * mr);
}

}  // namespace

// Phase planes (see shifted.h): hp x wp, enough for every output pixel's taps.
int64_t phase_rows(const ConvShape& sh) { return sh.p + (sh.r - 1) * sh.dil_h / sh.stride_h; }
int64_t phase_cols(const ConvShape& sh) { return sh.q + (sh.s - 1) * sh.dil_w / sh.stride_w; }
int64_t grid_rows(const ConvShape& sh) { return (sh.p - 1) * phase_cols(sh) + sh.q; }

std::vector<int64_t> tap_offsets(const ConvShape& sh) {
  const int64_t hp = phase_rows(sh), wp = phase_cols(sh);
  std::vector<int64_t> off(static_cast<size_t>(sh.crs()));
  for (int64_t c = 0, t = 0; c < sh.c; ++c)
    for (int64_t r = 0; r < sh.r; ++r)
      for (int64_t s = 0; s < sh.s; ++s) {
        const int64_t dr = r * sh.dil_h, ds = s * sh.dil_w;
        const int64_t phase = (c * sh.stride_h + dr % sh.stride_h) * sh.stride_w + ds % sh.stride_w;
        off[t++] = phase * hp * wp + dr / sh.stride_h * wp + ds / sh.stride_w;
      }
  return off;
}

void pad_phase_planes(const ConvShape& sh, int64_t hp, int64_t wp, const float* xn, int64_t r0, int64_t r1,
                      float* xp) {
  const int64_t st_h = sh.stride_h, st_w = sh.stride_w;
  for (int64_t c = 0; c < sh.c; ++c)
    for (int64_t a = 0; a < st_h; ++a)
      for (int64_t b = 0; b < st_w; ++b) {
        float* const plane = xp + ((c * st_h + a) * st_w + b) * hp * wp;
        // Columns j whose source column st_w * j + b - pad_w lies in [0, W): [j0, j1).
        const int64_t j0 = std::min(wp, std::max<int64_t>(0, ceil_div(sh.pad_w - b, st_w)));
        const int64_t j1 = std::max(j0, std::min(wp, ceil_div(sh.w + sh.pad_w - b, st_w)));
        for (int64_t r = r0; r < r1; ++r) {
          float* d = plane + r * wp;
          const int64_t h = r * st_h + a - sh.pad_h;
          if (h < 0 || h >= sh.h || j0 >= j1) {
            std::memset(d, 0, sizeof(float) * wp);
            continue;
          }
          const float* src = xn + (c * sh.h + h) * sh.w + (j0 * st_w + b - sh.pad_w);
          std::memset(d, 0, sizeof(float) * j0);
          if (st_w == 1) {
            std::memcpy(d + j0, src, sizeof(float) * (j1 - j0));
          } else {
            for (int64_t j = j0; j < j1; ++j) d[j] = src[(j - j0) * st_w];
          }
          std::memset(d + j1, 0, sizeof(float) * (wp - j1));
        }
      }
}

double shifted_useful_fraction(const ConvShape& sh) {
  const int64_t rows = grid_rows(sh);
  return rows > 0 ? static_cast<double>(sh.pq()) / static_cast<double>(rows) : 0.0;
}

// The phase planes of an image, stride_h * stride_w of them per channel, stay within a few times
// what the image and its output hold: with a large padding and stride (a 8x8 image, padding
// 6000, stride 4) they would be gigabytes, nearly all zeros, where the implicit im2col reads
// the image itself.
bool phase_planes_fit(const ConvShape& sh) {
  const double planes = static_cast<double>(sh.c) * sh.stride_h * sh.stride_w * phase_rows(sh) * phase_cols(sh);
  return planes <= 4.0 * (static_cast<double>(sh.c) * sh.h * sh.w + static_cast<double>(sh.k) * sh.pq());
}

bool use_shifted(const ConvShape& sh) {
  static const int64_t forced = env_int("DLCB_CONV_SHIFTED", -1);
  const bool possible = sh.groups == 1 && sh.stride_h <= kMaxStride && sh.stride_w <= kMaxStride &&
                        !is_pointwise(sh) && !(sh.r == 1 && sh.s == 1 && (sh.stride_h > 1 || sh.stride_w > 1)) &&
                        sh.p > 0 && sh.q > 0;
  if (!possible || forced == 0) return false;
  if (forced > 0) return true;
  return sh.k <= kMaxFilters && grid_rows(sh) >= kMinRows && shifted_useful_fraction(sh) >= kMinUsefulFraction &&
         phase_planes_fit(sh);
}

ConvRun shifted_forward(const gemm::KernelSet& ks, const ConvShape& sh, const float* x, const float* w,
                        WeightLayout wl, float* y, int threads) {
  const bool strided = sh.stride_h > 1 || sh.stride_w > 1;
  const char* name = !strided                                  ? "padded-shifted-gemm-t"
                     : sh.stride_h == 2 && sh.stride_w == 2 ? "padded-shifted-gemm-t (stride 2 phase planes)"
                                                               : "padded-shifted-gemm-t (strided phase planes)";
  if (sh.n == 0) return {name, 1, "images"};
  const int64_t hp = phase_rows(sh), wp = phase_cols(sh), phases = sh.stride_h * sh.stride_w;
  const int64_t rows = grid_rows(sh);
  const std::vector<int64_t> off = tap_offsets(sh);
  auto pack_a = pack_shifted_a;
  auto store = store_transposed;
#if defined(DLCB_X86)
  if (std::strcmp(ks.isa, "avx512") == 0 && ks.mr <= 16) {
    pack_a = pack_shifted_a_avx512;
    store = store_transposed_avx512;
  } else if (std::strcmp(ks.isa, "avx2") == 0 && ks.mr <= 8) {
    pack_a = pack_shifted_a_avx2;
    store = store_transposed_avx2;
  }
#endif
  const int64_t crs = sh.crs(), nr = ks.nr, panels = ceil_div(sh.k, nr);
  // The micro-kernel loads B panels aligned: 64-byte aligned start (panels are nr floats wide).
  float* const wt_raw = scratch_floats(kPackedWeights, panels * crs * nr + 16);
  float* const wt = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(wt_raw) + 63) / 64 * 64);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && panels > 1)
  for (int64_t jp = 0; jp < panels; ++jp)
    ks.pack_b(std::min(nr, sh.k - jp * nr), crs, w + jp * nr * wl.row_stride, wl.col_stride, wl.row_stride,
              wt + jp * crs * nr);
  gemm::Blocking blocking{};
  blocking.kc = kKc;
  const int64_t chunk = std::max<int64_t>(1, ceil_div(kChunk, ks.mr)) * ks.mr;
  const Shifted f{ks, sh, x, y, off.data(), hp, wp, rows, chunk, pack_a, store, wt, blocking};
  const int64_t plane = sh.c * phases * hp * wp;
  threads = std::max(1, threads);
  if (threads == 1 || split_images(sh.n, threads)) {
    const int slots = threads;
    float* const xp = scratch_floats(kPadded, slots * plane);
    const int64_t ct_floats = std::min(rows, chunk) * sh.k;
    float* const ct = scratch_floats(kShifted, slots * ct_floats);
    if (slots == 1) {
      for (int64_t n = 0; n < sh.n; ++n) f.run(n, 0, rows, xp, ct);
      return {name, 1, "images"};
    }
    for_each_image(sh.n, slots, [&](int64_t n, int t) { f.run(n, 0, rows, xp + t * plane, ct + t * ct_floats); });
    return {name, threads, "images"};
  }
  // Fewer images than threads, or a remainder: every thread takes a slice of each image's rows.
  const int slots = static_cast<int>(std::min<int64_t>(threads, ceil_div(rows, ks.mr)));
  const int64_t share = std::min(chunk, ceil_div(ceil_div(rows, slots), ks.mr) * ks.mr + ks.mr);
  float* const xp = scratch_floats(kPadded, slots * plane);
  float* const ct = scratch_floats(kShifted, slots * share * sh.k);
  for_each_image(slots, slots, [&](int64_t t, int) {
    const int64_t m0 = row_split(rows, ks.mr, static_cast<int>(t), slots);
    const int64_t m1 = row_split(rows, ks.mr, static_cast<int>(t) + 1, slots);
    if (m0 < m1)
      for (int64_t n = 0; n < sh.n; ++n) f.run(n, m0, m1, xp + t * plane, ct + t * share * sh.k);
  });
  return {name, slots, "pixels"};
}

}  // namespace dlcb::conv
