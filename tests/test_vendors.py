"""The vendor baselines in the registry: each one's result passes the problem's own check on
small problems of every op and direction, on the same inputs; a missing optional library or an
unsupported direction is reported as unavailable, with the install hint, never a crash."""

import builtins

import pytest

from dlcb_kernels import registry
from dlcb_kernels.problems import ConvProblem, GemmProblem, RnnProblem

PROBLEMS = [
    GemmProblem(37, 53, 71, trans_a=True),
    GemmProblem(64, 17, 33, trans_b=True),
    ConvProblem(2, 4, 11, 13, 6, 3, 3, 1, 1),
    ConvProblem(2, 4, 11, 13, 6, 3, 5, 2, 1, 2, 1, 1, 2, 2),
    ConvProblem(1, 1, 16, 41, 3, 5, 20, stride_h=2, stride_w=2),
    ConvProblem(2, 4, 11, 13, 6, 3, 3, 1, 1, 2, 2, direction="bwd_data"),
    ConvProblem(2, 4, 11, 13, 6, 3, 3, 1, 1, 1, 1, dil_h=2, groups=2, direction="bwd_data"),
    ConvProblem(2, 4, 11, 13, 6, 3, 3, 1, 1, 2, 2, groups=2, direction="bwd_filter"),
] + [RnnProblem(33, 5, 4, cell, input_size=i, direction=d)
     for cell in ("vanilla", "lstm", "gru") for i, d in ((0, "fwd"), (17, "bwd"))]

VENDORS = [impl for impl in registry.implementations() if impl.provider == "vendor"]


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.key().replace(" ", "-"))
def test_every_available_vendor_passes_the_check(problem):
    inputs = problem.make_inputs(seed=4)
    ran = 0
    for impl in (i for i in VENDORS if i.op == problem.op):
        if impl.unavailable_reason(problem):
            continue
        with impl.prepare(problem, inputs, 2) as prepared:
            prepared.run()
            error = problem.check_error(inputs, prepared.output)
        assert error <= problem.tolerance(), f"{impl.name}: error {error:.3g}"
        assert prepared.algorithm and prepared.threads == 2
        ran += 1
    assert ran >= 1   # numpy is always there


def test_onnxruntime_is_inference_only():
    ort = next(i for i in VENDORS if i.name == "conv/cpu/onnxruntime")
    reason = ort.unavailable_reason(ConvProblem(1, 1, 3, 3, 1, 1, 1, direction="bwd_filter"))
    if reason and "not installed" in reason:
        pytest.skip(reason)
    assert "inference only" in reason
    assert ort.unavailable_reason(ConvProblem(1, 1, 3, 3, 1, 1, 1)) is None


@pytest.mark.parametrize("module", ["torch", "onnxruntime"])
def test_a_missing_vendor_library_is_unavailable_with_the_install_hint(monkeypatch, module):
    real_import = builtins.__import__

    def no_such_module(name, *args, **kwargs):
        if name == module or name.startswith(module + "."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_such_module)
    impls = [i for i in VENDORS if i.variant == module]
    # torch also runs the validation's memory-bound layers and its framework overhead
    assert {i.op for i in impls} == {"gemm", "conv", "rnn"} | ({"memory", "overhead"} if module == "torch" else set())
    for impl in impls:
        reason = impl.unavailable_reason(GemmProblem(1, 1, 1))
        assert reason.startswith("unavailable:") and "dlcb-kernels[vendor]" in reason


def test_torch_shares_the_problem_inputs_and_restores_its_thread_count():
    torch = pytest.importorskip("torch")
    problem = GemmProblem(8, 8, 8)
    inputs = problem.make_inputs(0)
    impl = next(i for i in VENDORS if i.name == "gemm/cpu/torch")
    before = torch.get_num_threads()
    with impl.prepare(problem, inputs, 1) as prepared:
        assert torch.get_num_threads() == 1
        inputs["a"][0, 0] = 100.0     # the tensor wraps the array: the change is seen
        prepared.run()
        assert prepared.output[0, 0] == pytest.approx(float((inputs["a"] @ inputs["b"])[0, 0]), rel=1e-5)
    assert torch.get_num_threads() == before     # the run's thread count does not leak out
