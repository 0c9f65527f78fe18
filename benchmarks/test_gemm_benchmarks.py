"""GEMM: our kernel and the vendor (numpy/OpenBLAS) on the quick suite's problems."""

import pytest

from dlcb_kernels import registry
from dlcb_kernels.suites import load_suite

PROBLEMS = load_suite("quick", ("gemm",))
IMPLS = registry.select(["gemm"], "ours,vendor")


@pytest.mark.parametrize("impl", IMPLS, ids=lambda i: i.variant)
@pytest.mark.parametrize("suite_problem", PROBLEMS, ids=lambda sp: sp.problem.key().replace(" ", "-"))
def test_gemm(benchmark, dlcb, suite_problem, impl):
    dlcb.run(benchmark, suite_problem, impl)
