"""Problem FLOP/byte models, the reference check, and suite loading."""

import numpy as np
import pytest

from dlcb_kernels import models
from dlcb_kernels.problems import (
    ConvProblem,
    GemmProblem,
    RnnProblem,
    problem_from_params,
)
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
                                        (dict(m=1, n=1, k=1, dtype="float64"), ValueError)])
def test_gemm_problem_validation(kwargs, exc):
    with pytest.raises(exc):
        GemmProblem(**kwargs)


@pytest.mark.parametrize("dtype,roundoff", [("float16", 2.0**-11), ("bfloat16", 2.0**-8)])
def test_16_bit_problems_store_representable_values_and_allow_one_rounding(dtype, roundoff):
    from dlcb_kernels.device_array import bfloat16_round

    p = GemmProblem(64, 48, 96, dtype=dtype)
    assert p.itemsize == 2 and p.bytes_min() == 2 * (64 * 96 + 96 * 48 + 64 * 48)
    assert p.key().endswith(dtype)
    inputs = p.make_inputs()
    a = inputs["a"].astype(np.float32)
    # every value is exactly a value of the dtype (the reference sees what the GPU sees)
    exact = bfloat16_round(a) if dtype == "bfloat16" else a.astype(np.float16).astype(np.float32)
    assert np.array_equal(a, exact)
    ref = inputs["a"].astype(np.float64) @ inputs["b"].astype(np.float64)
    rounded = bfloat16_round(ref.astype(np.float32)) if dtype == "bfloat16" else ref.astype(np.float16)
    assert p.check_error(inputs, rounded.astype(np.float32)) <= p.tolerance()
    assert p.tolerance() > 4 * roundoff
    assert p.check_error(inputs, (ref * (1 + 20 * roundoff)).astype(np.float32)) > p.tolerance()


def test_nhwc_conv_problem_shapes_and_reference():
    from dlcb_kernels import numpy_ops

    p = ConvProblem(n=2, c=6, h=9, w=7, k=4, r=3, s=3, pad_h=1, pad_w=1, layout="NHWC")
    assert p.x_shape == (2, 9, 7, 6) and p.w_shape == (4, 3, 3, 6) and p.y_shape == (2, 9, 7, 4)
    assert "NHWC" in p.key()
    inputs = p.make_inputs()
    x = np.moveaxis(inputs["x"], -1, 1).astype(np.float64)
    w = np.moveaxis(inputs["w"], -1, 1).astype(np.float64)
    y = numpy_ops.conv2d_forward(x, w, **p.conv_args())
    assert p.check_error(inputs, np.moveaxis(y, 1, -1)) < 1e-12
    assert p.check_error(inputs, y.reshape(p.y_shape)) > 0.1  # NCHW data mislabelled as NHWC
    with pytest.raises(ValueError, match="layout"):
        ConvProblem(n=1, c=1, h=3, w=3, k=1, r=1, s=1, layout="CHWN")


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


def test_quick_suite_has_every_op_and_the_goal_problems():
    problems = [sp.problem for sp in load_suite("quick")]
    assert problems[0] == GemmProblem(2048, 2048, 2048)
    assert {p.op for p in problems} == {"gemm", "conv", "rnn"}
    assert ConvProblem(8, 64, 56, 56, 64, 3, 3, 1, 1) in problems
    for direction in ("bwd_data", "bwd_filter"):
        assert ConvProblem(8, 64, 56, 56, 64, 3, 3, 1, 1, direction=direction) in problems
    for cell in ("lstm", "gru", "vanilla"):
        assert RnnProblem(512, 32, 25, cell) in problems
    # TextCNN's full-width filter: the shape an algorithm choice must not fall off a cliff on
    assert ConvProblem(64, 1, 59, 128, 128, 5, 128, pad_h=2) in problems
    assert [p.op for p in (sp.problem for sp in load_suite("quick", ("rnn",)))] == ["rnn"] * 4


def test_deepbench_train_loads_every_unique_shape_scaled_to_budget():
    full = load_suite("deepbench-train", ("gemm",), full=True)
    assert len(full) == 160  # DeepBench's train GEMM list has no duplicate rows
    assert all(sp.labels["set"] == "deepbench-train" for sp in full)
    scaled = load_suite("deepbench-train", ("gemm",))
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
        load_suite("quick", ("fft",))
    with pytest.raises(ValueError, match="max_flops"):
        load_suite("deepbench-train", max_flops=0)


def test_deepbench_conv_and_rnn_rows_in_every_direction():
    train = load_suite("deepbench-train", ("conv", "rnn"), full=True)
    conv = [sp.problem for sp in train if sp.problem.op == "conv"]
    rnn = [sp.problem for sp in train if sp.problem.op == "rnn"]
    # 94 conv rows x 3 directions and 53 RNN rows x 2, less the rows DeepBench lists twice.
    assert 0 < len(conv) <= 94 * 3 and len(conv) % 3 == 0
    assert 0 < len(rnn) <= 53 * 2 and len(rnn) % 2 == 0
    # The speech filters: DeepBench's s is the width (20), r the height (5).
    first = conv[0]
    assert (first.w, first.h, first.c, first.n, first.k, first.s, first.r) == (700, 161, 1, 4, 32, 20, 5)
    assert {p.direction for p in conv} == {"fwd", "bwd_data", "bwd_filter"}
    assert {p.cell for p in rnn} == {"vanilla", "lstm", "gru"} and {p.direction for p in rnn} == {"fwd", "bwd"}
    inference = load_suite("deepbench-inference", ("conv", "rnn"), full=True)
    assert {sp.problem.direction for sp in inference} == {"fwd"}


def test_conv_and_rnn_are_scaled_along_batch_and_time():
    for name in ("deepbench-train", "deepbench-inference"):
        scaled = load_suite(name, ("conv", "rnn"))
        assert all(sp.problem.flops() <= DEFAULT_MAX_FLOPS for sp in scaled)
        assert any("scaled_from" in sp.labels for sp in scaled)
        for sp in scaled:
            if "scaled_from" in sp.labels:
                original = problem_from_params(sp.problem.op, sp.labels["scaled_from"])
                kept = {k: v for k, v in original.params().items() if k not in ("n", "timesteps", "batch")}
                assert kept == {k: v for k, v in sp.problem.params().items() if k not in ("n", "timesteps", "batch")}


def test_models_suite_covers_every_layer_once_with_its_users():
    suite = load_suite("models")
    problems = [sp.problem for sp in suite]
    assert len(problems) == len(set(problems))
    assert all(sp.labels["batch"] == [8] for sp in suite)
    resnet = models.MODELS["ResNet50"]
    for layer in resnet.kernel_layers():
        sp = next(sp for sp in suite if sp.problem == layer.problem(8))
        assert {"model": "ResNet50", "layer": layer.name, "pass": "fwd", "count": layer.count} in sp.labels["layers"]
    # inference: forward kernels and the memory-bound layers' inference calls, nothing backward
    assert {getattr(sp.problem, "direction", "fwd") for sp in suite} == {"fwd"}
    assert any(sp.problem.op == "memory" and not sp.problem.training for sp in suite)
    assert load_suite("models", ("conv",), batch=1)[0].problem.n == 1
    resnet_only = load_suite("models", ("conv",), model_names=("ResNet50",), anchors=False)
    assert {layer["model"] for sp in resnet_only for layer in sp.labels["layers"]} >= {"ResNet50"}
    assert len(resnet_only) == len({layer.problem(8) for layer in resnet.layers if layer.kind == "conv"})
    with pytest.raises(ValueError, match="unknown model 'LeNet'"):
        load_suite("models", model_names=("LeNet",))
    with pytest.raises(ValueError, match="ops must be among"):
        load_suite("quick", ("memory",))


def test_models_suite_adds_the_anchor_layers_unless_asked_not_to():
    from dlcb_kernels.models.anchors import ANCHOR_BATCH, ANCHORS, LEAD

    with_anchors = load_suite("models", model_names=("TextCNN",), batch=64, mode="both")
    without = load_suite("models", model_names=("TextCNN",), batch=64, mode="both", anchors=False)
    assert [sp.problem for sp in with_anchors[:len(without)]] == [sp.problem for sp in without]
    anchors = with_anchors[len(without):]
    assert anchors and all(sp.labels["set"] == "anchors" and sp.labels["batch"] == [ANCHOR_BATCH] for sp in anchors)
    problems = {sp.problem for sp in anchors}
    # token-major GEMMs in all three passes, a depthwise convolution's backward, dropout at two rates
    assert {GemmProblem(1024, 1024, 1024, trans_b=True), GemmProblem(1024, 1024, 1024),
            GemmProblem(1024, 1024, 1024, trans_a=True)} <= problems
    assert any(p.op == "conv" and p.groups > 1 and p.direction == "bwd_filter" for p in problems)
    assert {p.rate for p in problems if p.op == "memory" and p.kind == "dropout"} == {0.1, 0.5}
    # windows over whole embedding rows (output rows one pixel wide) at two sizes, in all passes
    windows = {(p.h, p.w, p.r) for p in problems if p.op == "conv" and p.c == 1 and p.q == 1}
    assert len(windows) == 2
    assert {p.direction for p in problems if p.op == "conv" and p.q == 1} == {"fwd", "bwd_data", "bwd_filter"}
    # attention's per-head GEMMs: scores (Q K^T) and context (P V) forward
    assert {GemmProblem(256, 256, 32, trans_b=True), GemmProblem(256, 32, 256)} <= problems
    # the leading layer is not an anchor, the framework overhead is the models'
    assert all(entry["layer"] != LEAD for sp in anchors for entry in sp.labels["layers"])
    assert not any(p.op == "overhead" for p in problems)
    assert {entry["layer"] for sp in anchors for entry in sp.labels["layers"]} == \
        {layer.name for layer in ANCHORS.layers if layer.name != LEAD}
    # inference: forward passes only, no dropout (the identity)
    infer = load_suite("models", model_names=("TextCNN",), batch=64)
    assert {getattr(sp.problem, "direction", "fwd") for sp in infer} == {"fwd"}
    with pytest.raises(TypeError, match="anchors must be a bool"):
        load_suite("models", anchors="no")


def test_models_suite_training_adds_every_backward_pass_and_reads_model_files(tmp_path):
    from dlcb_kernels.models.io import save_model

    path = tmp_path / "mine.json"
    save_model(models.MODELS["TextCNN"], path)
    train = load_suite("models", model_names=(str(path),), batch=4, mode="train")
    directions = {(sp.problem.op, getattr(sp.problem, "direction", None)) for sp in train}
    assert ("conv", "bwd_filter") in directions and ("memory", "bwd") in directions
    passes = {entry["pass"] for sp in train for entry in sp.labels["layers"]}
    assert "fwd infer" not in passes and {"fwd", "fwd train", "bwd_weights"} <= passes
    both = load_suite("models", model_names=(str(path),), batch=4, mode="both")
    infer = load_suite("models", model_names=(str(path),), batch=4)
    assert {sp.problem for sp in train} | {sp.problem for sp in infer} == {sp.problem for sp in both}
    with pytest.raises(ValueError, match="mode"):
        load_suite("models", mode="serve")
    with pytest.raises(ValueError, match="only be chosen for the models suite"):
        load_suite("quick", model_names=("ResNet50",))
    with pytest.raises(ValueError, match="batch"):
        load_suite("models", batch=0)


# Forward MACs per sample of the reference models (../shared/CONTEXT.md, to the digits given there).
MODEL_GMACS = {"AlexNet": 0.724, "AlexNetOWT": 0.714, "GoogLeNet": 1.583, "VGG16": 15.470, "VGG19": 19.632,
               "ResNet50": 3.858, "ResNet101": 7.570, "ResNet152": 11.282, "EnglishAcoustic": 0.0347,
               "TextCNN": 0.0087, "DeepMNIST": 0.012}


@pytest.mark.parametrize("name", sorted(MODEL_GMACS))
def test_model_layers_reproduce_the_cookbook_mac_counts(name):
    digits = len(str(MODEL_GMACS[name]).split(".")[1])
    assert round(models.MODELS[name].macs_per_sample() / 1e9, digits) == MODEL_GMACS[name]


def test_conv_problem_model():
    p = ConvProblem(8, 64, 56, 56, 64, 3, 3, 1, 1)
    assert (p.p, p.q) == (56, 56)
    assert p.flops() == 2 * 8 * 64 * 64 * 9 * 56 * 56
    assert p.bytes_min() == 4 * (8 * 64 * 56 * 56 * 2 + 64 * 64 * 9)
    assert p.key() == "conv fwd N8 C64 56x56 K64 3x3 pad1,1 str1,1"
    assert problem_from_params("conv", p.params()) == p
    g = ConvProblem(2, 8, 9, 9, 4, 3, 3, groups=2, stride_h=2, stride_w=2, dil_h=2, dil_w=2)
    assert (g.p, g.q) == (3, 3) and g.flops() == 2 * 2 * 4 * 4 * 9 * 9
    assert g.scaled_to(g.flops() / 2 - 1).n == 1 == g.scaled_to(1).n


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(n=0), ValueError, "n must be >= 1"), (dict(pad_h=-1), ValueError, "pad_h must be >= 0"),
    (dict(groups=3), ValueError, "groups=3 must divide"), (dict(r=9), ValueError, "does not fit"),
    (dict(direction="sideways"), ValueError, "direction"), (dict(c=2.0), TypeError, "c must be an int"),
])
def test_conv_problem_validation(kwargs, exc, match):
    base = dict(n=1, c=4, h=5, w=5, k=4, r=3, s=3)
    with pytest.raises(exc, match=match):
        ConvProblem(**{**base, **kwargs})


@pytest.mark.parametrize("direction", ["fwd", "bwd_data", "bwd_filter"])
def test_conv_check_error_accepts_the_reference_and_catches_a_wrong_tap(direction):
    from dlcb_kernels import numpy_ops

    p = ConvProblem(3, 4, 9, 8, 20, 3, 3, 1, 1, direction=direction)
    inputs = p.make_inputs(2)
    args = p.conv_args()
    if direction == "fwd":
        good = numpy_ops.conv2d_forward(inputs["x"], inputs["w"], **args)
        w = inputs["w"].copy()
        w[:, :, 1, 1] = 0
        bad = numpy_ops.conv2d_forward(inputs["x"], w, **args)
    elif direction == "bwd_data":
        good = numpy_ops.conv2d_backward_data(inputs["dy"], inputs["w"], p.x_shape, **args)
        w = inputs["w"].copy()
        w[:, :, 0, 2] = 0
        bad = numpy_ops.conv2d_backward_data(inputs["dy"], w, p.x_shape, **args)
    else:
        good = numpy_ops.conv2d_backward_filter(inputs["x"], inputs["dy"], p.w_shape, **args)
        bad = numpy_ops.conv2d_backward_filter(inputs["x"][:, :, ::-1].copy(), inputs["dy"], p.w_shape, **args)
    assert p.check_error(inputs, good) <= p.tolerance()
    assert p.check_error(inputs, bad) > 10 * p.tolerance()
    assert p.check_error(inputs, good[:1]) == float("inf")


def test_rnn_problem_flops_both_ways():
    lstm = RnnProblem(1024, 128, 25, "lstm")
    assert lstm.flops() == 8 * 25 * 128 * 1024 ** 2
    assert lstm.flops_full() == 2 * lstm.flops()          # input size = hidden size
    assert RnnProblem(1760, 16, 50, "vanilla").flops() == 2 * 50 * 16 * 1760 ** 2 + 50 * 16 * 1760
    assert RnnProblem(512, 32, 25, "gru", direction="bwd").flops() == 2 * 6 * 25 * 32 * 512 ** 2
    assert RnnProblem(64, 4, 10, "gru", input_size=32).flops_full() == 6 * 10 * 4 * 64 * (64 + 32)
    assert RnnProblem(64, 4, 100, "lstm").scaled_to(RnnProblem(64, 4, 30, "lstm").flops()).timesteps == 25
    assert RnnProblem(64, 4, 100, "lstm").scaled_to(RnnProblem(64, 2, 1, "lstm").flops()) == RnnProblem(64, 2, 1)
    assert problem_from_params("rnn", lstm.params()) == lstm
    with pytest.raises(ValueError, match="cell"):
        RnnProblem(8, 1, 1, "elman")
    with pytest.raises(ValueError, match="timesteps must be >= 1"):
        RnnProblem(8, 1, 0)


@pytest.mark.parametrize("cell", ["vanilla", "lstm", "gru"])
@pytest.mark.parametrize("direction", ["fwd", "bwd"])
def test_rnn_check_error_accepts_the_reference_and_catches_a_wrong_gate(cell, direction):
    from dlcb_kernels import numpy_ops

    p = RnnProblem(24, 6, 5, cell, input_size=7, direction=direction)
    inputs = p.make_inputs(3)
    assert inputs["weights"]["weight_ih"].shape == (p.gates * 24, 7)
    wrong = dict(inputs["weights"])
    wrong["weight_hh"] = wrong["weight_hh"] * 1.1
    results = []
    for weights in (inputs["weights"], wrong):
        y, _, _, saved = numpy_ops.rnn_forward(inputs["x"], inputs["h0"], weights, cell, inputs.get("c0"))
        results.append(y if direction == "fwd" else numpy_ops.rnn_backward(saved, weights, inputs["dy"]))
    assert p.check_error(inputs, results[0]) <= p.tolerance()
    assert p.check_error(inputs, results[1]) > 10 * p.tolerance()
