// The element-wise cell kernels compiled for AVX512 (called only after the run-time CPU check
// that selected the avx512 GEMM kernel set).
#include "rnn/cell_math_impl.h"

namespace dlcb::rnn {
namespace {
DLCB_RNN_CELL_MATH_TABLE(kTable, "avx512");
}  // namespace

const CellMath* cell_math_avx512() { return &kTable; }

}  // namespace dlcb::rnn
