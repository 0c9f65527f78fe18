"""Memory-bound layer calls: MemoryProblem's references against torch, its bytes against the
model layers', the registry's torch/ours implementations through the bench, the a + bytes / b
time model, and predict_model charging measured calls."""

import math

import numpy as np
import pytest

from dlcb_kernels import registry
from dlcb_kernels.bench import BenchConfig, run_bench
from dlcb_kernels.measure import Settings
from dlcb_kernels.models import Layer, Model
from dlcb_kernels.models.layers import (
    activation,
    bn,
    concat,
    dropout,
    eltwise,
    fc,
    loss,
    lrn,
    pool,
    relu,
    softmax,
)
from dlcb_kernels.predict import ThroughputModel, predict_model
from dlcb_kernels.predict.kernel_model import SINGLE_RECORD_UNCERTAINTY, MemoryTimeFit
from dlcb_kernels.problems import GemmProblem, MemoryProblem, problem_from_params
from dlcb_kernels.problems.memory import ACTIVATIONS, BN_EPS, LRN, activation_reference
from dlcb_kernels.suites import SuiteProblem

torch = pytest.importorskip("torch")
F = torch.nn.functional

# One small case per kind (pool: overlapping windows with padding, and average pooling).
CASES = [
    ("relu", (3, 4, 5, 6), {}),
    ("relu", (3, 4, 5, 6), {"inplace": True}),
    ("pool", (2, 3, 9, 9), {"window": (3, 3), "stride": (2, 2), "pad": (1, 1), "mode": "max"}),
    ("pool", (2, 3, 9, 9), {"window": (3, 3), "stride": (2, 2), "mode": "avg"}),
    ("bn", (3, 4, 5, 6), {}),
    ("lrn", (2, 8, 4, 5), {}),
    ("eltwise", (3, 4, 5, 6), {"operands": 3}),
    ("concat", (2, 8, 3, 3), {}),
    ("softmax", (3, 10), {}),
    ("dropout", (3, 40), {}),
    ("dropout", (3, 40), {"rate": 0.1}),
    ("loss", (3, 10), {}),
    ("loss", (2, 3, 7), {}),
    *[("activation", (3, 4, 5, 6), {"function": function}) for function in ACTIVATIONS],
]

TORCH_ACTIVATIONS = {"sigmoid": torch.sigmoid, "silu": F.silu, "elu": F.elu, "mish": F.mish, "softplus": F.softplus,
                     "hardswish": F.hardswish, "hardsigmoid": F.hardsigmoid, "leaky_relu": F.leaky_relu}


def _torch_forward(problem, xs, gamma, beta, labels=None):
    x = xs[0]
    if problem.kind == "loss":
        return F.cross_entropy(x.reshape(-1, x.shape[-1]), labels.reshape(-1), reduction="none").reshape(labels.shape)
    if problem.kind == "relu":
        return F.relu(x)
    if problem.kind == "activation":
        return TORCH_ACTIVATIONS[problem.function](x)
    if problem.kind == "pool":
        if problem.mode == "max":
            return F.max_pool2d(x, problem.window, problem.stride, problem.pad, ceil_mode=True)
        return F.avg_pool2d(x, problem.window, problem.stride, problem.pad, ceil_mode=True)
    if problem.kind == "bn":
        channels = x.shape[1]
        mean, var = torch.zeros(channels, dtype=x.dtype), torch.ones(channels, dtype=x.dtype)
        return F.batch_norm(x, mean, var, gamma, beta, training=problem.training, eps=BN_EPS)
    if problem.kind == "lrn":
        return F.local_response_norm(x, LRN["size"], LRN["alpha"], LRN["beta"], LRN["k"])
    if problem.kind == "eltwise":
        return sum(xs[1:], x)
    if problem.kind == "concat":
        return torch.cat(xs, dim=1)
    if problem.kind == "softmax":
        return torch.softmax(x, dim=-1)
    return x                    # dropout at inference


def _rtol(problem) -> float:
    # torch's hardsigmoid backward multiplies by 1/6 rounded to float32, in float64 too
    return 1e-7 if problem.kind == "activation" and problem.function == "hardsigmoid" and problem.direction == "bwd" \
        else 1e-10


@pytest.mark.parametrize("kind, tensor, options", [c for c in CASES if c[0] != "dropout"])
@pytest.mark.parametrize("direction", ["fwd", "bwd"])
def test_reference_matches_torch_in_float64(kind, tensor, options, direction):
    for training in (False, True):
        problem = MemoryProblem(kind, direction, tensor, training, **options)
        inputs = problem.make_inputs(3)
        xs = [torch.from_numpy(x.astype(np.float64)).requires_grad_(True) for x in inputs["x"]]
        dy = torch.from_numpy(inputs["dy"].astype(np.float64))
        gamma = beta = None
        if kind == "bn":
            gamma, beta = (torch.from_numpy(inputs[name].astype(np.float64)) for name in ("gamma", "beta"))
        labels = inputs.get("labels")
        y = _torch_forward(problem, xs, gamma, beta, None if labels is None else torch.from_numpy(labels))
        expected = y if direction == "fwd" else torch.autograd.grad(y, xs[0], dy)[0]
        ours = problem.reference([x.detach().numpy() for x in xs], dy.numpy(),
                                 None if gamma is None else gamma.numpy(), None if beta is None else beta.numpy(),
                                 labels)
        np.testing.assert_allclose(ours, expected.detach().numpy(), rtol=_rtol(problem), atol=1e-12)


@pytest.mark.parametrize("function", ACTIVATIONS)
def test_activation_reference_is_torchs_function_and_derivative_over_every_region(function):
    """Beyond [-1, 1] too: hardswish's and hardsigmoid's flat ends, softplus's linear region."""
    x = torch.linspace(-25.0, 25.0, 2001, dtype=torch.float64).requires_grad_(True)
    x = x[(x.detach() - x.detach().round()).abs() > 1e-6].detach().requires_grad_(True)   # off the kinks at +-3
    y = TORCH_ACTIVATIONS[function](x)
    slope, = torch.autograd.grad(y.sum(), x)
    value, derivative = activation_reference(function, x.detach().numpy())
    np.testing.assert_allclose(value, y.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(derivative, slope.numpy(), rtol=_rtol(MemoryProblem("activation", "bwd", (1, 1),
                                                                                 function=function)), atol=1e-12)
    with pytest.raises(ValueError, match="function must be one of"):
        MemoryProblem("activation", "fwd", (2, 4), function="swish")


def test_an_activations_function_keys_its_records_apart():
    silu, mish = (MemoryProblem("activation", "fwd", (8, 64), function=f) for f in ("silu", "mish"))
    assert silu.key() == "memory activation fwd 8x64 silu" and silu.params()["function"] == "silu"
    assert silu != mish and MemoryProblem.from_params(mish.params()) == mish
    assert "function" not in MemoryProblem("relu", "fwd", (8, 64)).params()   # older records' keys unchanged
    assert MemoryProblem.from_layer(activation("a", (64,), "mish"), 8, "fwd") == mish


def test_dropout_check_accepts_any_mask_and_nothing_else():
    problem = MemoryProblem("dropout", "fwd", (2, 50), training=True)
    inputs = problem.make_inputs(0)
    x = inputs["x"][0]
    mask = np.random.default_rng(1).random(x.shape) < 0.5
    assert problem.check_error(inputs, x * mask * 2) == 0
    assert problem.check_error(inputs, x * mask) > problem.tolerance()
    backward = MemoryProblem("dropout", "bwd", (2, 50))
    assert backward.check_error(inputs, inputs["dy"] * mask * 2) == 0


def test_inplace_is_relus_forward_only_and_keys_apart():
    inplace = MemoryProblem("relu", "fwd", (2, 3), inplace=True)
    assert inplace.key() == "memory relu fwd 2x3 inplace" and inplace != MemoryProblem("relu", "fwd", (2, 3))
    assert problem_from_params("memory", inplace.params()) == inplace
    assert "inplace" not in MemoryProblem("relu", "fwd", (2, 3)).params()     # tables written before still match
    assert not MemoryProblem("relu", "bwd", (2, 3), inplace=True).inplace     # the backward is the same call
    assert not MemoryProblem("softmax", "fwd", (2, 3), inplace=True).inplace
    layer = Layer("r", "relu", (3,), inplace=True)
    assert MemoryProblem.from_layer(layer, 2, "fwd") == inplace
    assert layer.memory_bytes(2, "fwd") == relu("r", (3,)).memory_bytes(2, "fwd")   # the same bytes
    with pytest.raises(TypeError, match="inplace"):
        MemoryProblem("relu", "fwd", (2, 3), inplace=1)


def test_the_loss_runs_in_training_only_one_loss_per_row():
    problem = MemoryProblem("loss", "fwd", (4, 6, 10))
    assert problem.training and problem.output_shape == (4, 6) and problem.key() == "memory loss fwd 4x6x10"
    inputs = problem.make_inputs(0)
    assert inputs["labels"].shape == (4, 6) and inputs["labels"].max() < 10
    layer = loss("loss", (6, 10))
    assert not layer.runs_at_inference and layer.output_tensor() == (6,) and layer.params("trainable") == 0


def test_fields_normalize_and_params_round_trip():
    problem = MemoryProblem("relu", "fwd", (2, 3), training=True, window=(3, 3), mode="avg")
    assert problem == MemoryProblem("relu", "fwd", (2, 3))        # relu's forward has no training mode
    assert MemoryProblem("bn", "bwd", (2, 3, 4, 4)).training        # a backward is always training
    assert MemoryProblem("bn", "fwd", (2, 3, 4, 4), training="true").training   # dlcb bench --problem
    pooled = MemoryProblem("pool", "bwd", (2, 3, 9, 9), window=(3, 3), stride=(2, 2), pad=(1, 1))
    assert problem_from_params("memory", pooled.params()) == pooled
    assert all(isinstance(v, (str, int, float, bool)) for v in pooled.params().values())   # hashable, JSON-stable
    light = MemoryProblem("dropout", "fwd", (2, 3), training=True, rate=0.1)
    assert light.key().endswith("train rate 0.1") and problem_from_params("memory", light.params()) == light
    assert MemoryProblem("relu", "fwd", (2, 3), rate=0.1).rate == 0.5   # other kinds hold the default
    with pytest.raises(ValueError, match="rate"):
        MemoryProblem("dropout", "fwd", (2, 3), rate=1.0)
    assert pooled.key() == "memory pool bwd 2x3x9x9 max 3x3/2x2 pad 1x1"
    assert MemoryProblem("dropout", "fwd", (2, 3)).key().endswith("infer")
    with pytest.raises(ValueError, match="kind"):
        MemoryProblem("conv", "fwd", (2, 3))
    with pytest.raises(ValueError, match="direction"):
        MemoryProblem("relu", "bwd_data", (2, 3))
    with pytest.raises(ValueError, match="N x C x H x W"):
        MemoryProblem("pool", "fwd", (2, 3))
    with pytest.raises(ValueError, match="dtype"):
        MemoryProblem("relu", "fwd", (2, 3), dtype="float16")
    with pytest.raises(ValueError, match="window"):
        MemoryProblem("pool", "fwd", (1, 1, 2, 2), window=(5, 5))


LAYERS = [relu("relu", (4, 5, 6)), pool("pool", 3, 9, 9, 3, 2, pad=1), pool("avg", 3, 7, 7, 2, mode="avg"),
          bn("bn", (4, 5, 6)), lrn("lrn", (8, 4, 5)), eltwise("add", (4, 5, 6), operands=3),
          concat("cat", (8, 3, 3)), softmax("prob", (10,)), dropout("drop", (40,)), loss("loss", (6, 10))]


@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: layer.name)
def test_bytes_are_the_layers_and_flops_one_per_element(layer):
    batch = 3
    fwd = MemoryProblem.from_layer(layer, batch, "fwd")
    bwd = MemoryProblem.from_layer(layer, batch, "bwd_data")
    assert fwd.bytes_min() == layer.memory_bytes(batch, "fwd")
    assert bwd.bytes_min() == layer.memory_bytes(batch, "bwd_data") + layer.memory_bytes(batch, "bwd_weights")
    assert fwd.to_layer()[1] == batch and fwd.to_layer()[0].memory_bytes(batch, "fwd") == fwd.bytes_min()
    assert fwd.flops() == layer.output_elements(batch)
    assert bwd.flops() == layer.input_elements(batch)
    with pytest.raises(ValueError, match="pass_"):
        MemoryProblem.from_layer(layer, batch, "bwd_weights")
    with pytest.raises(ValueError, match="no MemoryProblem"):
        MemoryProblem.from_layer(fc("fc", 4, 5), batch, "fwd")


FAST = Settings(min_samples=3, min_time=0.0, max_time=0.02, warmup_time=0.0, settle=0.0)


def test_registry_implementations_pass_the_bench_check(tmp_path):
    problems = [SuiteProblem(MemoryProblem(kind, direction, tensor, training, **options), {"set": "test"})
                for kind, tensor, options in CASES for direction in ("fwd", "bwd") for training in (False, True)
                if not (direction == "bwd" and not training)]
    impls = registry.select(["memory"], "torch,ours", backend="cpu")
    assert sorted(impl.name for impl in impls) == ["memory/cpu/ours", "memory/cpu/torch"]
    doc = run_bench(BenchConfig(problems, impls, threads=1, settings=FAST, suite="test"), tmp_path / "m.json",
                    progress_stream=None)
    assert len(doc["records"]) == 2 * len(problems)
    bad = [(r["problem"], r["implementation"], r.get("reason")) for r in doc["records"] if r["status"] != "ok"]
    assert not bad
    assert all(r["error"]["value"] <= r["error"]["tolerance"] for r in doc["records"])


# The time model ------------------------------------------------------------------------------------

def test_time_fit_recovers_fixed_cost_and_rate():
    nbytes = [1e4, 1e5, 1e6, 1e7]
    fit = MemoryTimeFit.fit(nbytes, [5e-6 + b / 2e9 for b in nbytes])
    assert fit.fixed_s == pytest.approx(5e-6) and fit.bytes_per_s == pytest.approx(2e9)
    assert fit.seconds(3e6) == pytest.approx(5e-6 + 3e6 / 2e9)
    assert fit.uncertainty < 0.03 and fit.count == 4


def test_time_fit_keeps_the_fixed_cost_non_negative_and_one_record_scales():
    nbytes = [1e5, 2e5, 4e5]
    fit = MemoryTimeFit.fit(nbytes, [b / 1e9 - 2e-5 for b in nbytes])   # a negative intercept fits best
    assert fit.fixed_s == 0 and fit.bytes_per_s > 0
    one = MemoryTimeFit.fit([1e6], [1e-3])
    assert one.seconds(2e6) == pytest.approx(2e-3) and one.uncertainty == SINGLE_RECORD_UNCERTAINTY
    with pytest.raises(ValueError):
        MemoryTimeFit.fit([0.0], [1e-3])


def test_time_fit_with_extra_work_recovers_the_three_terms():
    """Pooling: bytes and window reads apart (3x3/1 reads 9 an output, 2x2/2 one an input)."""
    nbytes = [1e6, 4e6, 2e6, 8e6, 3e6]
    reads = [9e6, 1e6, 4.5e6, 2e6, 27e6]
    seconds = [2e-6 + b / 20e9 + r / 0.6e9 for b, r in zip(nbytes, reads)]
    fit = MemoryTimeFit.fit(nbytes, seconds, reads, "window reads")
    assert fit.fixed_s == pytest.approx(2e-6, rel=1e-6) and fit.bytes_per_s == pytest.approx(20e9)
    assert fit.work_per_s == pytest.approx(0.6e9)
    assert fit.seconds(5e6, 3e6) == pytest.approx(2e-6 + 5e6 / 20e9 + 3e6 / 0.6e9)
    assert "window reads / 0.6 G/s" in fit.describe()
    # bytes alone cannot tell a 3x3/1 pool's time from a 2x2/2 one's: the same data misfit
    assert MemoryTimeFit.fit(nbytes, seconds).uncertainty > 0.3 > 0.03 > fit.uncertainty
    with pytest.raises(ValueError, match="work"):
        MemoryTimeFit.fit(nbytes, seconds, reads[:2])


def test_time_fit_drops_a_term_that_would_be_negative():
    nbytes, reads = [1e6, 2e6, 3e6, 4e6], [4e6, 1e6, 3e6, 2e6]
    fit = MemoryTimeFit.fit(nbytes, [b / 1e10 - r / 1e12 + 1e-4 for b, r in zip(nbytes, reads)], reads)
    assert fit.fixed_s >= 0 and fit.bytes_per_s > 0 and fit.work_per_s == math.inf
    assert fit.seconds(1e6, 1e9) == pytest.approx(fit.fixed_s + 1e6 / fit.bytes_per_s)


@pytest.mark.parametrize("window, stride, pad, reads", [((3, 3), (1, 1), (1, 1), 8 * 16 * 14 * 14 * 9),
                                                        ((3, 3), (2, 2), (0, 0), 8 * 16 * 7 * 7 * 9),
                                                        ((14, 14), (14, 14), (0, 0), 8 * 16 * 14 * 14)])
def test_pool_work_is_outputs_times_window_area(window, stride, pad, reads):
    for direction in ("fwd", "bwd"):
        problem = MemoryProblem("pool", direction, (8, 16, 14, 14), window=window, stride=stride, pad=pad)
        assert problem.extra_work() == ("window reads", reads)
    assert MemoryProblem("relu", "fwd", (8, 16, 14, 14)).extra_work() is None


@pytest.mark.parametrize("rate, misses", [(0.5, 2048), (0.1, 410), (0.9, 410), (0.0, 0)])
def test_dropout_work_is_its_training_forwards_branch_misses(rate, misses):
    assert MemoryProblem("dropout", "fwd", (8, 512), True, rate=rate).extra_work() == ("dropout branch misses", misses)
    assert MemoryProblem("dropout", "bwd", (8, 512), rate=rate).extra_work() is None
    assert MemoryProblem("dropout", "fwd", (8, 512), False, rate=rate).extra_work() is None


def test_time_fit_keeps_bytes_alone_where_the_work_follows_them():
    """One dropout rate only: the work is proportional to the bytes and tells nothing apart."""
    nbytes = [1e5, 4e5, 2e6]
    fit = MemoryTimeFit.fit(nbytes, [1e-6 + b / 1e9 for b in nbytes], [b / 16 for b in nbytes], "misses")
    assert fit.work_per_s == math.inf and fit.bytes_per_s == pytest.approx(1e9)


# The predictor ------------------------------------------------------------------------------------

def _synthetic_table(memory_seconds: dict):
    from test_predict import OURS, make_table, record, seconds_by_law

    gemms = [GemmProblem(8, 10, 64, trans_b=True), GemmProblem(10, 64, 8, trans_a=True), GemmProblem(8, 64, 10)]
    recs = [record(p, seconds_by_law(p), impl=OURS) for p in gemms]
    memory_impl = registry.select(["memory"], "ours", backend="cpu")[0]
    recs += [record(p, s, impl=memory_impl) for p, s in memory_seconds.items()]
    return make_table(recs)


def test_predict_model_charges_exact_and_fitted_memory_calls():
    model = Model("m", (fc("fc", 64, 10), relu("relu", (10,), count=3), softmax("prob", (10,))), (64,))
    relu_fwd = MemoryProblem.from_layer(model.layers[1], 8, "fwd")
    relu_bwd = MemoryProblem.from_layer(model.layers[1], 8, "bwd_data")
    other_relu = MemoryProblem("relu", "fwd", (64, 10))
    doc = _synthetic_table({relu_fwd: 7e-6, relu_bwd: 9e-6, other_relu: 2e-5})
    kernels = ThroughputModel(doc, impl="ours")
    assert kernels.predict(relu_fwd).source == "exact"
    assert len(kernels.entries) == 3 and len(kernels.memory_entries) == 3
    assert all(row["op"] == "gemm" for row in kernels.cross_validate())

    train = predict_model(model, kernels, batch=8, mode="train")
    layer = train.layers[1]
    assert layer.memory_s == pytest.approx(3 * (7e-6 + 9e-6))
    assert layer.sources == {"exact": pytest.approx(3 * (7e-6 + 9e-6))}
    assert {k["problem"] for k in layer.kernels} == {relu_fwd.key(), relu_bwd.key()}
    # softmax has no record of its kind: bytes at the measured bandwidth
    prob = train.layers[2]
    assert set(prob.sources) == {"memory"}
    bandwidth = kernels.bandwidth_gbs * 1e9
    layer_bytes = sum(model.layers[2].memory_bytes(8, p) for p in ("fwd", "bwd_data"))
    assert prob.memory_s == pytest.approx(layer_bytes / bandwidth)

    # another batch: no exact record, the relu forward time model (two records) predicts
    infer = predict_model(model, kernels, batch=16, mode="infer").layers[1]
    assert set(infer.sources) == {"fitted"}
    fit = MemoryTimeFit.fit([relu_fwd.bytes_min(), other_relu.bytes_min()], [7e-6, 2e-5])
    expected = fit.seconds(MemoryProblem.from_layer(model.layers[1], 16, "fwd").bytes_min())
    assert infer.memory_s == pytest.approx(3 * expected)
    assert math.isclose(infer.uncertainty, SINGLE_RECORD_UNCERTAINTY)


def test_a_pool_never_measured_is_fitted_from_its_bytes_and_window_reads():
    def law(problem):
        return 3e-6 + problem.bytes_min() / 30e9 + problem.extra_work()[1] / 0.5e9

    shapes = [((8, 64, 56, 56), (2, 2), (2, 2), (0, 0)), ((8, 32, 28, 28), (3, 3), (2, 2), (0, 0)),
              ((4, 16, 32, 32), (2, 2), (2, 2), (0, 0)), ((8, 128, 14, 14), (3, 3), (2, 2), (1, 1))]
    measured = {MemoryProblem("pool", "fwd", t, window=w, stride=st, pad=pd): 0.0 for t, w, st, pd in shapes}
    kernels = ThroughputModel(_synthetic_table({p: law(p) for p in measured}), impl="ours")
    stride_one = MemoryProblem("pool", "fwd", (8, 96, 28, 28), window=(3, 3), stride=(1, 1), pad=(1, 1))
    prediction = kernels.predict(stride_one)
    assert prediction.source == "fitted" and "window reads" in prediction.detail
    assert prediction.seconds == pytest.approx(law(stride_one), rel=1e-6)


def test_the_loss_is_charged_in_training_only_as_measured_calls():
    from dlcb_kernels.models import with_loss

    model = with_loss(Model("m", (fc("fc", 64, 10), relu("relu", (10,)), softmax("prob", (10,))), (64,)))
    assert [layer.kind for layer in model.layers] == ["fc", "relu", "loss"]    # the softmax is the loss's own
    head = model.layers[-1]
    loss_fwd = MemoryProblem.from_layer(head, 8, "fwd")
    loss_bwd = MemoryProblem.from_layer(head, 8, "bwd_data")
    kernels = ThroughputModel(_synthetic_table({loss_fwd: 5e-6, loss_bwd: 6e-6}), impl="ours")
    train = predict_model(model, kernels, batch=8, mode="train").layers[2]
    assert train.memory_s == pytest.approx(5e-6 + 6e-6) and train.sources == {"exact": pytest.approx(11e-6)}
    infer = predict_model(model, kernels, batch=8, mode="infer")
    assert infer.layers[2].total_s == 0 and infer.layers[2].kernels == []


def test_exact_records_move_to_the_first_touch_cost_given():
    problem = MemoryProblem("relu", "fwd", (64, 4096))
    doc = _synthetic_table({problem: 2e-3})
    entry = next(r for r in doc["records"] if r["op"] == "memory")
    entry["conditions"] = {"page_faults_per_call": 256.0, "first_touch_s_per_page": 1e-6}
    as_measured = ThroughputModel(doc, impl="ours").predict(problem)
    assert as_measured.seconds == pytest.approx(2e-3)
    dearer = ThroughputModel(doc, impl="ours", first_touch=3e-6).predict(problem)
    assert dearer.seconds == pytest.approx(2e-3 + 256 * 2e-6) and "256 fresh pages" in dearer.detail
    cheaper = ThroughputModel(doc, impl="ours", first_touch=0.0).predict(problem)
    assert cheaper.seconds == pytest.approx(2e-3 - 256e-6)
    entry["conditions"]["page_faults_per_call"] = 1e6            # never below a tenth of the record
    assert ThroughputModel(doc, impl="ours", first_touch=0.0).predict(problem).seconds == pytest.approx(2e-4)
    with pytest.raises(ValueError, match="first_touch"):
        ThroughputModel(doc, impl="ours", first_touch=-1.0)
