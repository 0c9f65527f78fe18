"""The framework overhead problem and the runners' implementations of it: checked (the chain is
the identity on 1.0) and timed like any other problem, per call."""

import pytest

from dlcb_kernels import registry
from dlcb_kernels.bench import BenchConfig, run_bench
from dlcb_kernels.measure import Settings
from dlcb_kernels.problems import OverheadProblem, problem_from_params
from dlcb_kernels.suites import SuiteProblem

FAST = Settings(min_samples=3, min_time=0.0, max_time=0.02, warmup_time=0.0, settle=0.0)
PROBLEMS = [OverheadProblem("layer", False), OverheadProblem("layer", True), OverheadProblem("step", True, calls=8)]


def test_the_problem_is_validated_and_round_trips_through_its_params():
    for problem in PROBLEMS:
        assert problem_from_params("overhead", problem.params()) == problem
        assert problem.flops() == problem.calls and problem.bytes_min() == 4 * problem.calls
    assert OverheadProblem("layer", "true").training is True           # as the CLI spells it
    with pytest.raises(ValueError, match="kind"):
        OverheadProblem("epoch", True)
    with pytest.raises(ValueError, match="calls"):
        OverheadProblem("layer", True, calls=0)
    with pytest.raises(TypeError, match="training"):
        OverheadProblem("layer", 1)
    ones = PROBLEMS[0].make_inputs()["x"]
    assert PROBLEMS[0].check_error({}, ones) == 0.0 and PROBLEMS[0].check_error({}, ones * 2) == 1.0
    assert PROBLEMS[0].check_error({}, None) == float("inf")


def test_every_runner_measures_it_and_passes_the_check(tmp_path):
    impls = registry.select(["overhead"], "torch,ours", backend="cpu")
    assert sorted(impl.name for impl in impls) == ["overhead/cpu/ours", "overhead/cpu/torch"]
    problems = [SuiteProblem(p, {"set": "test"}) for p in PROBLEMS]
    doc = run_bench(BenchConfig(problems, impls, threads=1, settings=FAST, suite="test"), tmp_path / "o.json",
                    progress_stream=None)
    statuses = {(r["problem"], r["variant"]): r["status"] for r in doc["records"]}
    expected = "ok" if registry.select(["overhead"], "torch", backend="cpu")[0].unavailable_reason() is None \
        else "unavailable"
    for problem in PROBLEMS:
        assert statuses[(problem.key(), "ours")] == "ok"
        assert statuses[(problem.key(), "torch")] == expected
