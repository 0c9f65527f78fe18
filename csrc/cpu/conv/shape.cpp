// Parameter checks for every conv entry point: the kernels below index with int64_t products of
// these sizes, so each is bounded here once (no product of two checked values overflows).
#include <stdexcept>
#include <string>

#include "conv/conv.h"

namespace dlcb::conv {
namespace {

constexpr int64_t kMaxDim = int64_t{1} << 31;    // any single size or parameter
constexpr int64_t kMaxElems = int64_t{1} << 62;  // any tensor

void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument(what);
}

void bounded(int64_t v, int64_t lo, const char* name) {
  require(v >= lo && v < kMaxDim, std::string(name) + " out of range: " + std::to_string(v));
}

int64_t product(std::initializer_list<int64_t> dims, const char* what) {
  int64_t p = 1;
  for (int64_t d : dims) {
    require(d == 0 || p <= kMaxElems / d, std::string(what) + " has too many elements");
    p *= d;
  }
  return p;
}

}  // namespace

void finalize(ConvShape& s) {
  bounded(s.n, 0, "n");
  bounded(s.c, 1, "c");
  bounded(s.h, 1, "h");
  bounded(s.w, 1, "w");
  bounded(s.k, 1, "k");
  bounded(s.r, 1, "r");
  bounded(s.s, 1, "s");
  bounded(s.groups, 1, "groups");
  bounded(s.stride_h, 1, "stride_h");
  bounded(s.stride_w, 1, "stride_w");
  bounded(s.pad_h, 0, "pad_h");
  bounded(s.pad_w, 0, "pad_w");
  bounded(s.dil_h, 1, "dil_h");
  bounded(s.dil_w, 1, "dil_w");
  require(s.c % s.groups == 0 && s.k % s.groups == 0, "groups must divide c and k");
  const int64_t span_h = s.dil_h * (s.r - 1) + 1, span_w = s.dil_w * (s.s - 1) + 1;
  const int64_t in_h = s.h + 2 * s.pad_h, in_w = s.w + 2 * s.pad_w;
  require(in_h >= span_h && in_w >= span_w, "the filter is larger than the padded input");
  s.p = (in_h - span_h) / s.stride_h + 1;
  s.q = (in_w - span_w) / s.stride_w + 1;
  product({s.n, s.c, s.h, s.w}, "x");
  product({s.n, s.k, s.p, s.q}, "y");
  product({s.k, s.cg(), s.r, s.s}, "w");
  product({s.cg(), s.r, s.s, s.p, s.q}, "the im2col matrix");
}

}  // namespace dlcb::conv
