// Picks the element-wise kernels compiled for the same ISA as the GEMM kernel set in use: the
// kernel set was chosen by a run-time CPU check, so its ISA is safe to run here too.
#include <cstring>

#include "rnn/cell_math.h"

namespace dlcb::rnn {

#if !defined(DLCB_X86)
const CellMath* cell_math_avx512() { return nullptr; }
const CellMath* cell_math_avx2() { return nullptr; }
#endif

const CellMath& cell_math_for(const gemm::KernelSet& ks) {
  const CellMath* m = nullptr;
  if (std::strcmp(ks.isa, "avx512") == 0) m = cell_math_avx512();
  if (std::strcmp(ks.isa, "avx2") == 0) m = cell_math_avx2();
  return m != nullptr ? *m : cell_math_portable();
}

}  // namespace dlcb::rnn
