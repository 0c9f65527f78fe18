// The element-wise cell kernels for the baseline target (any CPU of the architecture).
#include "rnn/cell_math_impl.h"

namespace dlcb::rnn {
namespace {
DLCB_RNN_CELL_MATH_TABLE(kTable, "portable");
}  // namespace

const CellMath& cell_math_portable() { return kTable; }

}  // namespace dlcb::rnn
