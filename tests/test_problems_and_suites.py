"""Problem FLOP/byte models, the reference check, and suite loading."""

import numpy as np
import pytest

from dlcb_kernels.problems import GemmProblem, problem_from_params
from dlcb_kernels.suites import DEFAULT_MAX_FLOPS, load_suite


def test_gemm_flops_bytes_and_key():
    p = GemmProblem(4096, 7000, 4096)
    assert p.flops() == 2 * 4096 * 7000 * 4096
    assert p.bytes_min() == 4 * (4096 * 4096 + 4096 * 7000 + 4096 * 7000)
    assert p.arithmetic_intensity() == pytest.approx(p.flops() / p.bytes_min())
    assert GemmProblem(3, 4, 5, trans_a=True).key() == "gemm 3x4x5 TN"
    assert problem_from_params("gemm", p.params()) == p


@pytest.mark.parametrize("kwargs,exc", [(dict(m=0, n=1, k=1), ValueError), (dict(m=1.5, n=1, k=1), TypeError),
                                        (dict(m=True, n=1, k=1), TypeError),
                                        (dict(m=1, n=1, k=1, dtype="float16"), ValueError)])
def test_gemm_problem_validation(kwargs, exc):
    with pytest.raises(exc):
        GemmProblem(**kwargs)


def test_problem_from_params_rejects_unknowns():
    with pytest.raises(ValueError, match="unknown op"):
        problem_from_params("fft", {})
    with pytest.raises(ValueError, match="unknown GemmProblem parameters"):
        problem_from_params("gemm", {"m": 1, "n": 1, "k": 1, "lda": 3})


@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True), (True, True)])
def test_check_error_accepts_the_right_answer_and_catches_a_missing_term(trans_a, trans_b):
    p = GemmProblem(300, 50, 2048, trans_a, trans_b)
    inputs = p.make_inputs(seed=3)
    a = inputs["a"].T if trans_a else inputs["a"]
    b = inputs["b"].T if trans_b else inputs["b"]
    good = (a @ b).astype(np.float32)
    assert p.check_error(inputs, good) <= p.tolerance()
    # One k term left out of every row: far beyond the tolerance.
    bad = (a[:, 1:] @ b[1:]).astype(np.float32)
    assert p.check_error(inputs, bad) > 10 * p.tolerance()
    assert p.check_error(inputs, good[:, :-1]) == float("inf")
    nan = good.copy()
    nan[:] = np.nan
    assert p.check_error(inputs, nan) == float("inf")


def test_inputs_are_deterministic_and_laid_out_as_stored():
    p = GemmProblem(5, 6, 7, trans_a=True)
    x, y = p.make_inputs(1), p.make_inputs(1)
    assert x["a"].shape == (7, 5) and x["b"].shape == (7, 6)
    assert np.array_equal(x["a"], y["a"]) and x["a"].dtype == np.float32


def test_scaled_to_keeps_shape_class():
    p = GemmProblem(8448, 48000, 2816)
    s = p.scaled_to(8e9)
    assert s.flops() <= 8e9 and s.n < p.n and s.m <= p.m
    skinny = GemmProblem(4096, 16, 4096).scaled_to(1e8)
    assert skinny.n == 16


def test_quick_suite():
    problems = load_suite("quick")
    assert len(problems) >= 5
    assert problems[0].problem == GemmProblem(2048, 2048, 2048)


def test_deepbench_train_loads_every_unique_shape_scaled_to_budget():
    full = load_suite("deepbench-train", full=True)
    assert len(full) == 160  # DeepBench's train GEMM list has no duplicate rows
    assert all(sp.labels["set"] == "deepbench-train" for sp in full)
    scaled = load_suite("deepbench-train")
    assert all(sp.problem.flops() <= DEFAULT_MAX_FLOPS for sp in scaled)
    notes = [sp for sp in scaled if "scaled_from" in sp.labels]
    assert notes and all("--full" in sp.labels["scaled_reason"] for sp in notes)


def test_deepbench_inference_has_server_and_device_sets():
    sets = {sp.labels["set"] for sp in load_suite("deepbench-inference", full=True)}
    assert sets == {"deepbench-inference_server", "deepbench-inference_device"}


def test_suite_arguments_are_checked():
    with pytest.raises(ValueError, match="suite must be one of"):
        load_suite("nope")
    with pytest.raises(ValueError, match="ops must be among"):
        load_suite("quick", ("conv",))
    with pytest.raises(ValueError, match="max_flops"):
        load_suite("deepbench-train", max_flops=0)
