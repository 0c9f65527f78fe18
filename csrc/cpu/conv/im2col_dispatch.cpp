// The im2col packers for a kernel set: the vectorized one of its ISA when the GEMM runs that
// ISA's kernels (the CPU was checked when they were selected), the portable one otherwise.
#include <cstring>

#include "conv/im2col.h"

namespace dlcb::conv {

#if defined(DLCB_X86)
void pack_im2col_avx512(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t cols, int64_t nr, float* dst);
void pack_im2col_t_avx512(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t cols, int64_t nr,
                          float* dst);
void pack_im2col_avx2(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t cols, int64_t nr, float* dst);
void pack_im2col_t_avx2(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t cols, int64_t nr,
                        float* dst);
#endif

PanelPackFn im2col_packer(const gemm::KernelSet& ks) {
#if defined(DLCB_X86)
  if (std::strcmp(ks.isa, "avx512") == 0 && ks.nr == 32) return pack_im2col_avx512;
  if (std::strcmp(ks.isa, "avx2") == 0 && ks.nr == 16) return pack_im2col_avx2;
#endif
  (void)ks;
  return pack_im2col;
}

PanelPackFn im2col_t_packer(const gemm::KernelSet& ks) {
#if defined(DLCB_X86)
  if (std::strcmp(ks.isa, "avx512") == 0 && ks.nr == 32) return pack_im2col_t_avx512;
  if (std::strcmp(ks.isa, "avx2") == 0 && ks.nr == 16) return pack_im2col_t_avx2;
#endif
  (void)ks;
  return pack_im2col_t;
}

}  // namespace dlcb::conv
