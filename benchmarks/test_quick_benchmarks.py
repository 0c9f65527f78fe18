"""The quick suite under pytest-benchmark on the CPU: every problem (GEMM, conv, RNN) on our
kernel and on each vendor baseline of its op. A vendor library that is not installed is
skipped; so is the whole file when the session benchmarks a GPU (--dlcb-device)."""

import pytest

from dlcb_kernels import registry
from dlcb_kernels.suites import OPS, load_suite

IMPLS = registry.select(list(OPS), "ours,vendor", backend="cpu")
CASES = [(sp, impl) for sp in load_suite("quick") for impl in IMPLS if impl.op == sp.problem.op]


@pytest.mark.parametrize("suite_problem,impl", CASES,
                         ids=[f"{sp.problem.key().replace(' ', '-')}-{impl.variant}" for sp, impl in CASES])
def test_quick(benchmark, dlcb, suite_problem, impl):
    dlcb.run(benchmark, suite_problem, impl)
