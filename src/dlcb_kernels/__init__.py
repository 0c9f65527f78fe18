"""dlcb-kernels: which hardware runs a deep-learning workload fastest, measured kernel by kernel.

Our own CPU (and CUDA) kernels for GEMM, convolution and RNN cells, timed side by side with the
vendor libraries, recorded in per-device throughput tables.
"""

from importlib.metadata import PackageNotFoundError, version

from . import cuda  # lazy: imports the CUDA extension only when asked (cuda.status())
from .ops.conv import (
    conv2d,
    conv2d_backward_data,
    conv2d_backward_data_with_info,
    conv2d_backward_filter,
    conv2d_backward_filter_with_info,
    conv2d_with_info,
)
from .ops.gemm import available_isas, gemm, gemm_plan, kernel_info, resolve_isa
from .ops.rnn import PreparedRnnWeights, RnnOutput, prepare_rnn_weights, rnn, rnn_backward, rnn_cell

try:
    __version__ = version("dlcb-kernels")
except PackageNotFoundError:  # running from a source tree that was built in place
    __version__ = "0+unknown"

__all__ = [
    "__version__",
    "available_isas",
    "conv2d",
    "conv2d_backward_data",
    "conv2d_backward_data_with_info",
    "conv2d_backward_filter",
    "conv2d_backward_filter_with_info",
    "conv2d_with_info",
    "cuda",
    "gemm",
    "gemm_plan",
    "kernel_info",
    "PreparedRnnWeights",
    "RnnOutput",
    "prepare_rnn_weights",
    "resolve_isa",
    "rnn",
    "rnn_backward",
    "rnn_cell",
]
