"""The validation runners (PyTorch and ours) on tiny models, the validate() arithmetic with fake
measurements and predictions, the validation suite, and `dlcb validate`'s argument errors."""

from __future__ import annotations

import argparse
import io
import json

import numpy as np
import pytest

from dlcb_kernels import layer_runners
from dlcb_kernels import table as table_module
from dlcb_kernels.models import (
    Model,
    bn,
    concat,
    conv,
    eltwise,
    fc,
    gelu,
    layernorm,
    loss,
    lrn,
    matmul,
    pool,
    relu,
    rnn,
    softmax,
    tanh,
)
from dlcb_kernels.predict import cli_validate
from dlcb_kernels.predict import validate as v

torch = pytest.importorskip("torch")

TINY = Model("Tiny", (
    conv("conv1", 3, 12, 12, 8, 3, pad=1),
    relu("relu1", (8, 12, 12)),
    pool("pool1", 8, 12, 12, 3, 2),
    fc("fc1", 8 * 6 * 6, 10),
), (3, 12, 12))

# Every memory-bound kind the cookbook models use, and the RNN / attention kernels.
MIXED = Model("Mixed", (
    conv("conv1", 3, 9, 9, 6, 3, stride=2, groups=1),
    conv("conv2", 6, 5, 5, 4, 3, pad=1, groups=2, bias=False),
    bn("bn", (4, 5, 5)),
    lrn("lrn", (6, 5, 5)),
    pool("avgpool", 4, 5, 5, 3, 2, pad=1, mode="avg"),
    pool("maxpool", 4, 7, 7, 3, 2),
    eltwise("add", (4, 5, 5)),
    concat("concat", (8, 5, 5)),
    tanh("tanh", (7,)),
    softmax("softmax", (3, 7)),
    layernorm("ln", (3, 8)),
    gelu("gelu", (3, 8)),
    rnn("gru", 6, 5, 4, cell="gru"),
    rnn("lstm", 5, 5, 3, cell="lstm"),
    matmul("scores", 4, 4, 3, heads=2, trans_b=True),
    matmul("context", 4, 3, 4, heads=2),
    fc("fc", 12, 5),
    loss("loss", (2, 5)),
), (3, 9, 9))


def _copy_weights(ours_layer, torch_layer) -> None:
    """Our occurrence's weights into the torch module of the same occurrence."""
    names = {"conv": {"w": "weight", "b": "bias"}, "fc": {"w": "weight", "b": "bias"},
             "bn": {"gamma": "weight", "beta": "bias"}, "layernorm": {"gamma": "weight", "beta": "bias"},
             "rnn": {name: f"{name}_l0" for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}}
    for ours_name, torch_name in names.get(ours_layer.spec.kind, {}).items():
        if ours_name not in ours_layer.weights:     # a layer without bias
            continue
        with torch.no_grad():
            getattr(torch_layer.module, torch_name).copy_(torch.from_numpy(ours_layer.weights[ours_name]))


def _twin_models(model, batch):
    """Our model and a torch model holding the same inputs, output gradients and weights."""
    ours = layer_runners.OursModel(model, batch, threads=1, seed=3)
    net = layer_runners.TorchModel(model, batch, torch, seed=4)
    occurrences = iter(ours.layers)
    for spec, inputs, layers, grad in net.entries:
        first = None
        for torch_layer in layers:
            ours_layer = next(occurrences)
            first = first or ours_layer
            _copy_weights(ours_layer, torch_layer)
        with torch.no_grad():
            for tensor, array in zip(inputs, first.x):
                tensor.copy_(torch.from_numpy(np.asarray(array)))
            grad.copy_(torch.from_numpy(first.dy))
    return ours, net


def _close(actual, expected, what, tol=2e-4):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, what
    scale = max(1e-6, float(np.abs(expected).max()))
    assert float(np.abs(actual - expected).max()) <= tol * scale, what


@pytest.mark.parametrize("training", [False, True])
def test_tiny_model_forward_agrees_between_runners(training):
    ours, net = _twin_models(TINY, 2)
    ours.forward(training)
    net.set_training(training)
    with torch.no_grad():
        outputs = net.forward()
    assert [layer.y.shape for layer in ours.layers] == [(2, 8, 12, 12), (2, 8, 12, 12), (2, 8, 6, 6), (2, 10)]
    for ours_layer, out in zip(ours.layers, outputs):
        _close(ours_layer.y, out.numpy(), ours_layer.spec.name)


def test_mixed_model_forward_and_gradients_agree_between_runners():
    ours, net = _twin_models(MIXED, 3)
    ours.forward(True)
    for layer in reversed(ours.layers):
        layer.backward()
    net.set_training(True)
    outputs = net.forward()
    torch.autograd.backward([y for y, keep in zip(outputs, net.backward_mask()) if keep], net.gradients())
    occurrences = iter(ours.layers)
    for (spec, inputs, layers, _), out in zip(net.entries, outputs):
        ours_layer = next(occurrences)
        _close(ours_layer.y, out.detach().numpy(), f"{spec.name} output")
        for i, tensor in enumerate(inputs):
            if tensor.requires_grad:
                _close(ours_layer.dx[i], tensor.grad.numpy(), f"{spec.name} input gradient {i}")
        params = dict(layers[0].module.named_parameters()) if layers[0].module is not None else {}
        for ours_name, torch_name in {"w": "weight", "b": "bias", "gamma": "weight", "beta": "bias",
                                      "weight_ih": "weight_ih_l0", "weight_hh": "weight_hh_l0",
                                      "bias_ih": "bias_ih_l0", "bias_hh": "bias_hh_l0"}.items():
            if ours_name in ours_layer.grads:
                _close(ours_layer.grads[ours_name], params[torch_name].grad.numpy(), f"{spec.name} d{ours_name}")


def test_model_input_gets_no_gradient_and_layer_sequence_shapes():
    text = Model("Text", (conv("c1", 1, 7, 16, 4, 1, 16), conv("c3", 1, 7, 16, 4, 3, 16, pad=(1, 0)),
                          relu("relu", (8, 7, 1)), fc("fc", 8, 2)), (1, 7, 16))
    specs = layer_runners.model_specs(text, 5)
    assert [(s.backward, s.input_grad) for s in specs] == [(True, False), (True, False), (True, True), (True, True)]
    assert specs[1].inputs == [(5, 1, 7, 16)] and specs[1].output == (5, 4, 7, 1)
    leading = Model("Lead", (relu("relu", (4,)), fc("fc", 4, 2)), (4,))
    assert [(s.backward, s.input_grad) for s in layer_runners.model_specs(leading, 1)] == [(False, True), (True, False)]
    with pytest.raises(ValueError, match="batch"):
        layer_runners.model_specs(TINY, 0)


def test_pool_output_size_rounds_up_like_caffe():
    assert layer_runners.pool_output_size(112, 3, 2, 0) == 56          # GoogLeNet pool1
    assert layer_runners.pool_output_size(13, 3, 2, 0) == 6
    assert layer_runners.pool_output_size(5, 3, 2, 1) == 3             # the last window would start in the pad


@pytest.mark.parametrize("runner", [v.run_torch, v.run_ours])
def test_runners_report_medians_of_their_samples(runner):
    result = runner(TINY, 2, 1, warmup=1, repeats=3)
    assert result["execution"] == "layer-sequence" and result["batch"] == 2 and result["threads"] == 1
    for mode, key in (("infer", "forward_s"), ("train", "train_step_s")):
        assert len(result["samples"][mode]) == 3
        assert result[key] == pytest.approx(float(np.median(result["samples"][mode])))
        assert result[key] > 0
    with pytest.raises(ValueError, match="repeats"):
        runner(TINY, 2, 1, repeats=0)
    with pytest.raises(ValueError, match="modes"):
        runner(TINY, 2, 1, modes=("fwd",))


def _fake_runner(times):
    def run(model, batch, threads, *, warmup, repeats):
        forward, train = times[model.name]
        return {"implementation": "fake", "forward_s": forward, "train_step_s": train,
                "stats": {"infer": {"rel_spread": 0.0}, "train": {"rel_spread": 0.0}}}
    return run


def test_validate_arithmetic_with_fake_measurements_and_predictions():
    models = [Model(f"M{i}", (fc("fc", 4, 2),), (4,)) for i in range(6)]
    measured = {m.name: (1.0, 2.0) for m in models}
    # predicted / measured - 1: infer errors +5%, -10%, 0, 0, 0, +30%; train all +5%
    factors = [1.05, 0.9, 1.0, 1.0, 1.0, 1.3]

    def predictor(model, doc, batch, impl, first_touch=None):
        f = factors[int(model.name[1])]
        return {"infer": 1.0 * f, "train": 2.0 * 1.05, "sources": {}}

    rows = v.validate({}, models, {m.name: 3 for m in models}, 1, ("ours",), runners={"ours": _fake_runner(measured)},
                      predictor=predictor)
    assert len(rows) == 12
    infer = [r for r in rows if r["mode"] == "infer"]
    assert [round(r["error"], 6) for r in infer] == [0.05, -0.1, 0.0, 0.0, 0.0, 0.3]
    assert all(r["batch"] == 3 and r["impl"] == "ours" for r in rows)
    summary = {(s["impl"], s["mode"]): s for s in v.summarize_rows(rows)}
    s = summary[("ours", "infer")]
    assert s["models"] == 6 and s["mean_abs_error"] == pytest.approx(0.45 / 6)
    assert s["max_abs_error"] == pytest.approx(0.3) and s["worst_model"] == "M5"
    assert s["within_20pct"] == 5 and not s["goal_met"]       # one model above 20 %
    assert summary[("ours", "train")]["goal_met"]
    text = v.format_rows(rows, v.summarize_rows(rows), {"ours": [{"op": "all", "count": 3, "median_abs_error": 0.02,
                                                                  "p90_abs_error": 0.1}]})
    assert "M5" in text and "+30.0%" in text and "> 20%" in text and "median 2.0%" in text
    as_table = v.validate({}, models[:1], {"M0": 3}, 1, ("ours",), runners={"ours": _fake_runner(measured)},
                          predictor=predictor, first_touch="table")
    assert as_table[0]["first_touch_s_per_page"] is None
    with pytest.raises(ValueError, match="first_touch"):
        v.validate({}, models, {}, 1, ("ours",), first_touch="later")
    with pytest.raises(ValueError, match="batch_by_model"):
        v.validate({}, models, {}, 1, ("ours",), runners={"ours": _fake_runner(measured)}, predictor=predictor)
    with pytest.raises(ValueError, match="impls"):
        v.validate({}, models, {}, 1, ("cudnn",))
    with pytest.raises(ValueError, match="measured"):
        v.relative_error(1.0, 0.0)


def test_rounds_measure_the_models_in_turn_and_pool_their_samples():
    models = [Model(f"M{i}", (fc("fc", 4, 2),), (4,)) for i in range(2)]
    order = []
    step = {"M0": iter([1.0, 4.0]), "M1": iter([2.0, 2.0])}          # per round: infer; train twice that
    faults = {"M0": iter([(10, 0), (20, 4)]), "M1": iter([(30, 0), (40, 8)])}

    def runner(model, batch, threads, *, warmup, repeats):
        order.append(model.name)
        seconds = next(step[model.name])
        infer_faults, train_faults = next(faults[model.name])
        return v._result("fake", model.name, batch, threads, {"infer": [seconds] * repeats,
                                                             "train": [2 * seconds] * repeats},
                         {"infer": infer_faults, "train": train_faults})

    def predictor(model, doc, batch, impl, first_touch=None):
        return {"infer": 2.0, "train": 4.0, "sources": {}}

    out = io.StringIO()
    rows = v.validate({}, models, {m.name: 3 for m in models}, 1, ("ours",), runners={"ours": runner},
                      predictor=predictor, repeats=3, rounds=2, progress=out)
    assert order == ["M0", "M1", "M0", "M1"]                         # in turn, not one model twice in a row
    assert [(r["model"], r["mode"]) for r in rows] == [("M0", "infer"), ("M0", "train"), ("M1", "infer"),
                                                      ("M1", "train")]   # the pooled rows replaced round 1's
    assert [r["measured_s"] for r in rows] == pytest.approx([2.5, 5.0, 2.0, 4.0])   # medians over both rounds
    assert [r["page_faults_per_step"] for r in rows] == pytest.approx([15, 2, 35, 4])
    assert "(round 2 of 2)" in out.getvalue()
    for bad, error in ((0, ValueError), (True, TypeError), (1.5, TypeError)):
        with pytest.raises(error, match="rounds"):
            v.validate({}, models, {m.name: 3 for m in models}, 1, ("ours",), runners={"ours": runner}, rounds=bad)


def test_held_out_table_drops_every_record_the_model_reads_and_nothing_else():
    from dlcb_kernels.problems import GemmProblem, OverheadProblem
    from dlcb_kernels.suites import model_problems

    own = [sp.problem for sp in model_problems([TINY], {"Tiny": 4}, "both")]
    assert {p.op for p in own} >= {"conv", "gemm", "memory", "overhead"}
    other = GemmProblem(64, 64, 64)
    doc = {"devices": [], "records": [{"op": p.op, "params": p.params()} for p in (*own, other)]
           + [{"op": "gemm", "status": "error"}]}
    kept = v.held_out_table(doc, TINY, 4)["records"]
    kept_ops = [r["op"] for r in kept]
    # the other model's GEMM, the runner's overhead (no model's own) and a record without params stay
    assert kept_ops.count("overhead") == sum(isinstance(p, OverheadProblem) for p in own)
    assert {"params": other.params(), "op": "gemm"} in kept and {"op": "gemm", "status": "error"} in kept
    assert not any(r["op"] in ("conv", "memory") for r in kept)
    assert len(doc["records"]) == len(own) + 2          # the table given is not changed
    assert len(v.held_out_table(doc, TINY, 8)["records"]) == len(doc["records"])   # another batch: none of its own


def test_leave_one_model_out_rows_summary_and_coverage():
    models = [Model(f"M{i}", (fc("fc", 4, 2),), (4,)) for i in range(6)]
    measured = {m.name: (1.0, 2.0) for m in models}
    tables = []

    def predictor(model, doc, batch, impl, first_touch=None):
        tables.append(len(doc["records"]))
        held_out = len(doc["records"]) == 0              # the fc's records removed
        f = 1.2 if held_out else 1.05
        if held_out and model.name == "M5":
            raise ValueError("no records left")
        return {"infer": f, "train": 2.0 * f, "sources": {}, "uncertainty": {"infer": 0.1, "train": 0.25}}

    from dlcb_kernels.problems import GemmProblem
    doc = {"devices": [], "records": [{"op": "gemm", "params": GemmProblem(3, 2, 4, trans_b=True).params()}]}
    rows = v.validate(doc, models, {m.name: 3 for m in models}, 1, ("ours",),
                      runners={"ours": _fake_runner(measured)}, predictor=predictor, leave_one_out=True)
    assert tables == [1, 0] * 6
    first = rows[0]
    assert first["first_touch_s_per_page"] > 0                  # probed around the runs ("now")
    assert first["error"] == pytest.approx(0.05) and first["held_out_error"] == pytest.approx(0.2)
    assert first["uncertainty"] == 0.1 and first["held_out_uncertainty"] == 0.1
    assert "held_out_error" not in rows[-1]              # M5: no held-out prediction, said and skipped
    summary = {(s["impl"], s["mode"]): s for s in v.summarize_rows(rows)}
    both = summary[("ours", "all")]
    assert both["rows"] == 12 and both["models"] == 6 and both["covered"] == {"count": 12, "of": 12, "share": 1.0}
    held = both["held_out"]
    assert held["rows"] == 10 and held["mean_abs_error"] == pytest.approx(0.2)
    # infer: |1.2 - 1| = 0.2 > 0.1 x 1.2, not covered; train: 0.4 <= 0.25 x 2.4, covered
    assert held["covered"] == {"count": 5, "of": 10, "share": 0.5} and not held["goal_met"]
    assert summary[("ours", "train")]["held_out"]["covered"]["share"] == 1.0
    text = v.format_rows(rows, v.summarize_rows(rows))
    assert "held out" in text and "+20.0%" in text and "covers 5/10" in text
    assert v.covered(1.0, 1.25, 0.25) and not v.covered(1.0, 1.26, 0.25) and v.covered(1.0, 1.0, None) is None
    # predictions may be numpy scalars: the summary is still plain JSON (`dlcb validate --json`)
    numpy_rows = [{k: np.float64(x) if isinstance(x, float) else x for k, x in r.items()} for r in rows]
    assert json.loads(json.dumps(v.summarize_rows(numpy_rows))) == json.loads(json.dumps(v.summarize_rows(rows)))


def test_validate_module_runs_and_predicts_the_loss_when_asked(monkeypatch):
    net = torch.nn.Sequential(torch.nn.Linear(8, 5))
    seen = []

    def predictor(model, doc, batch, impl, first_touch=None):
        seen.append(([layer.kind for layer in model.layers], batch, impl))
        return {"infer": 1e-3, "train": 2e-3, "sources": {}, "uncertainty": {"infer": 0.1, "train": 0.1}}

    monkeypatch.setattr(v, "predict_seconds", predictor)
    rows = v.validate_module({}, net, torch.randn(4, 8), 1, warmup=0, repeats=1, loss=True)
    assert seen == [(["fc", "loss"], 4, "torch")]
    assert [r["mode"] for r in rows] == ["infer", "train"] and all(r["execution"] == "graph" for r in rows)
    assert all(r["measured_s"] > 0 and r["uncertainty"] == 0.1 for r in rows)
    # the step's own page faults, priced at the fresh-page cost probed around the runs
    assert all(r["first_touch_s_per_page"] > 0 and r["page_faults_per_step"] >= 0 for r in rows)
    assert all(r["first_touch_share"] == pytest.approx(r["page_faults_per_step"] * r["first_touch_s_per_page"]
                                                       / r["measured_s"]) for r in rows)
    v.validate_module({}, net, torch.randn(4, 8), 1, warmup=0, repeats=1)
    assert seen[-1][0] == ["fc"]
    pooled = v.validate_module({}, net, torch.randn(4, 8), 1, warmup=0, repeats=2, rounds=3)
    assert len(pooled) == 2 and len(seen) == 3              # measured three times, predicted once
    with pytest.raises(ValueError, match="rounds"):
        v.validate_module({}, net, torch.randn(4, 8), 1, rounds=0)


def test_held_out_summary_medians_and_p90(monkeypatch):
    class FakeModel:
        def __init__(self, doc, impl):
            assert impl == "torch"

        def cross_validate(self):
            return [{"op": "gemm", "rel_error": e} for e in (0.01, -0.02, 0.03, 0.5)] + \
                [{"op": "conv", "rel_error": -0.1}]

    from dlcb_kernels.predict import kernel_model
    monkeypatch.setattr(kernel_model, "ThroughputModel", FakeModel)
    figures = {h["op"]: h for h in v.held_out_summary({}, "torch")}
    assert figures["gemm"]["count"] == 4 and figures["gemm"]["median_abs_error"] == pytest.approx(0.025)
    assert figures["conv"]["p90_abs_error"] == pytest.approx(0.1)
    assert figures["all"]["count"] == 5 and figures["all"]["median_abs_error"] == pytest.approx(0.03)


def test_validation_problems_cover_every_pass_once_with_labels():
    problems = v.validation_problems([TINY, TINY], {"Tiny": 4})
    keys = [sp.problem.key() for sp in problems]
    assert len(keys) == len(set(keys))
    directions = sorted((sp.problem.op, getattr(sp.problem, "direction", None), getattr(sp.problem, "trans_a", None))
                        for sp in problems if sp.problem.op != "overhead")
    overhead = sorted(sp.problem.key() for sp in problems if sp.problem.op == "overhead")
    assert overhead == ["overhead layer infer x32", "overhead layer train x32", "overhead step train x32"]
    # conv1 reads the model input: no backward data for it; relu1 and pool1 are calls: the
    # forward (training and inference alike for these kinds) and the backward
    assert directions == [("conv", "bwd_filter", None), ("conv", "fwd", None),
                          ("gemm", None, False), ("gemm", None, False), ("gemm", None, True),
                          ("memory", "bwd", None), ("memory", "bwd", None), ("memory", "fwd", None),
                          ("memory", "fwd", None)]
    relu_fwd = next(sp for sp in problems if sp.problem.op == "memory" and sp.problem.kind == "relu"
                    and sp.problem.direction == "fwd")
    assert relu_fwd.problem.tensor == (4, 8, 12, 12)
    assert [entry["pass"] for entry in relu_fwd.labels["layers"]] == ["fwd train", "fwd infer"] * 2
    conv_fwd = next(sp for sp in problems if sp.problem.op == "conv" and sp.problem.direction == "fwd")
    assert conv_fwd.problem.n == 4
    assert conv_fwd.labels["set"] == "validation" and conv_fwd.labels["batch"] == [4]
    assert conv_fwd.labels["layers"] == [{"model": "Tiny", "layer": "conv1", "pass": "fwd", "count": 1}] * 2
    with pytest.raises(ValueError, match="batch"):
        v.validation_problems([TINY], {})


def _cli(argv):
    parser = argparse.ArgumentParser(prog="dlcb")
    cli_validate.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["validate", *argv])


def _empty_table(tmp_path):
    doc = table_module.new_table()
    doc["devices"].append({"id": "cpu:test", "kind": "cpu"})
    path = tmp_path / "table.json"
    table_module.write_atomic(path, doc)
    return path


def test_cli_argument_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        _cli([])                                            # --table is required
    with pytest.raises(SystemExit):
        _cli(["--table", "t.json", "--batch", "0"])
    with pytest.raises(SystemExit):
        _cli(["--table", "t.json", "--threads", "x"])
    capsys.readouterr()
    with pytest.raises(ValueError, match="--impl"):
        cli_validate.run(_cli(["--table", "t.json", "--impl", "torch,cudnn"]))
    with pytest.raises(ValueError, match="--models"):
        cli_validate.run(_cli(["--table", "t.json", "--models", " , "]))
    with pytest.raises(FileNotFoundError):
        cli_validate.run(_cli(["--table", str(tmp_path / "missing.json")]))
    with pytest.raises(ValueError, match="unknown model"):
        cli_validate.run(_cli(["--table", str(_empty_table(tmp_path)), "--models", "NoSuchNet"]))
    with pytest.raises(ValueError, match="--loss is for --torch"):
        cli_validate.run(_cli(["--table", "t.json", "--loss"]))
    with pytest.raises(SystemExit):
        _cli(["--table", "t.json", "--first-touch", "later"])
    with pytest.raises(SystemExit):
        _cli(["--table", "t.json", "--rounds", "0"])
    args = _cli(["--table", "t.json", "--models", "TextCNN,DeepMNIST", "--batch", "16", "--impl", "ours", "--json"])
    assert (args.models, args.batch, args.impl, args.json, args.repeats) == ("TextCNN,DeepMNIST", 16, "ours", True, 5)
    assert (args.first_touch, args.leave_one_out, args.loss) == ("now", False, False)


def test_make_table_entry_point_argument_errors(capsys):
    assert v.main(["--make-table", "x.json", "--impl", "cudnn"]) == 1
    assert v.main(["--make-table", "x.json", "--models", "NoSuchNet"]) == 1
    assert "error" in capsys.readouterr().err
    batches = v.parse_batches([TINY, MIXED], None)
    assert batches == {"Tiny": 8, "Mixed": 8} and v.parse_batches([TINY], 3) == {"Tiny": 3}


def test_cli_prints_rows_summary_and_held_out(tmp_path, monkeypatch, capsys):
    calls = {}

    def fake_validate(doc, models, batches, threads, impls, *, repeats, progress, rows_out, leave_one_out,
                      first_touch, rounds):
        calls.update(models=[m.name for m in models], batches=batches, threads=threads, impls=impls, repeats=repeats,
                     leave_one_out=leave_one_out, rounds=rounds)
        rows_out.extend({"model": "TextCNN", "impl": "ours", "mode": mode, "batch": 16, "measured_s": 0.01,
                         "predicted_s": 0.011, "error": 0.1} for mode in ("infer", "train"))
        return rows_out

    monkeypatch.setattr(v, "validate", fake_validate)
    monkeypatch.setattr(cli_validate, "usable_runners", lambda impls, doc, names, batch: impls)
    monkeypatch.setattr(v, "held_out_summary", lambda doc, impl: [{"op": "all", "count": 2, "median_abs_error": 0.04,
                                                                   "p90_abs_error": 0.1}])
    table = str(_empty_table(tmp_path))
    argv = ["--table", table, "--models", "textcnn", "--batch", "16", "--threads", "1", "--impl", "ours", "--repeats", "2"]
    assert cli_validate.run(_cli([*argv, "--json"])) == 0
    out = json.loads(capsys.readouterr().out)
    assert calls == {"models": ["TextCNN"], "batches": {"TextCNN": 16}, "threads": 1, "impls": ("ours",), "repeats": 2,
                     "leave_one_out": False, "rounds": 1}
    assert out["summary"][0]["mean_abs_error"] == pytest.approx(0.1) and out["held_out"]["ours"][0]["count"] == 2
    assert out["allocator"]["table_state"] == "system" and out["allocator"]["mode"] == "system"   # a table without it
    assert cli_validate.run(_cli(argv)) == 0
    text = capsys.readouterr().out
    assert "TextCNN" in text and "+10.0%" in text and "held-out kernels, ours records" in text


def test_cli_checks_its_runners_before_measuring_anything(tmp_path, monkeypatch, capsys):
    measured = []
    monkeypatch.setattr(v, "validate", lambda *args, **kwargs: measured.append(1))
    table = str(_empty_table(tmp_path))
    argv = ["--table", table, "--models", "textcnn", "--batch", "16", "--threads", "1", "--impl", "torch,ours"]
    with pytest.raises(ValueError, match="no runner of torch, ours can be validated here.*dlcb bench --suite models"):
        cli_validate.run(_cli(argv))
    assert measured == [] and "cannot predict the ours runner" in capsys.readouterr().err
    monkeypatch.setattr("dlcb_kernels.layer_runners.torch_available", lambda: False)
    assert cli_validate.usable_runners(("ours",), _table_of_ours(), ["textcnn"], 16) == ("ours",)
    with pytest.raises(ValueError, match="no runner of torch"):
        cli_validate.usable_runners(("torch",), _table_of_ours(), ["textcnn"], 16)
    assert "torch is not installed" in capsys.readouterr().err


def test_an_interrupted_validation_still_prints_its_summary(tmp_path, monkeypatch, capsys):
    def interrupted_validate(doc, models, batches, threads, impls, *, repeats, progress, rows_out, leave_one_out,
                             first_touch, rounds):
        rows_out.append({"model": "TextCNN", "impl": "ours", "mode": "infer", "batch": 16, "measured_s": 0.01,
                         "predicted_s": 0.012, "error": 0.2})
        raise KeyboardInterrupt

    monkeypatch.setattr(v, "validate", interrupted_validate)
    monkeypatch.setattr(cli_validate, "usable_runners", lambda impls, doc, names, batch: impls)
    monkeypatch.setattr(v, "held_out_summary", lambda doc, impl: [])
    argv = ["--table", str(_empty_table(tmp_path)), "--models", "textcnn", "--batch", "16", "--impl", "ours"]
    assert cli_validate.run(_cli(argv)) == 130
    captured = capsys.readouterr()
    assert "summary" in captured.out and "+20.0%" in captured.out and "interrupted" in captured.err


def _table_of_ours() -> dict:
    from dlcb_kernels.problems import GemmProblem
    from dlcb_kernels.records import base_record
    from dlcb_kernels.registry import select

    ours = select(["gemm"], "ours", backend="cpu")[0]
    doc = table_module.new_table()
    doc["devices"].append({"id": "cpu:test", "kind": "cpu", "memory": {"triad_gbs": 20.0},
                           "peaks": {"fp32": {"measured_gflops": 100.0, "measured_summary": "synthetic"}}})
    for m in (64, 128, 256):
        record = base_record(GemmProblem(m, m, m), ours, run_id="r", device_id="cpu:test", cache="warm",
                             threads=1).to_json()
        seconds = 2 * m ** 3 / 50e9
        record.update(stats={"median": seconds, "q1": seconds, "q3": seconds, "rel_noise": 0.01, "count": 10})
        doc["records"].append(record)
    return table_module.validate(doc)
