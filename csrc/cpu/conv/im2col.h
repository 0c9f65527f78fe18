#pragma once
// im2col without the matrix: the GEMM driver asks for B panel by panel (gemm::PanelSource) and
// these routines gather each panel straight from one image, padding read as zeros. The matrix
// itself (C*R*S x P*Q, R*S times the image) is never written to memory.
#include <cstdint>

#include "conv/conv.h"

namespace dlcb::conv {

// One group's channels of one or more consecutive images and the window geometry: what a
// panel source reads. Pixel columns run over the images in turn: column j is pixel j % (p*q) of
// image j / (p*q), whose channels start image_stride elements after the previous image's.
struct ImageWindow {
  const float* x;  // first channel of the first image
  int64_t h, w, p, q, r, s;
  int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
  int64_t image_stride;
  int64_t first = 0;  // forward: panel column j is pixel first + j (a thread's share of the pixels)
};

inline ImageWindow image_window(const ConvShape& sh, const float* x) {
  return {x, sh.h, sh.w, sh.p, sh.q, sh.r, sh.s, sh.stride_h, sh.stride_w, sh.pad_h, sh.pad_w, sh.dil_h, sh.dil_w,
          sh.c * sh.hw()};
}

// A 1x1, stride-1, unpadded window seen as one row of h*w pixels: runs of pixels then span
// whole images instead of single rows.
inline ImageWindow pointwise_window(const ConvShape& sh, const float* x) {
  return {x, 1, sh.hw(), 1, sh.hw(), 1, 1, 1, 1, 0, 0, 1, 1, sh.c * sh.hw()};
}

// B = im2col(x): row (c, r, s), column (oh, ow) = x[c][oh*sh - ph + r*dh][ow*sw - pw + s*dw].
// Forward convolution. ctx is an ImageWindow.
void pack_im2col(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t cols, int64_t nr, float* dst);

using PanelPackFn = void (*)(const void*, int64_t, int64_t, int64_t, int64_t, int64_t, float*);

// The fastest pack_im2col (pack_im2col_t) equivalent for the kernel set (its ISA, its nr).
PanelPackFn im2col_packer(const gemm::KernelSet& ks);
PanelPackFn im2col_t_packer(const gemm::KernelSet& ks);

// B = im2col(x)^T: row (oh, ow), column (c, r, s). Backward filter. ctx is an ImageWindow.
void pack_im2col_t(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t cols, int64_t nr, float* dst);

// The adjoint of im2col for the columns j0 .. j0+cols-1 of a (C*R*S x P*Q) matrix held in
// col[row * ld + (j - j0)]: dx[c][ih][iw] += col(c r s, oh ow) for channels c0 .. c1-1.
// dx points at the group's first channel.
void col2im_add(const ImageWindow& win, const float* col, int64_t ld, int64_t j0, int64_t cols,
                int64_t c0, int64_t c1, float* dx);

}  // namespace dlcb::conv
