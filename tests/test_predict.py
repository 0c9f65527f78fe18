"""The predictor on synthetic tables whose times follow a known efficiency law, and on a real
small table benchmarked in-process."""

import argparse
import json
import math
from dataclasses import dataclass

import numpy as np
import pytest

from dlcb_kernels import cli, records, table
from dlcb_kernels.models import get_model, model_to_dict
from dlcb_kernels.predict import (
    ThroughputModel,
    cli_predict,
    format_prediction,
    predict_model,
    prediction_to_dict,
    summarize_cross_validation,
)
from dlcb_kernels.predict.kernel_model import (
    EXACT_UNCERTAINTY_FLOOR,
    MEMORY_UNCERTAINTY,
    ROOFLINE_UNCERTAINTY_OTHER_OP,
    ROOFLINE_UNCERTAINTY_SAME_OP,
    format_cross_validation,
    work_flops,
)
from dlcb_kernels.problems import ConvProblem, GemmProblem, RnnProblem

PEAK = 100.0        # GFLOP/s
BANDWIDTH = 20.0    # GB/s
DEVICE = "cpu:test"


@dataclass(frozen=True)
class FakeImpl:
    name: str
    provider: str
    backend: str = "cpu"

    @property
    def variant(self) -> str:
        return self.name.rsplit("/", 1)[-1]


NUMPY = FakeImpl("gemm/cpu/numpy", "vendor")
OURS = FakeImpl("gemm/cpu/ours-avx2", "ours")


def roofline(problem):
    return min(PEAK, work_flops(problem) / problem.bytes_min() * BANDWIDTH)


def law(problem):
    """The efficiency the synthetic tables follow: low for small problems, and a short reduction
    dimension costs more."""
    flops = work_flops(problem)
    size = 1.0 / (1.0 + math.sqrt(2e6 / flops))
    reduction = {"gemm": lambda p: p.k, "conv": lambda p: p.c * p.r * p.s,
                 "rnn": lambda p: p.hidden}[problem.op](problem)
    return 0.85 * size * reduction / (reduction + 24)


def seconds_by_law(problem, factor=1.0):
    return factor * work_flops(problem) / (law(problem) * roofline(problem) * 1e9)


def record(problem, seconds, impl=NUMPY, device=DEVICE, status="ok", rel_noise=0.01, rounds=1):
    r = records.base_record(problem, impl, run_id="run0", device_id=device, cache="warm", threads=1).to_json()
    r["status"] = status
    if status == "ok":
        r["stats"] = {"median": seconds, "q1": seconds * 0.995, "q3": seconds * 1.005, "rel_noise": rel_noise,
                      "count": 10}
        r["gflops"] = r["flops"] / seconds / 1e9
        r["rounds"] = rounds
    return r


def device_block(device_id=DEVICE):
    return {"id": device_id, "kind": "cpu", "name": "synthetic CPU",
            "peaks": {"fp32": {"measured_gflops": PEAK, "measured_summary": "synthetic",
                               "theoretical_gflops": 2 * PEAK, "theoretical_formula": "synthetic"}},
            "memory": {"triad_gbs": BANDWIDTH}}


def make_table(recs, devices=(DEVICE,)):
    doc = table.new_table()
    doc["runs"].append({"run_id": "run0"})
    doc["devices"] = [device_block(d) for d in devices]
    doc["records"] = list(recs)
    return table.validate(doc)


def log_uniform(rng, low, high, size):
    return np.exp(rng.uniform(np.log(low), np.log(high), size)).astype(int)


def random_gemms(rng, count):
    dims = log_uniform(rng, 16, 1024, (count, 3))
    flags = rng.integers(0, 2, (count, 2)).astype(bool)
    return [GemmProblem(int(m), int(n), int(k), trans_a=bool(ta), trans_b=bool(tb))
            for (m, n, k), (ta, tb) in zip(dims, flags)]


def random_convs(rng, count, channels, sizes, kernels, batches):
    """Square images and kernels (padded to keep the size): channels and sizes log-uniform in
    their (low, high), kernels and batches drawn from their lists."""
    convs = []
    for _ in range(count):
        c, k = (int(x) for x in log_uniform(rng, *channels, 2))
        hw = int(log_uniform(rng, *sizes, 1)[0])
        r = int(rng.choice(kernels))
        convs.append(ConvProblem(n=int(rng.choice(batches)), c=c, h=hw, w=hw, k=k, r=r, s=r, pad_h=r // 2,
                                 pad_w=r // 2))
    return convs


@pytest.fixture(scope="module")
def gemm_table():
    rng = np.random.default_rng(7)
    train = random_gemms(rng, 48)
    return make_table(record(p, seconds_by_law(p)) for p in train), train


# Kernel predictions --------------------------------------------------------------------------------

def test_exact_record_gives_its_median_and_noise(gemm_table):
    doc, train = gemm_table
    model = ThroughputModel(doc)
    p = train[3]
    pred = model.predict(p)
    assert pred.source == "exact"
    assert pred.seconds == pytest.approx(seconds_by_law(p))
    assert pred.uncertainty == EXACT_UNCERTAINTY_FLOOR  # 0.5 x 1% noise is below the one-round floor
    assert pred.implementation == NUMPY.name
    noisy = ThroughputModel(make_table([record(p, 1e-3, rel_noise=0.2, rounds=3)])).predict(p)
    assert noisy.uncertainty == pytest.approx(0.1)


def test_fitted_predictions_of_held_out_shapes_follow_the_law(gemm_table):
    doc, train = gemm_table
    model = ThroughputModel(doc)
    held_out = [p for p in random_gemms(np.random.default_rng(99), 30) if p not in train]
    errors = []
    for p in held_out:
        pred = model.predict(p)
        assert pred.source == "fitted" and "records" in pred.detail
        errors.append(abs(pred.seconds / seconds_by_law(p) - 1))
    assert np.median(errors) < 0.05
    assert np.quantile(errors, 0.9) < 0.12
    # The stated uncertainty is the group's leave-one-out p90: of the order of the errors seen.
    assert 0.005 < model.predict(held_out[0]).uncertainty < 0.2
    # Far beyond the records the efficiency is held at the edge of their range (the law: near 0.85)
    huge = model.predict(GemmProblem(16384, 16384, 16384))
    assert "extrapolating in FLOPs, intensity, m, n, k beyond the records' range" in huge.detail
    efficiency = work_flops(GemmProblem(16384, 16384, 16384)) / huge.seconds / 1e9 / PEAK
    assert 0.8 * max(law(p) for p in train) <= efficiency <= max(law(p) for p in train)
    # ... and its uncertainty is extrapolation's: the edge records' leave-one-out errors, not
    # below the group's
    assert huge.uncertainty >= model.predict(held_out[0]).uncertainty


def test_extrapolation_uncertainty_comes_from_the_records_at_the_ranges_edge():
    from dlcb_kernels.predict.kernel_model import _edge_records, _GroupModel

    x = np.array([[0.0, 5.0], [1.0, 5.0], [2.0, 5.0], [2.0, 6.0]])
    # column 0: the minimum 0 is alone, the maximum 2 shared; column 1: the maximum 6 is alone
    assert _edge_records(x).tolist() == [True, False, False, True]
    assert not _edge_records(x[:1]).any()
    # a law that bends beyond the middle: the edge records, left out, are missed by more
    rng = np.random.default_rng(5)
    features = rng.uniform(-1, 1, (40, 2))
    efficiency = np.log(0.5) - 0.8 * features[:, 0] ** 4
    fit = _GroupModel.fit(features, efficiency, 2)
    assert fit.uncertainty_beyond >= fit.uncertainty
    lone = _GroupModel.fit(features[:1], efficiency[:1], 2)
    assert lone.uncertainty_beyond == lone.uncertainty


def test_conv_and_rnn_groups_are_fitted_per_direction():
    rng = np.random.default_rng(3)
    convs = random_convs(rng, 30, channels=(4, 128), sizes=(7, 40), kernels=[1, 3], batches=[1, 2, 3, 4])
    rnns = [RnnProblem(int(h), int(n), int(t), "lstm") for h, n, t in log_uniform(rng, 16, 256, (20, 3))]
    slow_bwd = [ConvProblem(**{**p.params(), "direction": "bwd_data"}) for p in convs]
    doc = make_table([record(p, seconds_by_law(p)) for p in convs + rnns]
                     + [record(p, seconds_by_law(p, 2.0)) for p in slow_bwd])
    model = ThroughputModel(doc)
    probe = ConvProblem(n=2, c=48, h=20, w=20, k=40, r=3, s=3, pad_h=1, pad_w=1)
    fwd = model.predict(probe)
    bwd = model.predict(ConvProblem(**{**probe.params(), "direction": "bwd_data"}))
    assert fwd.source == bwd.source == "fitted"
    assert fwd.seconds == pytest.approx(seconds_by_law(probe), rel=0.15)
    assert bwd.seconds / fwd.seconds == pytest.approx(2.0, rel=0.1)
    lstm = RnnProblem(100, 40, 30, "lstm")
    assert model.predict(lstm).seconds == pytest.approx(seconds_by_law(lstm), rel=0.15)


def test_convolutions_with_one_pixel_wide_output_rows_are_fitted_from_their_own_kind():
    # Image convolutions at the law, and windows spanning a whole embedding row (one input
    # channel, output rows one pixel wide) at a third of it, as PyTorch's CPU kernels run them.
    images = random_convs(np.random.default_rng(11), 40, channels=(3, 256), sizes=(7, 56), kernels=[1, 3, 5],
                          batches=[4, 8])

    def window(n, tokens, width, k, height):
        return ConvProblem(n=n, c=1, h=tokens, w=width, k=k, r=height, s=width)

    windows = [window(8, 64, 256, 96, 4), window(8, 32, 512, 64, 2)]
    doc = make_table([record(p, seconds_by_law(p)) for p in images]
                     + [record(p, seconds_by_law(p, 3.0)) for p in windows])
    model = ThroughputModel(doc)
    text = window(64, 59, 128, 128, 5)
    assert model.predict(text).seconds == pytest.approx(seconds_by_law(text, 3.0), rel=0.3)
    image = ConvProblem(n=8, c=64, h=28, w=28, k=128, r=3, s=3, pad_h=1, pad_w=1)
    assert model.predict(image).seconds == pytest.approx(seconds_by_law(image), rel=0.15)


def test_roofline_fallback_borrows_an_efficiency_and_says_how_uncertain(gemm_table):
    doc, train = gemm_table
    conv = ConvProblem(n=2, c=16, h=14, w=14, k=32, r=3, s=3, pad_h=1, pad_w=1)
    pred = ThroughputModel(doc).predict(conv)
    assert pred.source == "roofline" and pred.implementation is None
    assert pred.uncertainty == ROOFLINE_UNCERTAINTY_OTHER_OP
    median = math.exp(np.median([math.log(law(p)) for p in train]))
    assert pred.seconds == pytest.approx(work_flops(conv) / (median * roofline(conv) * 1e9))
    assert "no conv fwd records" in pred.detail

    fwd_only = ThroughputModel(make_table([record(conv, seconds_by_law(conv))]))
    bwd = fwd_only.predict(ConvProblem(**{**conv.params(), "direction": "bwd_filter"}))
    assert bwd.source == "roofline" and bwd.uncertainty == ROOFLINE_UNCERTAINTY_SAME_OP
    assert bwd.seconds == pytest.approx(seconds_by_law(conv))  # same FLOPs and bytes, the fwd efficiency


def test_memory_seconds_use_the_measured_bandwidth(gemm_table):
    model = ThroughputModel(gemm_table[0])
    seconds, detail = model.memory_seconds(4e9)
    assert seconds == pytest.approx(4e9 / (BANDWIDTH * 1e9))
    assert "triad" in detail
    with pytest.raises(ValueError, match="nbytes"):
        model.memory_seconds(-1)
    with pytest.raises(TypeError, match="nbytes"):
        model.memory_seconds("1")


def test_a_gpu_device_uses_its_copy_bandwidth_else_the_theoretical_one():
    from dlcb_kernels import devices

    gpu = devices.gpu_peaks({"name": "H100", "compute_capability": "9.0", "sm_count": 132,
                             "max_sm_clock_khz": 1980000, "memory_clock_khz": 2619000, "memory_bus_width_bits": 5120})
    gemm = GemmProblem(4096, 4096, 4096)
    doc = make_table([record(gemm, 3e-3, device="gpu:0")], devices=("gpu:0",))
    doc["devices"] = [dict(gpu, id="gpu:0")]
    theoretical = ThroughputModel(doc)
    assert theoretical.bandwidth_gbs == pytest.approx(gpu["memory"]["bandwidth_gbs"])
    assert "theoretical" in theoretical.bandwidth_label
    assert theoretical.peak_gflops == pytest.approx(gpu["peaks"]["fp32"]["theoretical_gflops"])
    doc["devices"][0]["memory"]["copy_gbs"] = 2900.0
    measured = ThroughputModel(doc)
    assert measured.bandwidth_gbs == 2900.0 and "measured device copy" in measured.bandwidth_label
    assert measured.predict(gemm).seconds == 3e-3


def test_implementation_selection():
    shapes = [GemmProblem(64 * i, 64, 64) for i in range(1, 7)]
    # ours is faster on the first half, numpy on the second
    recs = [record(p, seconds_by_law(p, 0.8 if i < 3 else 1.2), OURS) for i, p in enumerate(shapes)]
    recs += [record(p, seconds_by_law(p)) for p in shapes]
    recs.append(record(shapes[0], 1.0, FakeImpl("gemm/cpu/numpy", "vendor"), status="failed"))
    doc = make_table(recs)
    best, ours, vendor = (ThroughputModel(doc, impl=i) for i in ("best", "ours", "vendor"))
    for i, p in enumerate(shapes):
        assert best.predict(p).implementation == (OURS.name if i < 3 else NUMPY.name)
        assert best.predict(p).seconds == pytest.approx(seconds_by_law(p, min(1.0, 0.8 if i < 3 else 1.2)))
        assert ours.predict(p).seconds == pytest.approx(seconds_by_law(p, 0.8 if i < 3 else 1.2))
        assert vendor.predict(p).seconds == pytest.approx(seconds_by_law(p))
    by_variant = ThroughputModel(doc, impl="ours-avx2")
    assert by_variant.predict(shapes[5]).implementation == OURS.name
    assert ThroughputModel(doc, impl="gemm/cpu/numpy").predict(shapes[0]).implementation == NUMPY.name
    with pytest.raises(ValueError, match="torch.*gemm/cpu/numpy"):
        ThroughputModel(doc, impl="torch")


def test_cross_validation_predicts_every_record_without_it(gemm_table):
    doc, train = gemm_table
    model = ThroughputModel(doc)
    rows = model.cross_validate()
    assert len(rows) == len(train)
    for row in rows:
        assert row["source"] == "fitted"
        assert row["rel_error"] == pytest.approx((row["predicted_s"] - row["measured_s"]) / row["measured_s"])
    summary = summarize_cross_validation(rows)
    assert summary["gemm"]["count"] == summary["all"]["count"] == len(train)
    assert summary["all"]["median"] < 0.05 and summary["all"]["p90"] < 0.15
    assert "gemm" in format_cross_validation(rows)
    # A group of one record: without it only the roofline is left.
    single = ThroughputModel(make_table([record(train[0], 1e-3)])).cross_validate()
    assert single[0]["source"] == "roofline"


def test_table_errors_are_clear(gemm_table):
    doc, train = gemm_table
    with pytest.raises(ValueError, match="device 'gpu:x' is not in the table; its devices: cpu:test"):
        ThroughputModel(doc, device_id="gpu:x")
    failed_only = make_table([record(train[0], 1e-3, status="failed")])
    with pytest.raises(ValueError, match="no usable records.*1 records on the device, 0 of them ok"):
        ThroughputModel(failed_only)
    other_device = make_table([record(train[0], 1e-3, device="cpu:other")], devices=(DEVICE, "cpu:other"))
    with pytest.raises(ValueError, match="no usable records for device cpu:test"):
        ThroughputModel(other_device)
    assert ThroughputModel(other_device, device_id="cpu:other").predict(train[0]).source == "exact"
    with pytest.raises(ValueError, match="no usable records for device cpu:test, dtype bfloat16"):
        ThroughputModel(doc, dtype="bfloat16")
    bf16 = make_table([record(GemmProblem(8, 8, 8, dtype="bfloat16"), 1e-6)])
    with pytest.raises(ValueError, match="device cpu:test: device has no bf16 peak"):
        ThroughputModel(bf16, dtype="bfloat16")
    with pytest.raises(TypeError, match="table_doc"):
        ThroughputModel("table.json")
    with pytest.raises(ValueError, match="dtype"):
        ThroughputModel(doc, dtype="float64")
    with pytest.raises(ValueError, match="dtype"):
        ThroughputModel(doc).predict(GemmProblem(8, 8, 8, dtype="float16"))
    no_bandwidth = make_table([record(train[0], 1e-3)])
    del no_bandwidth["devices"][0]["memory"]
    with pytest.raises(ValueError, match="no memory bandwidth"):
        ThroughputModel(no_bandwidth)


# Model predictions ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FakeLayer:
    """The Layer contract of dlcb_kernels.models for fully-connected and ReLU layers."""

    name: str
    kind: str
    shape: tuple
    count: int = 1
    operands: int = 2
    rate: float = 0.5
    inplace: bool = False
    function: str = "silu"

    @property
    def is_kernel(self):
        return self.kind == "fc"

    @property
    def runs_at_inference(self):
        return self.kind != "dropout"

    @property
    def weight_elements(self):
        return self.shape[0] * self.shape[1] + self.shape[1] if self.kind == "fc" else 0

    def input_elements(self, batch):
        return batch * self.shape[0]

    def kernel_problems(self, batch, pass_):
        if self.kind != "fc":
            return []
        inputs, outputs = self.shape
        problem = {"fwd": GemmProblem(batch, outputs, inputs, trans_b=True),
                   "bwd_data": GemmProblem(batch, inputs, outputs),
                   "bwd_weights": GemmProblem(outputs, inputs, batch, trans_a=True)}[pass_]
        return [(problem, 1)]

    def memory_bytes(self, batch, pass_, itemsize=4):
        if self.kind == "fc":
            return 0
        elements = batch * self.shape[0]
        return {"fwd": 2, "bwd_data": 3, "bwd_weights": 0}[pass_] * elements * itemsize


@dataclass(frozen=True)
class FakeModel:
    name: str
    layers: tuple


MLP = FakeModel("mlp", (FakeLayer("fc1", "fc", (256, 512)), FakeLayer("relu1", "relu", (512,)),
                        FakeLayer("fc2", "fc", (512, 512), count=2), FakeLayer("relu2", "relu", (512,), count=2),
                        FakeLayer("drop", "dropout", (512,)), FakeLayer("fc3", "fc", (512, 10))))


def test_training_step_is_the_sum_of_its_parts(gemm_table):
    doc, _ = gemm_table
    pred = predict_model(MLP, doc, batch=32, mode="train")
    parts = sum(l.fwd_s + l.bwd_data_s + l.bwd_weights_s + l.memory_s for l in pred.layers)
    assert pred.step_seconds == pytest.approx(parts + pred.optimizer_seconds)
    assert pred.throughput == pytest.approx(32 / pred.step_seconds)
    weights = sum(l.weight_elements * l.count for l in MLP.layers)
    assert pred.optimizer_seconds == pytest.approx(5 * 4 * weights / (BANDWIDTH * 1e9))
    fc1, _, fc2, relu2, _, fc3 = pred.layers
    assert fc1.bwd_data_s == 0 and fc1.bwd_weights_s > 0    # nothing needs the input's gradient
    assert fc3.bwd_data_s > 0
    model = ThroughputModel(doc)
    one = model.predict(GemmProblem(32, 512, 512, trans_b=True)).seconds
    assert fc2.fwd_s == pytest.approx(2 * one)              # count 2
    assert relu2.memory_s == pytest.approx(2 * (2 + 3) * 32 * 512 * 4 / (BANDWIDTH * 1e9))
    assert fc2.weight_bytes == 2 * (512 * 512 + 512) * 4
    assert sum(pred.source_seconds().values()) == pytest.approx(pred.step_seconds)
    assert 0 < pred.uncertainty < MEMORY_UNCERTAINTY


def test_inference_is_the_forward_pass_only(gemm_table):
    doc, _ = gemm_table
    train = predict_model(MLP, doc, batch=32, mode="train")
    infer = predict_model(MLP, doc, batch=32, mode="infer")
    assert infer.step_seconds < train.step_seconds
    assert infer.optimizer_seconds == 0
    assert all(l.bwd_data_s == l.bwd_weights_s == 0 for l in infer.layers)
    assert infer.layers[4].memory_s == 0                   # dropout is the identity in inference
    assert [l.fwd_s for l in infer.layers] == pytest.approx([l.fwd_s for l in train.layers])
    assert infer.throughput == pytest.approx(32 / infer.step_seconds)


def test_parallel_branches_over_the_input_skip_their_input_gradient(gemm_table):
    doc, _ = gemm_table
    branches = FakeModel("branches", (FakeLayer("pre", "relu", (256,)), FakeLayer("a", "fc", (256, 64)),
                                      FakeLayer("b", "fc", (256, 32)), FakeLayer("relu", "relu", (96,)),
                                      FakeLayer("c", "fc", (96, 10))))
    pre, a, b, relu, c = predict_model(branches, doc, batch=16).layers
    assert pre.memory_s == pytest.approx(2 * 16 * 256 * 4 / (BANDWIDTH * 1e9))   # forward only
    assert a.bwd_data_s == b.bwd_data_s == 0 and c.bwd_data_s > 0
    assert relu.memory_s == pytest.approx(5 * 16 * 96 * 4 / (BANDWIDTH * 1e9))


def test_a_throughput_model_is_reused_and_checked(gemm_table):
    doc, _ = gemm_table
    model = ThroughputModel(doc)
    assert predict_model(MLP, model, batch=8).step_seconds == pytest.approx(
        predict_model(MLP, doc, batch=8).step_seconds)
    with pytest.raises(ValueError, match="impl='ours'"):
        predict_model(MLP, model, batch=8, impl="ours")
    with pytest.raises(ValueError, match="mode"):
        predict_model(MLP, doc, batch=8, mode="training")
    with pytest.raises(ValueError, match="batch"):
        predict_model(MLP, doc, batch=0)
    with pytest.raises(TypeError, match="batch"):
        predict_model(MLP, doc, batch=8.0)


def test_format_and_json(gemm_table):
    doc, _ = gemm_table
    pred = predict_model(MLP, doc, batch=32)
    text = format_prediction(pred, top=2)
    assert "fc2" in text and "4 more layer entries" in text and "throughput" in text
    assert "time from: exact 0.0%, fitted" in text
    data = json.loads(json.dumps(prediction_to_dict(pred)))
    assert data["step_seconds"] == pytest.approx(pred.step_seconds)
    assert data["layers"][0]["total_s"] == pytest.approx(pred.layers[0].total_s)


def test_cli_prints_the_prediction(gemm_table, tmp_path, capsys):
    doc, _ = gemm_table
    path = tmp_path / "t.json"
    table.write_atomic(path, doc)
    parser = argparse.ArgumentParser()
    cli_predict.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["predict", "--model", "deepmnist", "--table", str(path), "--batch", "16",
                              "--mode", "infer"])
    assert cli_predict.run(args) == 0
    assert "DeepMNIST: inference, batch 16" in capsys.readouterr().out
    model_file = tmp_path / "mlp.json"
    model_file.write_text(json.dumps(model_to_dict(get_model("DeepMNIST"))))
    args = parser.parse_args(["predict", "--model", str(model_file), "--table", str(path), "--batch", "64",
                              "--json"])
    assert cli_predict.run(args) == 0
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert data["batch"] == 64 and data["mode"] == "train" and data["step_seconds"] > 0
    # the table's only implementation is the runner; its GEMMs are not this model's: said loudly
    assert data["impl"] == "numpy" and "of the predicted step is estimated" in err
    with pytest.raises(ValueError, match="--batch is needed: the table holds no records of DeepMNIST"):
        cli_predict.run(parser.parse_args(["predict", "--model", "deepmnist", "--table", str(path)]))
    with pytest.raises(ValueError, match="impl 'torch'"):
        cli_predict.run(parser.parse_args(["predict", "--model", "deepmnist", "--table", str(path), "--impl", "torch",
                                           "--batch", "8"]))


@pytest.fixture(scope="module")
def mixed_table():
    """GEMMs, convolutions in all three directions and GRUs, all following the law."""
    rng = np.random.default_rng(5)
    problems = random_gemms(rng, 20)
    for direction in ("fwd", "bwd_data", "bwd_filter"):
        for _ in range(12):
            c, k = (int(x) for x in log_uniform(rng, 4, 512, 2))
            hw, r = int(log_uniform(rng, 7, 112, 1)[0]), int(rng.choice([1, 3]))
            problems.append(ConvProblem(n=int(rng.integers(1, 33)), c=c, h=hw, w=hw, k=k, r=r, s=r, pad_h=r // 2,
                                        pad_w=r // 2, direction=direction))
    for direction in ("fwd", "bwd"):
        problems += [RnnProblem(int(h), int(n), int(t), "gru", direction=direction)
                     for h, n, t in log_uniform(rng, 16, 1024, (6, 3))]
    return make_table(record(p, seconds_by_law(p)) for p in problems)


def test_convolutions_take_the_layout_the_table_measured():
    layer = get_model("ResNet50").layers[0]
    conv = layer.kernel_problems(2, "fwd")[0][0]
    nhwc = ConvProblem(**{**conv.params(), "layout": "NHWC", "dtype": "bfloat16"})
    doc = make_table([record(nhwc, 1e-3)])
    doc["devices"][0]["peaks"]["bf16"] = doc["devices"][0]["peaks"]["fp32"]
    pred = predict_model(FakeModel("one", (layer,)), doc, batch=2, mode="infer", dtype="bfloat16")
    assert pred.layers[0].fwd_s == 1e-3 and pred.layers[0].sources == {"exact": 1e-3}


@pytest.mark.parametrize("name", ["ResNet50", "GoogLeNet", "TextCNN", "DeepSpeech2", "BERT-base"])
def test_reference_models_are_predicted(mixed_table, name):
    model = get_model(name)
    kernels = ThroughputModel(mixed_table)
    train = predict_model(model, kernels, batch=4)
    infer = predict_model(model, kernels, batch=4, mode="infer")
    assert 0 < infer.step_seconds < train.step_seconds
    assert len(train.layers) == len(model.layers)
    sources = train.source_seconds()
    assert sources["fitted"] > 0.5 * train.step_seconds and sources["memory"] > 0
    first = next(i for i, layer in enumerate(model.layers) if layer.weight_elements > 0)
    assert train.layers[first].bwd_data_s == 0
    if name == "TextCNN":   # three parallel convolutions over the input
        assert [l.bwd_data_s for l in train.layers[:3]] == [0, 0, 0] and train.layers[6].bwd_data_s > 0
    if name == "ResNet50":
        assert all(l.bwd_data_s > 0 for l in train.layers[first + 1:] if l.kind == "conv")


# A real table ------------------------------------------------------------------------------------------

def test_a_table_benchmarked_here_is_read_end_to_end(tmp_path, capsys):
    path = tmp_path / "real.json"
    shapes = ["48x40x32", "64x64x64", "96x80x48", "128x96x64", "160x128x96"]
    argv = ["bench", "-q", "-o", str(path), "--impl", "numpy", "--threads", "1", "--min-samples", "3",
            "--max-time", "0.05", "--noise", "0.5"]
    for shape in shapes:
        argv += ["--shape", shape]
    assert cli.main(argv) == 0
    capsys.readouterr()
    doc = table.load(path)
    model = ThroughputModel(doc)
    assert model.device_id == doc["devices"][0]["id"] and model.bandwidth_gbs > 0
    exact = model.predict(GemmProblem(64, 64, 64))
    assert exact.source == "exact" and exact.implementation == "gemm/cpu/numpy"
    assert exact.seconds == doc["records"][1]["stats"]["median"]
    fitted = model.predict(GemmProblem(80, 72, 56))
    assert fitted.source == "fitted" and 0 < fitted.seconds < 1
    rows = model.cross_validate()
    assert len(rows) == len(shapes) and all(np.isfinite(r["rel_error"]) for r in rows)


def test_the_runners_framework_overhead_is_charged_per_layer_call_and_parameter_tensor(gemm_table):
    from dlcb_kernels.predict.model_time import parameter_tensors
    from dlcb_kernels.problems import OverheadProblem

    doc, _ = gemm_table
    model = get_model("DeepMNIST")
    without = predict_model(model, doc, batch=16, mode="train", impl="numpy")
    assert without.overhead_seconds == 0.0 and "not charged" in without.overhead_note
    costs = {("layer", False): 2e-6, ("layer", True): 40e-6, ("step", True): 8e-6}
    overhead = [record(OverheadProblem(kind, training), per_call * 32) for (kind, training), per_call in costs.items()]
    with_overhead = make_table(list(doc["records"]) + overhead)
    train = predict_model(model, with_overhead, batch=16, mode="train", impl="numpy")
    calls = sum(layer.count for layer in model.layers)
    tensors = sum(parameter_tensors(layer) * layer.count for layer in model.layers)
    assert train.overhead_seconds == pytest.approx(calls * 40e-6 + tensors * 8e-6)
    assert train.step_seconds == pytest.approx(without.step_seconds + train.overhead_seconds)
    assert train.source_seconds()["overhead"] == pytest.approx(train.overhead_seconds)
    assert f"{calls} layer calls" in train.overhead_note and "framework overhead" in format_prediction(train)
    infer = predict_model(model, with_overhead, batch=16, mode="infer", impl="numpy")
    dropouts = sum(layer.count for layer in model.layers if layer.kind == "dropout")
    assert infer.overhead_seconds == pytest.approx((calls - dropouts) * 2e-6)
    with pytest.raises(ValueError, match="training only"):
        OverheadProblem("step", False)


def test_the_model_says_which_allocator_its_table_was_measured_under(gemm_table):
    doc, _ = gemm_table
    assert "measured under the system allocator" in ThroughputModel(doc).describe()   # no state recorded
    steady = dict(doc, runs=[{"run_id": "run0", "environment": {"allocator": {"state": "steady"}}}])
    model = ThroughputModel(steady)
    assert model.allocator == "steady" and "steady allocator (no page faults" in model.describe()
