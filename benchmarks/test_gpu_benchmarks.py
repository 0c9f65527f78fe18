"""The gpu-quick suite under pytest-benchmark on a CUDA device: GEMM float32/bfloat16 at 4096^3
and 8192^3, ResNet-50's 3x3 convolutions in bfloat16 NHWC, LSTM H=1024 at batch 4 and 128,
each on our kernels and on cuBLAS / cuDNN. Times are CUDA-event times (see conftest.py).
Skipped unless the session benchmarks a GPU (--dlcb-device auto on a machine with one)."""

import pytest

from dlcb_kernels import registry
from dlcb_kernels.suites import OPS, load_suite

IMPLS = registry.select(list(OPS), "ours,vendor", backend="cuda")
CASES = [(sp, impl) for sp in load_suite("gpu-quick") for impl in IMPLS if impl.op == sp.problem.op]


@pytest.mark.parametrize("suite_problem,impl", CASES,
                         ids=[f"{sp.problem.key().replace(' ', '-')}-{impl.variant}" for sp, impl in CASES])
def test_gpu_quick(benchmark, dlcb, suite_problem, impl):
    dlcb.run(benchmark, suite_problem, impl)
